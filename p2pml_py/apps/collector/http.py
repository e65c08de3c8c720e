"""The collector's HTTP side (aiohttp): ``POST /pingback`` and its ``OPTIONS`` preflight, and
``GET /pingback.js`` (the browser module, ``p2pml_py/web/pingback.js``, so a page can load it
from the collector it reports to). The decisions are :class:`~p2pml_py.apps.collector.service.PingbackService`'s.

:class:`PingbackRoutes` adds them to any aiohttp router (the super-peer's status server mounts
them); :class:`CollectorServer` is ``p2pml-py collector``: those routes plus ``/metrics`` and
``/status`` (JSON, the same ``viewers`` section as the super-peer's).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from aiohttp import web

from p2pml_py.apps.collector.metrics import CONTENT_TYPE, render_viewer_metrics
from p2pml_py.apps.collector.report import MAX_BODY
from p2pml_py.apps.collector.service import Answer, PingbackService, client_address
from p2pml_py.apps.serving import AppServer

logger = logging.getLogger(__name__)

__all__ = ["SCRIPT", "CollectorServer", "PingbackRoutes", "read_script"]

#: The browser module, package data next to this package (``setup.cfg``).
SCRIPT: Final = Path(__file__).resolve().parents[2] / "web" / "pingback.js"


def read_script() -> bytes:
    return SCRIPT.read_bytes()


def _response(answer: Answer) -> web.Response:
    headers = {"Cache-Control": "no-store", **answer.headers}
    if answer.body is None:
        return web.Response(status=answer.status, headers=headers)
    return web.Response(
        status=answer.status,
        text=json.dumps(answer.body),
        content_type="application/json",
        headers=headers,
    )


class PingbackRoutes:
    """The collector's routes; ``clock``: monotonic seconds (``time.monotonic``)."""

    def __init__(
        self, service: PingbackService, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.service = service
        self._clock = clock
        self._script = read_script()

    def add_to(self, router: web.UrlDispatcher) -> None:
        router.add_post("/pingback", self.post)
        router.add_route("OPTIONS", "/pingback", self.options)
        router.add_get("/pingback.js", self.script)

    def _client(self, request: web.Request) -> str:
        return client_address(
            request.remote,
            request.headers.get("X-Forwarded-For"),
            self.service.config.forwarded_for,
        )

    async def post(self, request: web.Request) -> web.Response:
        origin, host = request.headers.get("Origin"), request.host
        answer = self.service.admit(
            client=self._client(request),
            origin=origin,
            host=host,
            content_type=request.headers.get("Content-Type", ""),
            content_length=request.content_length,
            now=self._clock(),
        )
        if answer is None:
            # At most one byte more than a report may have: enough to tell it is too large
            # (a chunked body has no Content-Length to refuse it by).
            body = await request.content.read(MAX_BODY + 1)
            answer = self.service.take(
                body, origin=origin, host=host, now=self._clock(), wall=time.time()
            )
        response = _response(answer)
        if answer.status == 413:
            response.force_close()  # the rest of the body is not read
        return response

    async def options(self, request: web.Request) -> web.Response:
        return _response(self.service.preflight(request.headers.get("Origin"), request.host))

    async def script(self, request: web.Request) -> web.Response:
        # A module script is fetched in CORS mode: any page may load this public file.
        return web.Response(
            body=self._script,
            headers={
                "Content-Type": "text/javascript; charset=utf-8",
                "Access-Control-Allow-Origin": "*",
                "Cache-Control": "public, max-age=300",
            },
        )


class CollectorServer(AppServer):
    """``async with CollectorServer(service, host, port) as server: server.url``: the collector
    on its own, with ``/metrics`` and ``/status``; ``status=False`` serves only the report
    routes (the super-peer's public port, ``[collector] listen``)."""

    def __init__(
        self,
        service: PingbackService,
        host: str = "127.0.0.1",
        port: int = 9465,
        *,
        status: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(host, port)
        self.service = service
        self._clock = clock
        PingbackRoutes(service, clock).add_to(self.app.router)
        if status:
            self.app.router.add_get("/metrics", self._metrics)
            self.app.router.add_get("/status", self._status)

    async def _started(self) -> None:
        logger.info(
            "viewer stats collector on %s/pingback",
            self.url,
            extra={"event": "collector_listening", "url": self.url},
        )

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=render_viewer_metrics(self.service), headers={"Content-Type": CONTENT_TYPE}
        )

    async def _status(self, request: web.Request) -> web.Response:
        body = {"viewers": self.service.status(self._clock(), time.time())}
        return web.Response(
            text=json.dumps(body),
            content_type="application/json",
            headers={"Cache-Control": "no-store"},
        )
