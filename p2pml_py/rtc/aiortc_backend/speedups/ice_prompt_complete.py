"""``ice_prompt_complete``: DTLS starts as soon as ICE's checks complete, not up to 20 ms later.

aioice's ``Connection.connect`` paces its connectivity checks with ``asyncio.sleep(0.02)`` (the
Ta timer) and only looks at the check list's state between those sleeps, so a connection whose
checks complete goes on waiting for up to 20 ms before DTLS starts -- on loopback that was 20 of
the ~34 ms from answer to open, on both sides. The patch gives ``aioice.ice`` an ``asyncio``
whose ``sleep`` ends early once the check list of the connection it runs for is completed or
failed (``_check_list_maybe_complete`` / ``_check_list_maybe_fail`` wake it); any other sleep,
such as the consent freshness timer's, is ``asyncio.sleep`` itself. Checks are still paced 20 ms
apart.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from typing import Any

from p2pml_py.rtc.aiortc_backend.speedups._core import Names, Patch, ProbeFailed, Target, target

#: The aioice Connection whose ``connect()`` runs in this task (and in tasks it starts).
_CHECKING: contextvars.ContextVar[Any] = contextvars.ContextVar("p2pml_ice_checking", default=None)


def _make_connect(original: Callable[..., Any]) -> Callable[..., Any]:
    async def connect(self: Any) -> None:
        token = _CHECKING.set(self)
        try:
            await original(self)
        finally:
            _CHECKING.reset(token)

    return connect


def _wake(connection: Any) -> None:
    waiter = connection.__dict__.get("_p2pml_wake")
    if waiter is not None and connection._check_list_done:
        _resolve(waiter)


def _make_check_list_maybe_complete(original: Callable[..., Any]) -> Callable[..., Any]:
    def _check_list_maybe_complete(self: Any) -> bool:
        result: bool = original(self)
        _wake(self)
        return result

    return _check_list_maybe_complete


def _make_check_list_maybe_fail(original: Callable[..., Any]) -> Callable[..., Any]:
    def _check_list_maybe_fail(self: Any) -> None:
        original(self)
        _wake(self)

    return _check_list_maybe_fail


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


async def _check_pacing_sleep(delay: float, result: Any = None) -> Any:
    """``asyncio.sleep`` for aioice.ice: ends early when the connection's checks are over."""
    connection = _CHECKING.get()
    if connection is None or connection._check_list_done:
        return await asyncio.sleep(delay, result)
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()
    connection._p2pml_wake = waiter
    handle = loop.call_later(delay, _resolve, waiter)
    try:
        await waiter
    finally:
        handle.cancel()
        connection._p2pml_wake = None
    return result


class _AsyncioForAioice:
    """The ``asyncio`` module as aioice.ice sees it: the same, except :func:`_check_pacing_sleep`."""

    sleep = staticmethod(_check_pacing_sleep)

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)


def probe(names: Names) -> list[Target]:
    ice, connection = names.ice, names.connection
    if vars(ice).get("asyncio") is not asyncio:
        raise ProbeFailed("aioice.ice.asyncio is not the asyncio module")
    return [
        target(ice, "asyncio", lambda _original: _AsyncioForAioice()),
        target(connection, "connect", _make_connect),
        target(connection, "_check_list_maybe_complete", _make_check_list_maybe_complete),
        target(connection, "_check_list_maybe_fail", _make_check_list_maybe_fail),
    ]


PATCH = Patch("ice_prompt_complete", probe)
