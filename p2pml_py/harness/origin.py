"""The harness's HTTP origin (aiohttp on 127.0.0.1): test pages, npm packages and the stream.

Routes (all GET):

* ``/pages/<file>`` -- ``interop/pages`` (the player pages);
* ``/node_modules/<pkg>/...`` -- only the packages the pages import (hls.js and the aliased
  p2p-media-loader versions), from ``interop/node_modules``;
* ``/vod/<channel>/<path>`` -- the :class:`~p2pml_py.harness.stream.TestStream` files as they are
  (VOD, ``EXT-X-ENDLIST``). The channel name only changes the URL -- and with it the swarm id
  browsers derive from it (SPEC c.2) -- so tests that share an origin never share a swarm;
* ``/live/<channel>/master.m3u8``, ``/live/<channel>/r<position>/index.m3u8``,
  ``/live/<channel>/r<position>/s<sequence>.ts`` -- the same segments re-played as a live
  sliding window: each channel's clock starts at its first request; the window holds
  ``live_window`` segments, one more appears every segment duration, the media sequence starts at
  ``live_base_sequence`` and advances in real time, no ``EXT-X-ENDLIST``. Sequence ``n`` carries
  VOD segment ``(n - base) % count``; where the loop wraps an ``EXT-X-DISCONTINUITY`` is written
  (and ``EXT-X-DISCONTINUITY-SEQUENCE`` kept right). Segments older than the window stay
  downloadable, future ones are 404.

Every segment response is counted (:class:`OriginCounters`): the origin's egress, which tests
compare with what the browsers report. :meth:`InteropOrigin.expected_sha256` maps any segment URL
back to the SHA-256 of the file it serves, to check bytes peers sent each other.
"""

from __future__ import annotations

import asyncio
import logging
import math
import mimetypes
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

from aiohttp import web

from p2pml_py.base.errors import HarnessError, LocalProtocolError
from p2pml_py.harness.paths import node_modules_dir, pages_dir
from p2pml_py.harness.stream import Rendition, TestStream

__all__ = ["InteropOrigin", "OriginCounters"]

logger = logging.getLogger(__name__)

#: npm packages the pages may load (interop/package.json); nothing else under node_modules is served.
_SERVED_PACKAGES = re.compile(r"^(hls\.js|pml-(core|hlsjs)-2\.[23])/")
_LIVE_SEGMENT = re.compile(r"^r(\d+)/s(\d+)\.ts$")
_LIVE_PLAYLIST = re.compile(r"^r(\d+)/index\.m3u8$")
_CHANNEL = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_CONTENT_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".ts": "video/mp2t",
    ".mjs": "text/javascript",
    ".js": "text/javascript",
    ".html": "text/html",
    ".map": "application/json",
}


@dataclass(slots=True)
class OriginCounters:
    """Segment egress of the origin, total and per request path."""

    segment_requests: int = 0
    segment_bytes: int = 0
    playlist_requests: int = 0
    by_path: Counter[str] = field(default_factory=Counter)

    def bytes_under(self, prefix: str) -> int:
        """Segment bytes served for paths starting with ``prefix`` (e.g. ``/vod/chan/``)."""
        return sum(n for path, n in self.by_path.items() if path.startswith(prefix))


