"""A synthetic HLS origin on aiohttp, for the demo and for tests (no ffmpeg, no media).

Every byte it serves is a pure function of its configuration and the clock, so a test can check a
downloaded segment against :meth:`SyntheticOrigin.expected_segment` without storing anything:

* a segment's bytes are ``SHAKE-256("p2pml-py segment|<rendition>|<sequence>")`` truncated to the
  rendition's segment size, with the first byte forced to ``0x47`` (the MPEG-TS sync byte) -- so
  no segment starts with the ``cstr``/``dstr`` prefixes the browsers' data channel uses for text;
* an init segment (``EXT-X-MAP``) is ``SHAKE-256("p2pml-py init|<rendition>")``, first byte 0x00;
* a byte-range rendition serves one file, ``media.ts``, in which segment ``n`` occupies
  ``[(n - start_sequence) * size, (n - start_sequence + 1) * size)``.

**Live** (``live=True``): at start the media playlists hold ``window`` segments beginning at
``start_sequence``; one more appears every ``segment_duration`` seconds of ``time_source`` (plus
one per :meth:`SyntheticOrigin.advance` call), the oldest leaves the playlist (EXT-X-MEDIA-SEQUENCE
advances) and there is no ``EXT-X-ENDLIST``. Segments that left the window stay downloadable,
future ones are 404. **VOD**: ``vod_segments`` segments and ``EXT-X-ENDLIST``.

Fault switches for failure tests: ``outage`` (503 for every request), ``stall`` (segment bodies
stop half-way until the switch is cleared), ``honour_range`` (``False``: ignore ``Range`` and send
the whole file with 200), and :meth:`SyntheticOrigin.override` (a fixed answer for one path).
``/redirect/<hops>/<path>`` answers 302 towards ``/redirect/<hops-1>/<path>`` ... ``/<path>``
(query string kept).
Every request is counted per path (:class:`OriginStats`): the origin's egress.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import web

__all__ = [
    "DEFAULT_RENDITIONS",
    "OriginStats",
    "Rendition",
    "SyntheticOrigin",
    "init_bytes",
    "segment_bytes",
]

logger = logging.getLogger(__name__)

_TS_SYNC_BYTE = 0x47


@dataclass(frozen=True, slots=True)
class Rendition:
    """One playlist of the origin: a video variant or (``kind="audio"``) an audio rendition.

    ``segment_size`` overrides the origin's default; ``byte_range`` serves all segments from one
    file with ``EXT-X-BYTERANGE``; ``init_segment`` adds an ``EXT-X-MAP`` (``init.mp4``).
    """

    name: str
    bandwidth: int = 800_000
    width: int | None = None
    height: int | None = None
    kind: Literal["video", "audio"] = "video"
    segment_size: int | None = None
    byte_range: bool = False
    init_segment: bool = False

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name or self.name in {"redirect", "master.m3u8"}:
            raise ValueError(f"invalid rendition name {self.name!r}")
        if self.segment_size is not None and self.segment_size < 1:
            raise ValueError(f"segment_size must be >= 1, got {self.segment_size}")


DEFAULT_RENDITIONS: tuple[Rendition, ...] = (
    Rendition("360p", bandwidth=800_000, width=640, height=360),
    Rendition("720p", bandwidth=2_400_000, width=1280, height=720),
)
_AUDIO_RENDITION = Rendition("audio", bandwidth=128_000, kind="audio")


def segment_bytes(rendition: str, sequence: int, size: int) -> bytes:
    """The bytes of segment ``sequence`` of ``rendition`` (``size`` bytes)."""
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    data = bytearray(
        hashlib.shake_256(f"p2pml-py segment|{rendition}|{sequence}".encode()).digest(size)
    )
    data[0] = _TS_SYNC_BYTE
    return bytes(data)


def init_bytes(rendition: str, size: int = 1024) -> bytes:
    """The bytes of the init segment (``EXT-X-MAP``) of ``rendition``."""
    data = bytearray(hashlib.shake_256(f"p2pml-py init|{rendition}".encode()).digest(size))
    data[0] = 0
    return bytes(data)


@dataclass(slots=True)
class OriginStats:
    """What the origin served: requests and body bytes per path, responses per status."""

    requests: Counter[str] = field(default_factory=Counter)
    bytes: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    @property
    def total_bytes(self) -> int:
        return sum(self.bytes.values())

    def segment_bytes(self) -> int:
        """Body bytes of everything but playlists (segments, init segments, byte-range files)."""
        return sum(n for path, n in self.bytes.items() if not path.endswith(".m3u8"))


class SyntheticOrigin:
    """An in-process HLS origin; use ``async with`` (or :meth:`start` / :meth:`aclose`)."""

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
        self.host = host
        self.port = port
        self.renditions: dict[str, Rendition] = {r.name: r for r in all_renditions}
        self.segment_duration = segment_duration
        self.segment_size = segment_size
        self.live = live
        self.window = window
        self.vod_segments = vod_segments
        self.start_sequence = start_sequence
        self.init_size = init_size
        self.time_source = time_source
        self.stats = OriginStats()
        #: 503 for every request while set.
        self.outage = False
        #: ``False``: ignore ``Range`` headers and answer 200 with the whole file.
        self.honour_range = True
        self._stall = False
        self._release = asyncio.Event()
        self._release.set()
        self._overrides: dict[str, tuple[int, bytes]] = {}
        self._advanced = 0
        self._t0 = 0.0
        self._runner: web.AppRunner | None = None
        self._closed = False

    # ---------------------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> SyntheticOrigin:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        if self._runner is not None:
            return
        app = web.Application()
        app.router.add_get("/{path:.*}", self._handle)
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
        self._t0 = self.time_source()
        logger.info("synthetic origin at %s (%s)", self.url, "live" if self.live else "VOD")

    async def aclose(self) -> None:
        """Stop serving (stalled responses are released first). Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._release.set()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    # ---------------------------------------------------------------------------- URLs

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The master playlist."""
        return f"{self.base_url}/master.m3u8"

    def redirect_url(self, path: str = "master.m3u8", hops: int = 1) -> str:
        """A URL that reaches ``/<path>`` through ``hops`` 302 redirects."""
        return f"{self.base_url}/redirect/{hops}/{path.lstrip('/')}"

    def playlist_url(self, rendition: str) -> str:
        return f"{self.base_url}/{rendition}/index.m3u8"

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

    # ---------------------------------------------------------------------------- content

    def advance(self, count: int = 1) -> None:
        """Live: publish ``count`` more segments now, whatever the clock says."""
        if count < 0:
            raise ValueError("count must be >= 0")
        self._advanced += count

    @property
    def sequence_range(self) -> tuple[int, int]:
        """``(first, last)`` sequence numbers in the media playlists right now (inclusive)."""
        if not self.live:
            return self.start_sequence, self.start_sequence + self.vod_segments - 1
        elapsed = max(0, math.floor((self.time_source() - self._t0) / self.segment_duration))
        last = self.start_sequence + self.window - 1 + elapsed + self._advanced
        return last - self.window + 1, last

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

    def _body(self, path: str) -> tuple[bytes, str] | None:
        """The full body and content type for ``path``, or ``None`` (404)."""
        if path == "/master.m3u8":
            return self.master_playlist().encode(), "application/vnd.apple.mpegurl"
        parts = path.strip("/").split("/")
        if len(parts) != 2 or parts[0] not in self.renditions:
            return None
        name, leaf = parts
        r = self.renditions[name]
        if leaf == "index.m3u8":
            return self.media_playlist(name).encode(), "application/vnd.apple.mpegurl"
        if leaf == "init.mp4" and r.init_segment:
            return self.expected_init(name), "video/mp4"
        if leaf == "media.ts" and r.byte_range:
            return self.media_file(name), "video/mp2t"
        stem, _, ext = leaf.partition(".")
        if r.byte_range or ext != ("m4s" if r.init_segment else "ts") or not stem.isdigit():
            return None
        seq = int(stem)
        first, last = self.sequence_range
        if not first <= seq <= last and not (self.live and self.start_sequence <= seq < first):
            return None  # future segments and unknown ones; those that left a live window stay
        return self.expected_segment(name, seq), "video/mp4" if r.init_segment else "video/mp2t"

    # ---------------------------------------------------------------------------- HTTP

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
            self.stats.bytes[path] += len(data)
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
        found = self._body(path)
        if found is None:
            return web.Response(status=404, text="not found")
        body, content_type = found
        status = 200
        headers = {"Accept-Ranges": "bytes"} if self.honour_range else {}
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
        if self._stall and not path.endswith(".m3u8"):
            return await self._stalled(request, path, status, headers, content_type, body)
        self.stats.bytes[path] += len(body)
        return web.Response(status=status, body=body, headers=headers, content_type=content_type)

    async def _stalled(
        self,
        request: web.Request,
        path: str,
        status: int,
        headers: dict[str, str],
        content_type: str,
        body: bytes,
    ) -> web.StreamResponse:
        response = web.StreamResponse(status=status, headers=headers)
        response.content_type = content_type
        response.content_length = len(body)
        await response.prepare(request)
        half = len(body) // 2
        await response.write(body[:half])
        self.stats.bytes[path] += half
        await self._release.wait()
        if self._closed:
            if request.transport is not None:
                request.transport.close()  # drop the connection with the body incomplete
            return response
        await response.write(body[half:])
        self.stats.bytes[path] += len(body) - half
        await response.write_eof()
        return response
