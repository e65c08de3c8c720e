"""The demo's HTTP server: the stream, the demo page, the npm packages it imports, and two JSON
documents the page reads.

Routes (GET; only the stream's are counted in the origin's stats):

* ``/`` and ``/demo/<file>`` -- the page (``static/``, package data);
* ``/demo/config.json`` -- what the page plays and how (:class:`PageConfig`);
* ``/demo/status.json`` -- the Python peers' counters, from a callback (the page names them in
  its peer list);
* ``/node_modules/<pkg>/...`` -- hls.js and p2p-media-loader 2.3 only, from ``interop/node_modules``
  (``interop/setup.sh`` installs the pinned versions: no second copy, no CDN);
* ``/vod/<channel>/...``, ``/live/<channel>/...`` -- the stream (:class:`StreamOrigin`).

Where ``interop/`` is follows the harness's convention (``p2pml_py/harness/paths.py``, a higher
layer this one may not import): ``P2PML_INTEROP_DIR``, else ``interop/`` next to the package in a
checkout.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from p2pml_py.base.errors import HarnessError
from p2pml_py.testing.origin import StreamOrigin, content_type, file_under
from p2pml_py.testing.stream import TestStream

__all__ = [
    "DemoServer",
    "PageConfig",
    "StatusSource",
    "cache_dir",
    "interop_dir",
    "node_modules_dir",
    "static_dir",
]

#: The packages the page's import map names (interop/package.json pins their versions).
PACKAGES = ("hls.js", "pml-core-2.3", "pml-hlsjs-2.3")
_TYPES = {
    ".mjs": "text/javascript",
    ".js": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
    ".map": "application/json",
}

StatusSource = Callable[[], Mapping[str, Any]]


def interop_dir() -> Path:
    env = os.environ.get("P2PML_INTEROP_DIR")
    if env:
        return Path(env).resolve()
    return Path(__file__).resolve().parents[3] / "interop"


def cache_dir() -> Path:
    env = os.environ.get("P2PML_INTEROP_CACHE")
    if env:
        return Path(env).resolve()
    return interop_dir() / ".cache"


def node_modules_dir() -> Path:
    return interop_dir() / "node_modules"


def static_dir() -> Path:
    return Path(__file__).resolve().parent / "static"


@dataclass(frozen=True, slots=True)
class PageConfig:
    """What every tab plays: one manifest, one tracker, one explicit swarm id.

    The swarm id is set explicitly (core ``swarmId``) so that a tab that reaches the server under
    another name (``localhost`` for ``127.0.0.1``) still lands in the seeder's swarm: without it
    the swarm id is the manifest URL as the page loaded it (``core/utils/stream.ts``).
    """

    manifest_url: str
    tracker_url: str
    swarm_id: str
    level: int
    live: bool
    core: Mapping[str, Any] = field(default_factory=dict)
    hls: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": "2.3.1",
            "manifest": self.manifest_url,
            "trackers": [self.tracker_url],
            "swarmId": self.swarm_id,
            "level": self.level,
            "live": self.live,
            "core": dict(self.core),
            "hls": dict(self.hls),
        }


class DemoServer(StreamOrigin):
    """The stream plus the page; set :attr:`page_config` and :attr:`status` before pages load."""

    def __init__(
        self,
        stream: TestStream,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        node_modules: Path | None = None,
    ) -> None:
        super().__init__(stream, host=host, port=port)
        self.node_modules = (node_modules or node_modules_dir()).resolve()
        self.static = static_dir()
        self.page_config: PageConfig | None = None
        self.status: StatusSource = dict

    async def start(self) -> None:
        check_packages(self.node_modules)
        await super().start()

    @property
    def page_url(self) -> str:
        return f"{self.base_url}/"

    def _add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/", self._index)
        router.add_get("/demo/config.json", self._config)
        router.add_get("/demo/status.json", self._status)
        router.add_get("/demo/{tail:.*}", self._static)
        router.add_get("/node_modules/{tail:.*}", self._package)
        super()._add_routes(router)

    async def _index(self, request: web.Request) -> web.FileResponse:
        return _file(self.static, "index.html")

    async def _static(self, request: web.Request) -> web.FileResponse:
        return _file(self.static, request.match_info["tail"])

    async def _package(self, request: web.Request) -> web.FileResponse:
        package, _, rest = request.match_info["tail"].partition("/")
        if package not in PACKAGES:
            raise web.HTTPNotFound()
        # Rooted at the package, so "hls.js/../<another package>" leads nowhere.
        return _file(self.node_modules / package, rest)

    async def _config(self, request: web.Request) -> web.Response:
        if self.page_config is None:
            raise web.HTTPServiceUnavailable(text="the demo is starting")
        return _json(self.page_config.to_json())

    async def _status(self, request: web.Request) -> web.Response:
        return _json(dict(self.status()))


def check_packages(node_modules: Path) -> None:
    """Raise :class:`HarnessError` naming the fix if a package the page imports is missing."""
    for package in PACKAGES:
        if not (node_modules / package / "package.json").is_file():
            raise HarnessError(
                f"npm package {package} missing in {node_modules}: run interop/setup.sh "
                "(or set P2PML_INTEROP_DIR to a directory whose node_modules/ holds it)"
            )


def _json(data: Mapping[str, Any]) -> web.Response:
    return web.Response(
        text=json.dumps(data),
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def _file(root: Path, relative: str) -> web.FileResponse:
    target = file_under(root, relative)
    if target is None:
        raise web.HTTPNotFound()
    kind = _TYPES.get(target.suffix) or content_type(target.name)
    return web.FileResponse(target, headers={"Content-Type": kind, "Cache-Control": "no-cache"})