class InteropOrigin:
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
        if live_window < 1:
            raise LocalProtocolError("live_window must be >= 1")
        self.stream = stream
        self.host = host
        self._requested_port = port
        self.live_window = live_window
        self.live_base_sequence = live_base_sequence
        self._pages = (pages or pages_dir()).resolve()
        self._node_modules = (node_modules or node_modules_dir()).resolve()
        self._clock = time.monotonic
        self._segment_seconds = float(min(r.target_duration for r in stream.renditions))
        self._channels: dict[str, float] = {}
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._closed = False
        self.counters = OriginCounters()
        self._changed = asyncio.Event()

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        if self._runner is not None or self._closed:
            raise LocalProtocolError("origin already started or closed")
        for package in ("hls.js", "pml-core-2.3", "pml-hlsjs-2.3", "pml-core-2.2", "pml-hlsjs-2.2"):
            if not (self._node_modules / package / "package.json").exists():
                raise HarnessError(
                    f"npm package {package} missing in {self._node_modules}: run interop/setup.sh"
                )
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self._requested_port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        server = site._server
        assert server is not None and isinstance(server, asyncio.Server)
        self._port = server.sockets[0].getsockname()[1]
        logger.info("interop origin on %s", self.base_url)

    async def aclose(self) -> None:
        """Stop serving. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> InteropOrigin:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- URLs ---------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._runner is None:
            raise LocalProtocolError("origin not started")
        return f"http://{self.host}:{self._port}"

    def vod_url(self, channel: str = "main") -> str:
        return f"{self.base_url}/vod/{_check_channel(channel)}/master.m3u8"

    def live_url(self, channel: str = "main") -> str:
        return f"{self.base_url}/live/{_check_channel(channel)}/master.m3u8"

    def manifest_url(self, live: bool, channel: str = "main") -> str:
        return self.live_url(channel) if live else self.vod_url(channel)

    def page_url(self, version: str) -> str:
        """The player page for p2p-media-loader ``"2.3"`` or ``"2.2"`` (no query)."""
        if version not in ("2.3", "2.2"):
            raise LocalProtocolError(f"no page for p2p-media-loader {version!r}")
        return f"{self.base_url}/pages/pml-{version}.html"

    # -- live clock -----------------------------------------------------------------------------

    def start_live(self, channel: str) -> None:
        """Start a live channel's clock now (otherwise its first request starts it)."""
        self._channels.setdefault(_check_channel(channel), self._clock())

    def fast_forward(self, channel: str, seconds: float) -> None:
        """Move a live channel ``seconds`` ahead (its window advances as if time had passed)."""
        self.start_live(channel)
        self._channels[channel] -= seconds

    def live_edge(self, channel: str) -> int:
        """Media sequence of the newest segment of a live channel now."""
        started = self._channels.setdefault(channel, self._clock())
        elapsed = max(0.0, self._clock() - started)
        return (
            self.live_base_sequence
            + self.live_window
            - 1
            + math.floor(elapsed / self._segment_seconds)
        )

    def _live_file(self, rendition: Rendition, sequence: int) -> int:
        return (sequence - self.live_base_sequence) % len(rendition.segments)

    def live_playlist(self, channel: str, rendition: Rendition) -> str:
        newest = self.live_edge(channel)
        first = newest - self.live_window + 1
        count = len(rendition.segments)
        lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:3",
            f"#EXT-X-TARGETDURATION:{rendition.target_duration}",
            f"#EXT-X-MEDIA-SEQUENCE:{first}",
            f"#EXT-X-DISCONTINUITY-SEQUENCE:{(first - self.live_base_sequence) // count}",
        ]
        for sequence in range(first, newest + 1):
            index = self._live_file(rendition, sequence)
            if index == 0 and sequence != first:
                lines.append("#EXT-X-DISCONTINUITY")
            lines.append(f"#EXTINF:{rendition.segments[index].duration:.6f},")
            lines.append(f"s{sequence}.ts")
        return "\n".join(lines) + "\n"

    def live_master(self) -> str:
        out: list[str] = []
        position = 0
        expect_uri = False
        for raw in self.stream.master_text.splitlines():
            line = raw.strip()
            if line.startswith("#EXT-X-STREAM-INF:"):
                expect_uri = True
                out.append(line)
            elif expect_uri and line and not line.startswith("#"):
                out.append(f"r{position}/index.m3u8")
                position += 1
                expect_uri = False
            else:
                out.append(line)
        return "\n".join(out) + "\n"

    # -- verification ---------------------------------------------------------------------------

    def expected_sha256(self, url: str) -> str | None:
        """SHA-256 of the segment this origin serves at ``url`` (``None``: not a segment URL)."""
        path = urlsplit(url).path
        parts = path.lstrip("/").split("/", 2)
        if len(parts) != 3:
            return None
        kind, _channel, rest = parts
        if kind == "vod":
            return self.stream.sha256_by_path().get(rest)
        if kind == "live":
            match = _LIVE_SEGMENT.match(rest)
            if match is None:
                return None
            rendition = self._rendition_at(int(match.group(1)))
            if rendition is None:
                return None
            index = self._live_file(rendition, int(match.group(2)))
            return rendition.segments[index].sha256
        return None

    def segment_sha256(self, playlist_url: str, segment_id: str) -> str | None:
        """SHA-256 of segment ``segment_id`` of the media playlist at ``playlist_url``.

        ``segment_id`` is the id on the wire (VOD: 0-based position, live: media sequence,
        SPEC c.5) or the segment's URL. ``None``: not a segment of this origin.
        """
        if "://" in segment_id:
            return self.expected_sha256(segment_id)
        try:
            number = int(segment_id)
        except ValueError:
            return None
        parts = urlsplit(playlist_url).path.lstrip("/").split("/", 2)
        if len(parts) != 3:
            return None
        kind, _channel, rest = parts
        if kind == "vod":
            for rendition in self.stream.renditions:
                if rendition.playlist_uri == rest and 0 <= number < len(rendition.segments):
                    return rendition.segments[number].sha256
            return None
        match = _LIVE_PLAYLIST.match(rest)
        if kind == "live" and match is not None and number >= self.live_base_sequence:
            live = self._rendition_at(int(match.group(1)))
            if live is not None:
                return live.segments[self._live_file(live, number)].sha256
        return None

    def _rendition_at(self, position: int) -> Rendition | None:
        if 0 <= position < len(self.stream.renditions):
            return self.stream.renditions[position]
        return None

    # -- HTTP -----------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        parts = path.lstrip("/").split("/", 1)
        if len(parts) != 2 or ".." in path.split("/"):
            raise web.HTTPNotFound()
        top, rest = parts
        if top == "pages":
            return self._file(self._pages, rest)
        if top == "node_modules":
            if not _SERVED_PACKAGES.match(rest):
                raise web.HTTPNotFound()
            return self._file(self._node_modules, rest)
        channel, _, sub = rest.partition("/")
        if not _CHANNEL.match(channel) or not sub:
            raise web.HTTPNotFound()
        if top == "vod":
            return self._stream_file(path, sub)
        if top == "live":
            return self._live(path, channel, sub)
        raise web.HTTPNotFound()

    def _file(self, root: Path, relative: str) -> web.FileResponse:
        return self._file_response(_resolve(root, relative))

    def _file_response(self, target: Path) -> web.FileResponse:
        content_type = _CONTENT_TYPES.get(target.suffix) or (
            mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        )
        # FileResponse also answers Range requests (the core resumes failed HTTP downloads).
        return web.FileResponse(
            target, headers={"Content-Type": content_type, "Cache-Control": "no-cache"}
        )

    def _stream_file(self, path: str, relative: str) -> web.FileResponse:
        target = _resolve(self.stream.root.resolve(), relative)
        self._count(path, target.stat().st_size)
        return self._file_response(target)

    def _live(self, path: str, channel: str, sub: str) -> web.StreamResponse:
        if sub == "master.m3u8":
            self.start_live(channel)
            self.counters.playlist_requests += 1
            return _text(self.live_master(), ".m3u8")
        playlist = _LIVE_PLAYLIST.match(sub)
        if playlist is not None:
            rendition = self._rendition_at(int(playlist.group(1)))
            if rendition is None:
                raise web.HTTPNotFound()
            self.counters.playlist_requests += 1
            return _text(self.live_playlist(channel, rendition), ".m3u8")
        segment = _LIVE_SEGMENT.match(sub)
        if segment is None:
            raise web.HTTPNotFound()
        rendition = self._rendition_at(int(segment.group(1)))
        sequence = int(segment.group(2))
        if (
            rendition is None
            or sequence < self.live_base_sequence
            or sequence > self.live_edge(channel)
        ):
            raise web.HTTPNotFound()
        file = rendition.segments[self._live_file(rendition, sequence)]
        self._count(path, file.size)
        return self._file(self.stream.root.resolve(), rendition.segment_path(file))

    def _count(self, path: str, size: int) -> None:
        if path.endswith(".m3u8"):
            self.counters.playlist_requests += 1
            return
        self.counters.segment_requests += 1
        self.counters.segment_bytes += size
        self.counters.by_path[path] += size
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    async def wait_segment_requests(self, prefix: str, count: int) -> None:
        """Wait until ``count`` distinct segment paths under ``prefix`` were requested.

        Bound it with ``asyncio.timeout``; it waits forever otherwise.
        """
        while sum(1 for path in self.counters.by_path if path.startswith(prefix)) < count:
            await self._changed.wait()

    def channel_prefix(self, live: bool, channel: str) -> str:
        return f"/{'live' if live else 'vod'}/{_check_channel(channel)}/"


def _resolve(root: Path, relative: str) -> Path:
    target = (root / relative).resolve()
    if not target.is_relative_to(root) or not target.is_file():
        raise web.HTTPNotFound()
    return target


def _text(body: str, suffix: str) -> web.Response:
    return web.Response(
        text=body, content_type=_CONTENT_TYPES[suffix], headers={"Cache-Control": "no-cache"}
    )


def _check_channel(channel: str) -> str:
    if not _CHANNEL.match(channel):
        raise LocalProtocolError(f"invalid channel name {channel!r}")
    return channel
