"""The super-peer's HTTP port: ``/metrics`` (Prometheus), ``/status`` (JSON) and ``/`` (a status
page with live charts; plain JS + canvas polling ``/status``, no external assets)."""

from __future__ import annotations

import json
import logging

from aiohttp import web

from p2pml_py.apps.superpeer.metrics import CONTENT_TYPE, render_metrics
from p2pml_py.apps.superpeer.page import STATUS_PAGE
from p2pml_py.apps.superpeer.supervisor import SuperPeer

logger = logging.getLogger(__name__)

__all__ = ["StatusServer"]


class StatusServer:
    """``async with StatusServer(superpeer, host, port) as server: server.url``."""

    def __init__(self, superpeer: SuperPeer, host: str = "127.0.0.1", port: int = 9464) -> None:
        self.superpeer = superpeer
        self.host = host
        self._requested_port = port
        self.port = 0
        self._runner: web.AppRunner | None = None
        app = web.Application()
        app.router.add_get("/", self._page)
        app.router.add_get("/status", self._status)
        app.router.add_get("/metrics", self._metrics)
        self.app = app

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def __aenter__(self) -> StatusServer:
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
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self._requested_port
        logger.info(
            "status page on %s/ (metrics: %s/metrics)",
            self.url,
            self.url,
            extra={"event": "http_listening", "url": self.url},
        )

    async def aclose(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(text=STATUS_PAGE, content_type="text/html")

    async def _status(self, request: web.Request) -> web.Response:
        return web.Response(
            text=json.dumps(self.superpeer.status()),
            content_type="application/json",
            headers={"Cache-Control": "no-store"},
        )

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=render_metrics(self.superpeer), headers={"Content-Type": CONTENT_TYPE}
        )
