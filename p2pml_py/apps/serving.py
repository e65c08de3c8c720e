"""One aiohttp application on one ``host:port``: what the super-peer's status server and the
viewer-stats collector share (start, the port actually bound, ``url``, idempotent close)."""

from __future__ import annotations

from typing import Self

from aiohttp import web

__all__ = ["AppServer"]


class AppServer:
    """``async with Subclass(...) as server: server.url``. A subclass fills :attr:`app`'s routes
    and may extend :meth:`_started` (after the port is bound) and :meth:`_closing`."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self._requested_port = port
        #: The port bound (``port=0`` asks the system for a free one).
        self.port = 0
        self._runner: web.AppRunner | None = None
        self.app = web.Application()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        runner = web.AppRunner(self.app, access_log=None)
        await runner.setup()
        self._runner = runner
        site = web.TCPSite(runner, self.host, self._requested_port)
        try:
            await site.start()
        except OSError:
            await self.aclose()
            raise
        sockets = getattr(site._server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self._requested_port
        await self._started()

    async def _started(self) -> None:
        """Called once listening (log the URL, start companions)."""

    async def _closing(self) -> None:
        """Called first by :meth:`aclose` (stop companions)."""

    async def aclose(self) -> None:
        await self._closing()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
