"""The test HLS origin on aiohttp: for the demo, the tests, the benchmarks and the interop harness.

One HTTP core, :class:`Origin`, serves two kinds of content (:mod:`p2pml_py.testing.media`):

* :class:`SyntheticOrigin` -- synthetic renditions, no ffmpeg and no media. Every byte is a pure
  function of the configuration and the clock, so a test checks a downloaded segment against
  :meth:`SyntheticOrigin.expected_segment` without storing anything. Segment ``n`` of rendition
  ``r`` is ``/<r>/<n>.ts`` (``.m4s`` with an init segment, ``/<r>/init.mp4``); a byte-range
  rendition serves one file, ``/<r>/media.ts``, in which segment ``n`` occupies
  ``[(n - start_sequence) * size, (n - start_sequence + 1) * size)``.
  **Live** (``live=True``): at start the media playlists hold ``window`` segments beginning at
  ``start_sequence``; one more appears every ``segment_duration`` seconds of ``time_source``
  (plus one per :meth:`SyntheticOrigin.advance` call), the oldest leaves the playlist
  (EXT-X-MEDIA-SEQUENCE advances) and there is no ``EXT-X-ENDLIST``. **VOD**: ``vod_segments``
  segments and ``EXT-X-ENDLIST``.
* :class:`StreamOrigin` -- a recorded stream (:class:`~p2pml_py.testing.stream.TestStream`).
  ``/vod/<channel>/<path>``: its files as they are (VOD). The channel name only changes the URL
  -- and with it the swarm id browsers derive from it (SPEC c.2) -- so tests that share an origin
  never share a swarm. ``/live/<channel>/master.m3u8``, ``/live/<channel>/r<n>/index.m3u8``,
  ``/live/<channel>/r<n>/s<sequence>.ts``: the same segments re-played as a live sliding window.
  Each channel's clock starts at its first request; the window holds ``live_window`` segments,
  one more appears every segment duration, the media sequence starts at ``live_base_sequence``.
  Sequence ``s`` carries VOD segment ``(s - base) % count``; where the loop wraps an
  ``EXT-X-DISCONTINUITY`` is written (and ``EXT-X-DISCONTINUITY-SEQUENCE`` kept right).

In both, live segments that left the window stay downloadable and future ones are 404. The core
answers ``Range`` requests (the p2p-media-loader core resumes failed HTTP downloads with them) and
counts every request per path (:class:`OriginStats`): the origin's egress, which tests compare
with what peers report. Fault switches for failure tests: ``outage`` (503 for every request),
``stall`` (segment bodies stop half-way until the switch is cleared), ``honour_range`` (``False``:
ignore ``Range`` and send the whole file with 200), and :meth:`Origin.override` (a fixed answer
for one path). ``/redirect/<hops>/<path>`` answers 302 towards ``/redirect/<hops-1>/<path>`` ...
``/<path>`` (query string kept).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import mimetypes
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Self
from urllib.parse import urlsplit

from aiohttp import web

from p2pml_py.base.aio import Notifier
from p2pml_py.base.errors import LocalProtocolError
from p2pml_py.hls.source import SourceConfig
from p2pml_py.hls.validate import Level, ValidationPolicy
from p2pml_py.testing.media import LiveClock, Rendition, Segment, init_bytes, segment_bytes
from p2pml_py.testing.stream import TestStream

__all__ = [
    "DEFAULT_RENDITIONS",
    "LENGTH_ONLY",
    "Origin",
    "OriginFaults",
    "OriginStats",
    "Rendition",
    "StreamOrigin",
    "SyntheticOrigin",
    "content_type",
    "file_under",
    "init_bytes",
    "segment_bytes",
]

#: The validation synthetic segments pass (:meth:`SyntheticOrigin.source_config`).
LENGTH_ONLY = ValidationPolicy(level=Level.LENGTH)

logger = logging.getLogger(__name__)

DEFAULT_RENDITIONS: tuple[Rendition, ...] = (
    Rendition("360p", bandwidth=800_000, width=640, height=360),
    Rendition("720p", bandwidth=2_400_000, width=1280, height=720),
)
_AUDIO_RENDITION = Rendition("audio", bandwidth=128_000, kind="audio")
_CONTENT_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".ts": "video/mp2t",
    ".m4s": "video/mp4",
    ".mp4": "video/mp4",
}
_CHANNEL = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_LIVE_SEGMENT = re.compile(r"s(\d+)\.ts")


def content_type(path: str) -> str:
    """The ``Content-Type`` of a file served at ``path``."""
    suffix = PurePosixPath(path).suffix
    return _CONTENT_TYPES.get(suffix) or mimetypes.guess_type(path)[0] or "application/octet-stream"


def file_under(root: Path, relative: str) -> Path | None:
    """The file ``relative`` names under ``root``; ``None`` if there is none or it leads out."""
    base = root.resolve()
    target = (base / relative).resolve()
    return target if target.is_relative_to(base) and target.is_file() else None


@dataclass(slots=True)
class OriginStats:
    """What the origin served: requests and body bytes per path, responses per status.

    A path has a ``bytes`` entry once a body was sent for it (0 bytes included); ``changed``
    fires on every body.
    """

    requests: Counter[str] = field(default_factory=Counter)
    bytes: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    #: Conditional GETs answered 304.
    conditional: Counter[int] = field(default_factory=Counter)
    changed: Notifier = field(default_factory=Notifier, repr=False, compare=False)

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    @property
    def total_bytes(self) -> int:
        return sum(self.bytes.values())

    def sent(self, path: str, count: int) -> None:
        self.bytes[path] += count
        self.changed.notify()

    def segment_paths(self, prefix: str = "/") -> list[str]:
        """Paths under ``prefix`` that got a body, playlists aside (segments, init segments,
        byte-range files)."""
        return [p for p in self.bytes if p.startswith(prefix) and not p.endswith(".m3u8")]

    def bytes_under(self, prefix: str) -> int:
        """Body bytes of everything but playlists under ``prefix`` (e.g. ``/vod/chan/``)."""
        return sum(self.bytes[p] for p in self.segment_paths(prefix))

    def segment_bytes(self) -> int:
        """Body bytes of everything but playlists."""
        return self.bytes_under("/")


@dataclass(slots=True)
class OriginFaults:
    """Faults injected into segment responses (playlists are never touched), as a misbehaving
    origin or CDN edge produces them:

    * ``truncate`` (while set) or ``truncate_rate`` (random share): 200 with the first half of the
      body and a ``Content-Length`` that matches it -- nothing at the HTTP level tells the client;
    * ``fail_rate``: 500.

    ``seed`` makes the random draws repeatable; :attr:`counts` says what was injected.
    """

    truncate: bool = False
    truncate_rate: float = 0.0
    fail_rate: float = 0.0
    seed: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    _rng: random.Random | None = field(default=None, repr=False)

    def draw(self) -> str | None:
        """The fault for the next segment response: ``"truncate"``, ``"fail"`` or ``None``."""
        if self.truncate:
            kind: str | None = "truncate"
        elif self.truncate_rate <= 0 and self.fail_rate <= 0:
            return None
        else:
            if self._rng is None:
                self._rng = random.Random(self.seed)
            roll = self._rng.random()
            if roll < self.truncate_rate:
                kind = "truncate"
            elif roll < self.truncate_rate + self.fail_rate:
                kind = "fail"
            else:
                kind = None
        if kind is not None:
            self.counts[kind] += 1
        return kind


class Origin:
    """The HTTP core: use ``async with`` (or :meth:`start` / :meth:`aclose`); subclasses say
    what a path holds (:meth:`_body`)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        time_source: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host = host
        self.port = port
        self.time_source = time_source
        self.stats = OriginStats()
        #: 503 for every request while set.
        self.outage = False
        #: ``False``: ignore ``Range`` headers and answer 200 with the whole file.
        self.honour_range = True
        #: Faults injected into segment responses.
        self.faults = OriginFaults()
        self._stall = False
        self._release = asyncio.Event()
        self._release.set()
        self._overrides: dict[str, tuple[int, bytes]] = {}
        self._runner: web.AppRunner | None = None
        self._closed = False

    # ---------------------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        if self._runner is not None:
            return
        app = web.Application()
        self._add_routes(app.router)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = runner.addresses[0][1]
        self._started()
        logger.info("%s on %s", type(self).__name__, self.base_url)

    async def aclose(self) -> None:
        """Stop serving (stalled responses are released first). Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._release.set()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    def _add_routes(self, router: web.UrlDispatcher) -> None:
        """Subclasses may add routes first (they are matched in order)."""
        router.add_get("/{path:.*}", self._handle)

    def _started(self) -> None:
        """Called once the server listens."""

    # ---------------------------------------------------------------------------- URLs

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def redirect_url(self, path: str = "master.m3u8", hops: int = 1) -> str:
        """A URL that reaches ``/<path>`` through ``hops`` 302 redirects."""
        return f"{self.base_url}/redirect/{hops}/{path.lstrip('/')}"

    # ---------------------------------------------------------------------------- switches

    @property
    def stall(self) -> bool:
        """While set, segment bodies stop after half their bytes (until cleared or closed)."""
        return self._stall

    @stall.setter
    def stall(self, value: bool) -> None:
        self._stall = value
        if value:
            if self._release.is_set() and not self._closed:
                self._release = asyncio.Event()
        else:
            self._release.set()

    def override(self, path: str, body: bytes | str, status: int = 200) -> None:
        """Answer ``path`` (e.g. ``"/360p/index.m3u8"``) with ``status`` and ``body``."""
        data = body.encode() if isinstance(body, str) else body
        self._overrides["/" + path.lstrip("/")] = (status, data)

    def clear_override(self, path: str) -> None:
        self._overrides.pop("/" + path.lstrip("/"), None)

    async def wait_segment_requests(self, prefix: str, count: int) -> None:
        """Wait until bodies of ``count`` distinct segment paths under ``prefix`` were sent.

        Bound it with ``asyncio.timeout``; it waits forever otherwise.
        """
        await self.stats.changed.wait_until(lambda: len(self.stats.segment_paths(prefix)) >= count)

    # ---------------------------------------------------------------------------- HTTP

    def _body(self, path: str) -> bytes | None:
        """The full body at ``path`` now, or ``None`` (404)."""
        raise NotImplementedError

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.stats.requests[path] += 1
        response = await self._respond(request, path)
        self.stats.statuses[response.status] += 1
        return response

    async def _respond(self, request: web.Request, path: str) -> web.StreamResponse:
        if self.outage:
            return web.Response(status=503, text="outage")
        if path in self._overrides:
            status, data = self._overrides[path]
            self.stats.sent(path, len(data))
            return web.Response(status=status, body=data)
        if path.startswith("/redirect/"):
            hops_text, _, rest = path[len("/redirect/") :].partition("/")
            if not hops_text.isdigit():
                return web.Response(status=404)
            hops = int(hops_text)
            target = f"/redirect/{hops - 1}/{rest}" if hops > 1 else f"/{rest}"
            if request.query_string:
                target += f"?{request.query_string}"
            return web.Response(status=302, headers={"Location": target})
        body = None if ".." in path.split("/") else self._body(path)
        if body is None:
            return web.Response(status=404, text="not found")
        status = 200
        # A strong validator of the whole file (RFC 9110 section 8.8.3), for conditional GETs.
        etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
        headers = {"Cache-Control": "no-cache", "ETag": etag}
        if etag in _etags(request.headers.get("If-None-Match", "")):
            self.stats.conditional[304] += 1
            self.stats.changed.notify()
            return web.Response(status=304, headers=headers)
        if self.honour_range:
            headers["Accept-Ranges"] = "bytes"
        if self.honour_range and "Range" in request.headers:
            try:
                rng = request.http_range
            except ValueError:
                return web.Response(status=416)
            start, stop, _ = rng.indices(len(body))
            if start >= stop:
                return web.Response(status=416, headers={"Content-Range": f"bytes */{len(body)}"})
            headers["Content-Range"] = f"bytes {start}-{stop - 1}/{len(body)}"
            body = body[start:stop]
            status = 206
        kind = content_type(path)
        fault = None if path.endswith(".m3u8") else self.faults.draw()
        if fault == "fail":
            return web.Response(status=500, text="injected failure")
        if fault == "truncate":
            body = body[: len(body) // 2]
        if self._stall and not path.endswith(".m3u8"):
            return await self._stalled(request, path, status, headers, kind, body)
        self.stats.sent(path, len(body))
        return web.Response(status=status, body=body, headers=headers, content_type=kind)

    async def _stalled(
        self,
        request: web.Request,
        path: str,
        status: int,
        headers: dict[str, str],
        kind: str,
        body: bytes,
    ) -> web.StreamResponse:
        response = web.StreamResponse(status=status, headers=headers)
        response.content_type = kind
        response.content_length = len(body)
        await response.prepare(request)
        half = len(body) // 2
        await response.write(body[:half])
        self.stats.sent(path, half)
        await self._release.wait()
        if self._closed:
            if request.transport is not None:
                request.transport.close()  # drop the connection with the body incomplete
            return response
        await response.write(body[half:])
        self.stats.sent(path, len(body) - half)
        await response.write_eof()
        return response


class SyntheticOrigin(Origin):
    """Synthetic renditions at ``/master.m3u8`` (see the module doc)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        renditions: Sequence[Rendition] = DEFAULT_RENDITIONS,
        segment_duration: float = 2.0,
        segment_size: int = 32 * 1024,
        live: bool = False,
        window: int = 5,
        vod_segments: int = 10,
        audio: bool = False,
        start_sequence: int = 0,
        init_size: int = 1024,
        time_source: Callable[[], float] = time.monotonic,
    ) -> None:
        if not math.isfinite(segment_duration) or segment_duration <= 0:
            raise ValueError(f"segment_duration must be > 0, got {segment_duration}")
        if segment_size < 1 or window < 1 or vod_segments < 1 or start_sequence < 0:
            raise ValueError("segment_size, window and vod_segments must be >= 1, start >= 0")
        all_renditions = list(renditions)
        if audio:
            all_renditions.append(_AUDIO_RENDITION)
        if not any(r.kind == "video" for r in all_renditions):
            raise ValueError("at least one video rendition is needed")
        names = [r.name for r in all_renditions]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate rendition names in {names}")
        super().__init__(host, port, time_source=time_source)
        self.renditions: dict[str, Rendition] = {r.name: r for r in all_renditions}
        self.segment_duration = segment_duration
        self.segment_size = segment_size
        self.live = live
        self.window = window
        self.vod_segments = vod_segments
        self.start_sequence = start_sequence
        self.init_size = init_size
        self._live = LiveClock(start_sequence, window, segment_duration, time_source())

    @staticmethod
    def source_config(**overrides: Any) -> SourceConfig:
        """The :class:`SourceConfig` peers following this origin need: its segments are not
        media (module doc), so they are checked by length only (``validation=length``, what
        ``--validate length`` and the super-peer's ``validate = "length"`` say)."""
        overrides.setdefault("validation", LENGTH_ONLY)
        return SourceConfig(**overrides)

    def _started(self) -> None:
        self._live.started = self.time_source()

    @property
    def url(self) -> str:
        """The master playlist."""
        return f"{self.base_url}/master.m3u8"

    def playlist_url(self, rendition: str) -> str:
        return f"{self.base_url}/{rendition}/index.m3u8"

    # ---------------------------------------------------------------------------- content

    def advance(self, count: int = 1) -> None:
        """Live: publish ``count`` more segments now, whatever the clock says."""
        if count < 0:
            raise ValueError("count must be >= 0")
        self._live.skipped += count

    @property
    def sequence_range(self) -> tuple[int, int]:
        """``(first, last)`` sequence numbers in the media playlists right now (inclusive)."""
        if not self.live:
            return self.start_sequence, self.start_sequence + self.vod_segments - 1
        return self._live.window_at(self.time_source())

    def size_of(self, rendition: str) -> int:
        return self._rendition(rendition).segment_size or self.segment_size

    def expected_segment(self, rendition: str, sequence: int) -> bytes:
        """The bytes the origin serves for segment ``sequence`` of ``rendition``."""
        return segment_bytes(rendition, sequence, self.size_of(rendition))

    def expected_init(self, rendition: str) -> bytes:
        return init_bytes(rendition, self.init_size)

    def master_playlist(self) -> str:
        lines = ["#EXTM3U", "#EXT-X-VERSION:6", "#EXT-X-INDEPENDENT-SEGMENTS"]
        audio = [r for r in self.renditions.values() if r.kind == "audio"]
        for i, r in enumerate(audio):
            default = "YES" if i == 0 else "NO"
            lines.append(
                f'#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="{r.name}",LANGUAGE="en",'
                f'DEFAULT={default},AUTOSELECT=YES,URI="{r.name}/index.m3u8"'
            )
        for r in self.renditions.values():
            if r.kind != "video":
                continue
            attrs = [f"BANDWIDTH={r.bandwidth}"]
            if r.width and r.height:
                attrs.append(f"RESOLUTION={r.width}x{r.height}")
            attrs.append('CODECS="avc1.64001f,mp4a.40.2"')
            if audio:
                attrs.append('AUDIO="aud"')
            lines += ["#EXT-X-STREAM-INF:" + ",".join(attrs), f"{r.name}/index.m3u8"]
        return "\n".join(lines) + "\n"

    def media_playlist(self, rendition: str) -> str:
        r = self._rendition(rendition)
        first, last = self.sequence_range
        size = self.size_of(rendition)
        lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:7",
            f"#EXT-X-TARGETDURATION:{math.ceil(self.segment_duration)}",
            f"#EXT-X-MEDIA-SEQUENCE:{first}",
        ]
        if not self.live:
            lines.append("#EXT-X-PLAYLIST-TYPE:VOD")
        if r.init_segment:
            lines.append('#EXT-X-MAP:URI="init.mp4"')
        for seq in range(first, last + 1):
            lines.append(f"#EXTINF:{self.segment_duration:.3f},")
            if r.byte_range:
                # Only the first range carries an offset; the others continue from it.
                offset = f"@{(seq - self.start_sequence) * size}" if seq == first else ""
                lines += [f"#EXT-X-BYTERANGE:{size}{offset}", "media.ts"]
            else:
                lines.append(f"{seq}.{'m4s' if r.init_segment else 'ts'}")
        if not self.live:
            lines.append("#EXT-X-ENDLIST")
        return "\n".join(lines) + "\n"

    def media_file(self, rendition: str, start: int = 0, stop: int | None = None) -> bytes:
        """Bytes ``[start, stop)`` of a byte-range rendition's ``media.ts`` as it is now."""
        size = self.size_of(rendition)
        _, last = self.sequence_range
        length = (last - self.start_sequence + 1) * size
        stop = length if stop is None else min(stop, length)
        if start >= stop:
            return b""
        out = bytearray()
        for index in range(start // size, (stop - 1) // size + 1):
            out += self.expected_segment(rendition, self.start_sequence + index)
        base = (start // size) * size
        return bytes(out[start - base : stop - base])

    def _rendition(self, name: str) -> Rendition:
        try:
            return self.renditions[name]
        except KeyError:
            raise KeyError(f"no rendition {name!r}") from None

    def _body(self, path: str) -> bytes | None:
        if path == "/master.m3u8":
            return self.master_playlist().encode()
        parts = path.strip("/").split("/")
        if len(parts) != 2 or parts[0] not in self.renditions:
            return None
        name, leaf = parts
        r = self.renditions[name]
        if leaf == "index.m3u8":
            return self.media_playlist(name).encode()
        if leaf == "init.mp4" and r.init_segment:
            return self.expected_init(name)
        if leaf == "media.ts" and r.byte_range:
            return self.media_file(name)
        stem, _, ext = leaf.partition(".")
        if r.byte_range or ext != ("m4s" if r.init_segment else "ts") or not stem.isdigit():
            return None
        seq = int(stem)
        first, last = self.sequence_range
        if not first <= seq <= last and not (self.live and self.start_sequence <= seq < first):
            return None  # future segments and unknown ones; those that left a live window stay
        return self.expected_segment(name, seq)


class StreamOrigin(Origin):
    """A recorded stream as VOD and as live channels (see the module doc)."""

    def __init__(
        self,
        stream: TestStream,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        live_window: int = 10,
        live_base_sequence: int = 100,
        time_source: Callable[[], float] = time.monotonic,
    ) -> None:
        if live_window < 1:
            raise LocalProtocolError("live_window must be >= 1")
        super().__init__(host, port, time_source=time_source)
        self.stream = stream
        self.live_window = live_window
        self.live_base_sequence = live_base_sequence
        self._segment_seconds = float(min(r.target_duration for r in stream.renditions))
        self._channels: dict[str, LiveClock] = {}

    # -- URLs ---------------------------------------------------------------------------------

    def vod_url(self, channel: str = "main") -> str:
        return f"{self.base_url}/vod/{_check_channel(channel)}/master.m3u8"

    def live_url(self, channel: str = "main") -> str:
        return f"{self.base_url}/live/{_check_channel(channel)}/master.m3u8"

    def manifest_url(self, live: bool, channel: str = "main") -> str:
        return self.live_url(channel) if live else self.vod_url(channel)

    def channel_prefix(self, live: bool, channel: str) -> str:
        return f"/{'live' if live else 'vod'}/{_check_channel(channel)}/"

    # -- live clock -----------------------------------------------------------------------------

    def _clock(self, channel: str) -> LiveClock:
        clock = self._channels.get(channel)
        if clock is None:
            clock = self._channels[channel] = LiveClock(
                self.live_base_sequence,
                self.live_window,
                self._segment_seconds,
                self.time_source(),
            )
        return clock

    def start_live(self, channel: str) -> None:
        """Start a live channel's clock now (otherwise its first request starts it)."""
        self._clock(_check_channel(channel))

    def fast_forward(self, channel: str, seconds: float) -> None:
        """Move a live channel ``seconds`` ahead (its window advances as if time had passed)."""
        self._clock(_check_channel(channel)).started -= seconds

    def live_edge(self, channel: str) -> int:
        """Media sequence of the newest segment of a live channel now."""
        return self._clock(channel).newest(self.time_source())

    def _live_file(self, rendition: Rendition, sequence: int) -> Segment:
        return rendition.segments[(sequence - self.live_base_sequence) % len(rendition.segments)]

    def live_playlist(self, channel: str, rendition: Rendition) -> str:
        first, newest = self._clock(channel).window_at(self.time_source())
        count = len(rendition.segments)
        lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:3",
            f"#EXT-X-TARGETDURATION:{rendition.target_duration}",
            f"#EXT-X-MEDIA-SEQUENCE:{first}",
            f"#EXT-X-DISCONTINUITY-SEQUENCE:{(first - self.live_base_sequence) // count}",
        ]
        for sequence in range(first, newest + 1):
            file = self._live_file(rendition, sequence)
            if file.index == 0 and sequence != first:
                lines.append("#EXT-X-DISCONTINUITY")
            lines.append(f"#EXTINF:{file.duration:.6f},")
            lines.append(f"s{sequence}.ts")
        return "\n".join(lines) + "\n"

    def live_master(self) -> str:
        """The master playlist with each variant's URI replaced by its live playlist."""
        out: list[str] = []
        renditions = iter(self.stream.renditions)
        expect_uri = False
        for raw in self.stream.master_text.splitlines():
            line = raw.strip()
            if line.startswith("#EXT-X-STREAM-INF:"):
                expect_uri = True
                out.append(line)
            elif expect_uri and line and not line.startswith("#"):
                out.append(f"{next(renditions).name}/index.m3u8")
                expect_uri = False
            else:
                out.append(line)
        return "\n".join(out) + "\n"

    # -- verification ---------------------------------------------------------------------------

    def expected_sha256(self, url: str) -> str | None:
        """SHA-256 of the segment this origin serves at ``url`` (``None``: not a segment URL)."""
        parts = urlsplit(url).path.lstrip("/").split("/", 2)
        if len(parts) != 3:
            return None
        kind, _channel, rest = parts
        if kind == "vod":
            return self.stream.sha256_by_path().get(rest)
        name, _, leaf = rest.partition("/")
        rendition = self.stream.rendition(name)
        match = _LIVE_SEGMENT.fullmatch(leaf)
        if kind != "live" or rendition is None or match is None:
            return None
        return self._live_file(rendition, int(match.group(1))).sha256

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
        name, _, leaf = rest.partition("/")
        live = self.stream.rendition(name)
        if kind == "live" and live and leaf == "index.m3u8" and number >= self.live_base_sequence:
            return self._live_file(live, number).sha256
        return None

    # -- HTTP -----------------------------------------------------------------------------------

    def _body(self, path: str) -> bytes | None:
        kind, _, rest = path.lstrip("/").partition("/")
        channel, _, sub = rest.partition("/")
        if kind not in ("vod", "live") or not _CHANNEL.fullmatch(channel) or not sub:
            return None
        if kind == "vod":
            return _read(file_under(self.stream.root, sub))
        if sub == "master.m3u8":
            self.start_live(channel)
            return self.live_master().encode()
        name, _, leaf = sub.partition("/")
        rendition = self.stream.rendition(name)
        if rendition is None:
            return None
        if leaf == "index.m3u8":
            return self.live_playlist(channel, rendition).encode()
        segment = _LIVE_SEGMENT.fullmatch(leaf)
        if segment is None:
            return None
        sequence = int(segment.group(1))
        if not self.live_base_sequence <= sequence <= self.live_edge(channel):
            return None
        file = self._live_file(rendition, sequence)
        return _read(file_under(self.stream.root, file.path))


def _read(path: Path | None) -> bytes | None:
    return None if path is None else path.read_bytes()


def _check_channel(channel: str) -> str:
    if not _CHANNEL.fullmatch(channel):
        raise LocalProtocolError(f"invalid channel name {channel!r}")
    return channel


def _etags(header: str) -> set[str]:
    """The entity tags of an ``If-None-Match`` header (weak ones compare weakly: RFC 9110
    section 13.1.2)."""
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}
