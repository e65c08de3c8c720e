"""The harness's origin: the test stream (:class:`~p2pml_py.testing.origin.StreamOrigin`, VOD and
live channels) plus what Chromium needs to play it, on 127.0.0.1.

Extra routes (GET, not counted in the origin's stats):

* ``/pages/<file>`` -- the player pages (``p2pml_py/harness/web/pages``, package data);
* ``/node_modules/<pkg>/...`` -- only the packages the pages import (hls.js, shaka-player and the
  aliased p2p-media-loader versions), from the harness's ``node_modules``
  (:func:`~p2pml_py.harness.paths.node_modules_dir`).
"""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web

from p2pml_py.base.errors import HarnessError
from p2pml_py.harness.pages import Player, page_name
from p2pml_py.harness.paths import node_modules_dir, pages_dir
from p2pml_py.testing.origin import StreamOrigin, content_type, file_under
from p2pml_py.testing.stream import TestStream

__all__ = ["InteropOrigin"]

#: npm packages the pages may load (web/package.json); nothing else under node_modules is served.
_SERVED_PACKAGES = re.compile(r"^(hls\.js|shaka-player|pml-(core|hlsjs)-2\.[23]|pml-shaka-2\.2)/")
_PACKAGES = (
    "hls.js",
    "pml-core-2.3",
    "pml-hlsjs-2.3",
    "pml-core-2.2",
    "pml-hlsjs-2.2",
    "shaka-player",
    "pml-shaka-2.2",
)
_SCRIPT_TYPES = {
    ".mjs": "text/javascript",
    ".js": "text/javascript",
    ".html": "text/html",
    ".map": "application/json",
}


class InteropOrigin(StreamOrigin):
    """Serves pages, packages and the stream; ``async with InteropOrigin(stream) as origin``."""

    def __init__(
        self,
        stream: TestStream,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        live_window: int = 10,
        live_base_sequence: int = 100,
        pages: Path | None = None,
        node_modules: Path | None = None,
    ) -> None:
        super().__init__(
            stream,
            host=host,
            port=port,
            live_window=live_window,
            live_base_sequence=live_base_sequence,
        )
        self._pages = (pages or pages_dir()).resolve()
        self._node_modules = (node_modules or node_modules_dir()).resolve()

    async def start(self) -> None:
        for package in _PACKAGES:
            if not (self._node_modules / package / "package.json").exists():
                raise HarnessError(
                    f"npm package {package} missing in {self._node_modules}: run "
                    "`p2pml-py harness setup` (in a git checkout: interop/setup.sh)"
                )
        await super().start()

    def page_url(self, version: str, player: Player = "hlsjs") -> str:
        """The page for p2p-media-loader ``"2.3"`` or ``"2.2"`` with ``player`` (no query)."""
        return f"{self.base_url}/pages/{page_name(player, version)}"

    def _add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/pages/{tail:.*}", self._page)
        router.add_get("/node_modules/{tail:.*}", self._package)
        super()._add_routes(router)

    async def _page(self, request: web.Request) -> web.FileResponse:
        return _file(self._pages, request.match_info["tail"])

    async def _package(self, request: web.Request) -> web.FileResponse:
        tail = request.match_info["tail"]
        match = _SERVED_PACKAGES.match(tail)
        if match is None:
            raise web.HTTPNotFound()
        # Inside that package's own directory: "hls.js/../bittorrent-tracker/..." leads out.
        package = match.group(0).rstrip("/")
        return _file(self._node_modules / package, tail[len(package) + 1 :])


def _file(root: Path, relative: str) -> web.FileResponse:
    target = file_under(root, relative)
    if target is None:
        raise web.HTTPNotFound()
    kind = _SCRIPT_TYPES.get(target.suffix) or content_type(target.name)
    return web.FileResponse(target, headers={"Content-Type": kind, "Cache-Control": "no-cache"})
