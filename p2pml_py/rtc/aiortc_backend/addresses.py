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

The wrapper relies on ``Connection.gather_candidates`` calling the module-level name, which no
aioice release promises; it is installed only on the aioice versions whose ``ice.py`` was read
for it (``host_addresses`` in :data:`p2pml_py.rtc.aiortc_backend.versions.CHECKED`) and only if
``get_host_addresses`` is there. Otherwise aioice's own discovery stays in charge -- the chosen
addresses are ignored -- and one warning per process says why.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import ipaddress
import logging
import threading
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

from p2pml_py.rtc.aiortc_backend import versions

__all__ = ["gathering_addresses", "installed", "uninstall"]

logger = logging.getLogger(__name__)

_addresses: contextvars.ContextVar[tuple[str, ...] | None] = contextvars.ContextVar(
    "p2pml_py_ice_addresses", default=None
)
_install_lock = threading.Lock()
_original: Callable[[bool, bool], list[str]] | None = None
_patched: Any = None  # the aioice.ice module while the wrapper is installed
_refused: str | None = None  # why the wrapper is not installed, once warned about


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


def _ice_module() -> tuple[ModuleType | None, str | None]:
    """(``aioice.ice``, None) when the wrapper may replace its function, else (None, why not)."""
    reason = versions.unsupported("host_addresses")
    if reason is not None:
        return None, reason
    try:
        ice = importlib.import_module("aioice.ice")
    except ImportError as exc:
        return None, f"cannot import aioice.ice ({exc})"
    if not callable(vars(ice).get("get_host_addresses")):
        return None, "aioice.ice.get_host_addresses is missing"
    return ice, None


def _install() -> bool:
    """Replace aioice's function by the context-aware wrapper, once per process; False (with
    one warning, the first time) when it may not be."""
    global _original, _patched, _refused
    with _install_lock:
        if _patched is not None:
            return True
        if _refused is not None:
            return False
        ice, reason = _ice_module()
        if ice is None:
            _refused = reason
            logger.warning(
                "ICE host addresses cannot be chosen, aioice gathers its own: %s", reason
            )
            return False
        _original = vars(ice)["get_host_addresses"]
        _patched = ice
        _patched.get_host_addresses = _wrapper
        return True


def installed() -> bool:
    """Whether aioice's ``get_host_addresses`` is the wrapper now."""
    return _patched is not None


def uninstall() -> None:
    """Give aioice its own function back, and forget a refusal (the next
    :func:`gathering_addresses` checks again)."""
    global _original, _patched, _refused
    with _install_lock:
        if _patched is not None:
            _patched.get_host_addresses = _original
        _original = _patched = _refused = None


@contextlib.contextmanager
def gathering_addresses(addresses: tuple[str, ...]) -> Iterator[None]:
    """Within this block (and tasks started from it), ICE gathers exactly ``addresses``.

    An empty tuple leaves aioice's own discovery in charge, and so does an aioice this was not
    checked against (see the module's docstring).
    """
    if not addresses or not _install():
        yield
        return
    token = _addresses.set(addresses)
    try:
        yield
    finally:
        _addresses.reset(token)
