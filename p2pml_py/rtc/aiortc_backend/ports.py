"""Binding ICE host candidates to UDP ports from a chosen range (``RtcConfig.ice_port_range``).

Why a range: a browser reaches the super-peer on the port of a host candidate, and a firewall,
a cloud security group or a Kubernetes ``hostPort`` list can only let through ports it knows.
libwebrtc has a port range setting (``PortAllocator::SetPortRange``); aioice has none: it binds
each host candidate with ``loop.create_datagram_endpoint(..., local_addr=(address, 0))`` in
``Connection.get_component_candidates`` (aioice 0.13 ``ice.py``), so the kernel picks an
ephemeral port.

Options weighed:

* Re-implement ``get_component_candidates`` (host candidates, then STUN and TURN): per
  connection, but a copy of aioice's candidate logic on top of its private attributes.
* Narrow the kernel's ephemeral range (``net.ipv4.ip_local_port_range``, a "safe" namespaced
  sysctl in Kubernetes): no code, but every outgoing TCP connection (origin, tracker) then draws
  from the same ports, and with ``hostNetwork`` the sysctl belongs to the node.
* Intercept the one call that binds: while a gathering with a range runs, the event loop's
  ``create_datagram_endpoint`` is wrapped so that a call with ``local_addr=(address, 0)`` and
  nothing else gets a socket this module bound to a free port of the range, passed as ``sock=``
  (which asyncio and uvloop both accept). Chosen: aioice keeps building the candidates (host,
  then server-reflexive from the same socket, so STUN reports the right port), and only the
  port changes. Like :mod:`.addresses` it is keyed by a :class:`contextvars.ContextVar` set
  around ``setLocalDescription``, which aiortc's gathering tasks inherit, so concurrent
  gatherings with other settings (or none) in the same process are not affected. TURN's own
  client socket (``remote_addr=``) and mDNS (``sock=``) pass through unchanged.

The wrapper is put on each event loop the first time a gathering with a range runs on it (an
instance attribute; the loop class is not touched), only on the aioice versions whose
``ice.py`` was read for it (``port_range`` in
:data:`p2pml_py.rtc.aiortc_backend.versions.CHECKED`). On another version a range cannot be
honoured, and a connection that silently used other ports would be dropped by the firewall the
range was chosen for: gathering raises :class:`~p2pml_py.base.errors.RtcError` instead.

Ports are tried from a per-process cursor that starts at a random offset and moves past each
port handed out, so consecutive connections take consecutive ports and several worker
processes sharing one range rarely collide; a port in use (``EADDRINUSE``, held by another
connection or process) is skipped, and a gathering that finds no free port fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import errno
import random
import socket
from collections.abc import Callable, Iterator
from typing import Any

from p2pml_py.base.errors import RtcError
from p2pml_py.rtc.aiortc_backend import versions
from p2pml_py.rtc.config import port_range_size

__all__ = ["bind_in_range", "gathering_ports"]

_range: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar(
    "p2pml_py_ice_port_range", default=None
)
#: Offset into the range of the next port to try (per process; see the module docstring).
_cursor = random.randrange(1 << 16)
_MARK = "_p2pml_py_port_range"


def bind_in_range(address: str, port_range: tuple[int, int]) -> socket.socket:
    """A UDP socket bound to ``address`` and the first free port of ``port_range`` from the
    cursor on. Raises ``OSError(EADDRINUSE)`` when every port is taken (aioice then logs that
    it could not bind that address and gathers none there), and any other bind error as is."""
    global _cursor
    infos = socket.getaddrinfo(
        address, 0, type=socket.SOCK_DGRAM, flags=socket.AI_NUMERICHOST | socket.AI_PASSIVE
    )
    family, kind, proto, _, sockaddr = infos[0]
    low = port_range[0]
    size = port_range_size(port_range)
    start = _cursor % size
    for step in range(size):
        offset = (start + step) % size
        sock = socket.socket(family, kind, proto)
        try:
            # No SO_REUSEADDR: for UDP it would let two sockets share the port.
            sock.bind((sockaddr[0], low + offset, *sockaddr[2:]))
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE:
                continue
            raise
        sock.setblocking(False)
        _cursor = offset + 1
        return sock
    raise OSError(
        errno.EADDRINUSE,
        f"no free UDP port in ice_port_range {port_range[0]}-{port_range[1]} on {address}",
    )


def _wrap(original: Callable[..., Any]) -> Callable[..., Any]:
    async def create_datagram_endpoint(
        protocol_factory: Callable[[], asyncio.DatagramProtocol],
        local_addr: tuple[Any, ...] | None = None,
        remote_addr: tuple[Any, ...] | None = None,
        **kwargs: Any,
    ) -> Any:
        port_range = _range.get()
        if (
            port_range is None
            or local_addr is None
            or remote_addr is not None
            or kwargs
            or local_addr[1] != 0
        ):
            return await original(
                protocol_factory, local_addr=local_addr, remote_addr=remote_addr, **kwargs
            )
        sock = bind_in_range(str(local_addr[0]), port_range)
        try:
            return await original(protocol_factory, sock=sock)
        except BaseException:
            sock.close()
            raise

    setattr(create_datagram_endpoint, _MARK, original)
    return create_datagram_endpoint


def _install(loop: asyncio.AbstractEventLoop) -> None:
    reason = versions.unsupported("port_range")
    if reason is not None:
        raise RtcError(f"ice_port_range cannot be honoured: {reason}")
    if not hasattr(loop.create_datagram_endpoint, _MARK):
        # An instance attribute: this loop only, and the class's method stays as it is.
        loop.create_datagram_endpoint = _wrap(loop.create_datagram_endpoint)  # type: ignore[method-assign]


def uninstall(loop: asyncio.AbstractEventLoop) -> None:
    """Give ``loop`` its own ``create_datagram_endpoint`` back (tests)."""
    original = getattr(loop.create_datagram_endpoint, _MARK, None)
    if original is not None:
        try:
            del loop.create_datagram_endpoint  # the instance attribute; the class's method shows
        except AttributeError:
            loop.create_datagram_endpoint = original  # type: ignore[method-assign]


@contextlib.contextmanager
def gathering_ports(port_range: tuple[int, int] | None) -> Iterator[None]:
    """Within this block (and tasks started from it), ICE host candidates are bound to ports of
    ``port_range``; ``None`` leaves the kernel's choice. Call it with the loop running."""
    if port_range is None:
        yield
        return
    _install(asyncio.get_running_loop())
    token = _range.set(port_range)
    try:
        yield
    finally:
        _range.reset(token)
