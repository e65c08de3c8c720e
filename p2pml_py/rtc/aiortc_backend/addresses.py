"""Choosing which local addresses ICE gathers host candidates on.

aioice discovers addresses in ``aioice.ice.get_host_addresses(use_ipv4, use_ipv6)``, called from
``Connection.gather_candidates`` with no per-connection hook, and it always skips ``127.0.0.1``
and ``::1`` -- so a peer that must talk to browsers on the same host (``chromium
--allow-loopback-in-peer-connection``) or that must stay on one interface of a multi-homed server
needs another way in.

Options weighed:

* Override ``gather_candidates`` on each ``aioice.Connection`` object: per connection, but it
  means re-implementing the method on top of aioice's private attributes
  (``_local_candidates``, ``_local_candidates_start``, ``_components`` ...), and reaching the
  connection through aiortc's private ``RTCIceGatherer._connection``.
* Replace ``aioice.ice.get_host_addresses`` once, with a wrapper that returns the addresses held
  in a :class:`contextvars.ContextVar` and falls back to aioice's own function when none are set.
  Chosen: it depends on one documented module-level name, and it is keyed per connection because
  the variable is set only around the ``setLocalDescription`` call that gathers. aiortc gathers in
  ``RTCPeerConnection.__gather`` through ``asyncio.gather``, whose child tasks copy the caller's
  context, so concurrent gatherings in other tasks -- other peers with other settings in the same
  process -- each see their own value (or none).
"""

from __future__ import annotations

import contextlib
import contextvars
import ipaddress
import threading
from collections.abc import Callable, Iterator
from typing import Any

import aioice.ice

__all__ = ["gathering_addresses"]

_addresses: contextvars.ContextVar[tuple[str, ...] | None] = contextvars.ContextVar(
    "p2pml_py_ice_addresses", default=None
)
_install_lock = threading.Lock()
_original: Callable[[bool, bool], list[str]] | None = None


def _select(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    selected = _addresses.get()
    if selected is None:
        assert _original is not None
        return _original(use_ipv4, use_ipv6)
    result: list[str] = []
    for address in selected:
        version = ipaddress.ip_address(address).version
        if (version == 4 and use_ipv4) or (version == 6 and use_ipv6):
            result.append(address)
    return result


def _wrapper(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    return _select(use_ipv4=use_ipv4, use_ipv6=use_ipv6)


def _install() -> None:
    """Replace aioice's function by the context-aware wrapper, once per process."""
    global _original
    with _install_lock:
        current: Any = aioice.ice.get_host_addresses
        if current is _wrapper:
            return
        _original = current
        aioice.ice.get_host_addresses = _wrapper


@contextlib.contextmanager
def gathering_addresses(addresses: tuple[str, ...]) -> Iterator[None]:
    """Within this block (and tasks started from it), ICE gathers exactly ``addresses``.

    An empty tuple leaves aioice's own discovery in charge.
    """
    if not addresses:
        yield
        return
    _install()
    token = _addresses.set(addresses)
    try:
        yield
    finally:
        _addresses.reset(token)
