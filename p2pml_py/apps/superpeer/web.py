"""The super-peer's HTTP port: ``/metrics`` (Prometheus), ``/status`` (JSON), ``/`` (a status
page with live charts; plain JS + canvas polling ``/status``, no external assets), and the
probes ``/healthz`` (alive) and ``/readyz`` (ready; see :mod:`p2pml_py.apps.superpeer.health`),
200 or 503 with a short JSON body.

With ``[collector]`` it also takes viewers' reports (``POST /pingback``, ``/pingback.js``;
:mod:`p2pml_py.apps.collector`): their aggregates join ``/metrics`` and ``/status``
(``viewers``), and with ``[collector] listen`` the report routes alone are served on that port
too, so this one can stay private. With ``streams = "configured"`` (the default) only reports for
the configured streams are taken, matched by manifest URL (without query) or name, and counted
under the stream's name."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from p2pml_py.apps.collector.http import CollectorServer, PingbackRoutes
from p2pml_py.apps.collector.service import PingbackService, stream_id, stream_resolver
from p2pml_py.apps.serving import AppServer
from p2pml_py.apps.superpeer.config import SuperPeerConfig
from p2pml_py.apps.superpeer.health import readiness
from p2pml_py.apps.superpeer.metrics import CONTENT_TYPE, render_metrics
from p2pml_py.apps.superpeer.page import STATUS_PAGE
from p2pml_py.apps.superpeer.supervisor import SuperPeer

logger = logging.getLogger(__name__)

__all__ = ["StatusServer"]


class StatusServer(AppServer):
    """``async with StatusServer(superpeer, host, port) as server: server.url``."""

    def __init__(self, superpeer: SuperPeer, host: str = "127.0.0.1", port: int = 9464) -> None:
        super().__init__(host, port)
        self.superpeer = superpeer
        app = self.app
        app.router.add_get("/", self._page)
        app.router.add_get("/status", self._status)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        #: ``[collector]``: the viewer-stats collector, and its own public port if configured.
        self.pingback: PingbackService | None = None
        self.public: CollectorServer | None = None
        self._known: tuple[SuperPeerConfig | None, Mapping[str, str]] = (None, {})
        collector = superpeer.config.collector
        self._any_stream = collector is not None and collector.streams == "any"
        if collector is not None:
            self.pingback = PingbackService(collector, resolve=self._resolve)
            PingbackRoutes(self.pingback).add_to(app.router)
            if collector.listen is not None:
                host, port = collector.listen
                self.public = CollectorServer(self.pingback, host, port, status=False)

    def _resolve(self, stream: str) -> str | None:
        """A report's stream id -> the configured stream's name (``None``: not one of them,
        refused with ``streams = "configured"``); a reload may change the streams (the
        ``[collector]`` settings apply on restart)."""
        config = self.superpeer.config
        if self._known[0] is not config:
            known = {stream_id(s.url): s.name for s in config.streams}
            known.update({s.name: s.name for s in config.streams})
            self._known = (config, known)
        return stream_resolver(self._known[1], accept_any=self._any_stream)(stream)

    async def _started(self) -> None:
        logger.info(
            "status page on %s/ (metrics: %s/metrics)",
            self.url,
            self.url,
            extra={"event": "http_listening", "url": self.url},
        )
        if self.public is not None:
            try:
                await self.public.start()
            except OSError:
                await self.aclose()
                raise

    async def _closing(self) -> None:
        if self.public is not None:
            await self.public.aclose()

    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(text=STATUS_PAGE, content_type="text/html")

    async def _status(self, request: web.Request) -> web.Response:
        status = self.superpeer.status()
        status["viewers"] = (
            None if self.pingback is None else self.pingback.status(time.monotonic(), time.time())
        )
        return web.Response(
            text=json.dumps(status),
            content_type="application/json",
            headers={"Cache-Control": "no-store"},
        )

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=render_metrics(self.superpeer, self.pingback),
            headers={"Content-Type": CONTENT_TYPE},
        )

    async def _healthz(self, request: web.Request) -> web.Response:
        # Answering at all is the check: this handler runs on the parent's event loop.
        return _probe(
            200, {"alive": True, "uptime": round(time.time() - self.superpeer.started, 1)}
        )

    async def _readyz(self, request: web.Request) -> web.Response:
        result = readiness(self.superpeer, time.monotonic())
        return _probe(200 if result.ready else 503, result.to_json())


def _probe(status: int, body: dict[str, Any]) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps(body),
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )
