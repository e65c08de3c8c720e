"""A recorded HLS stream on disk, and the playable one ffmpeg makes for the interop tests.

:class:`TestStream` describes a directory laid out as ffmpeg writes it -- a master playlist with
relative variant URIs, media playlists with relative segment URIs, every file under one
directory -- so a user can bring their own stream. :class:`~p2pml_py.testing.origin.StreamOrigin`
serves it as VOD and re-plays it as a live sliding window.

:func:`generate_stream` writes one with ffmpeg: ``testsrc2`` video plus a ``sine`` tone, H.264
baseline + AAC in MPEG-TS, 2-second segments cut at fixed 2-second GOPs, two renditions (256x144
and 426x240) listed in ``master.m3u8``, each in ``v<N>/index.m3u8`` + ``v<N>/seg<K>.ts``.
:func:`cached_stream` generates it once into a directory (a stamp file holds the generation
parameters; a different stamp regenerates).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from p2pml_py.base.errors import HarnessError
from p2pml_py.testing.media import Rendition, Segment

__all__ = [
    "DEFAULT_DURATION",
    "TestStream",
    "cached_stream",
    "generate_stream",
    "parse_attributes",
]

logger = logging.getLogger(__name__)

#: Bump when the ffmpeg command changes, so cached streams are regenerated.
_GENERATOR_VERSION = 1
#: Seconds of media :func:`generate_stream` makes by default.
DEFAULT_DURATION = 60


@dataclass(frozen=True, slots=True)
class TestStream:
    """A VOD HLS stream on disk (see the module doc for the expected layout).

    Its renditions are the master playlist's variants in order; rendition ``n`` is named
    ``r<n>`` (the 2.2.x stream index is that position, SPEC c.2).
    """

    __test__ = False  # not a pytest test class despite the name

    root: Path
    master_text: str
    renditions: tuple[Rendition, ...]

    @classmethod
    def load(cls, root: Path) -> TestStream:
        master_path = root / "master.m3u8"
        try:
            master = master_path.read_text(encoding="utf-8")
        except OSError as exc:
            raise HarnessError(f"no master playlist at {master_path}: {exc}") from exc
        renditions: list[Rendition] = []
        lines = [line.strip() for line in master.splitlines()]
        for i, line in enumerate(lines):
            if not line.startswith("#EXT-X-STREAM-INF:"):
                continue
            attrs = parse_attributes(line.split(":", 1)[1])
            uri = next((u for u in lines[i + 1 :] if u and not u.startswith("#")), None)
            if uri is None:
                raise HarnessError(f"{master_path}: EXT-X-STREAM-INF without a URI")
            width, _, height = attrs.get("RESOLUTION", "").partition("x")
            target, segments = _load_media_playlist(root, uri)
            renditions.append(
                Rendition(
                    name=f"r{len(renditions)}",
                    bandwidth=int(attrs.get("BANDWIDTH") or attrs.get("AVERAGE-BANDWIDTH") or 0),
                    width=int(width) if width.isdigit() else None,
                    height=int(height) if height.isdigit() else None,
                    playlist_uri=uri,
                    target_duration=target,
                    segments=segments,
                )
            )
        if not renditions:
            raise HarnessError(f"{master_path} lists no variants")
        return cls(root=root, master_text=master, renditions=tuple(renditions))

    def rendition(self, name: str) -> Rendition | None:
        return next((r for r in self.renditions if r.name == name), None)

    def by_level(self, level: int) -> Rendition:
        """The variant hls.js calls ``level``: hls.js sorts levels by bitrate (a stable sort),
        INTEROP-NOTES "Browser page"."""
        levels = sorted(self.renditions, key=lambda r: r.bandwidth)
        if not 0 <= level < len(levels):
            raise HarnessError(f"the stream has no hls.js level {level}")
        return levels[level]

    def sha256_by_path(self) -> dict[str, str]:
        """Segment path (relative to the root) -> SHA-256 hex, for every rendition."""
        return {s.path: s.sha256 for r in self.renditions for s in r.segments}

    @property
    def duration(self) -> float:
        return min(sum(s.duration for s in r.segments) for r in self.renditions)


def parse_attributes(text: str) -> dict[str, str]:
    """Parse an HLS attribute list (quoted values may contain commas)."""
    attrs: dict[str, str] = {}
    key, value, in_quotes, reading_key = "", "", False, True
    for ch in text + ",":
        if reading_key:
            if ch == "=":
                reading_key = False
            elif ch != ",":
                key += ch
        elif ch == '"':
            in_quotes = not in_quotes
        elif ch == "," and not in_quotes:
            attrs[key.strip()] = value
            key, value, reading_key = "", "", True
        else:
            value += ch
    return attrs


def _load_media_playlist(root: Path, uri: str) -> tuple[int, tuple[Segment, ...]]:
    path = root / uri
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise HarnessError(f"cannot read media playlist {path}: {exc}") from exc
    if "#EXT-X-BYTERANGE" in text or "#EXT-X-MAP" in text:
        raise HarnessError(f"{path}: byte ranges and EXT-X-MAP are not supported by the harness")
    directory = PurePosixPath(uri).parent
    target = 0
    duration: float | None = None
    segments: list[Segment] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#EXT-X-TARGETDURATION:"):
            target = int(line.split(":", 1)[1])
        elif line.startswith("#EXTINF:"):
            duration = float(line.split(":", 1)[1].split(",", 1)[0])
        elif line and not line.startswith("#"):
            if duration is None:
                raise HarnessError(f"{path}: segment {line!r} without EXTINF")
            data = (path.parent / line).read_bytes()
            segments.append(
                Segment(
                    index=len(segments),
                    path=str(directory / line),
                    duration=duration,
                    size=len(data),
                    sha256=hashlib.sha256(data).hexdigest(),
                )
            )
            duration = None
    if not segments or target <= 0:
        raise HarnessError(f"{path}: no segments or no EXT-X-TARGETDURATION")
    return target, tuple(segments)


def _ffmpeg_command(duration: int) -> list[str]:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise HarnessError("ffmpeg is needed to generate the test stream (interop/setup.sh)")
    # Fixed 2 s GOPs (25 fps, -g 50, no scene-cut keyframes) so every segment is exactly 2 s.
    return [
        ffmpeg, "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", f"testsrc2=size=426x240:rate=25:duration={duration}",
        "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={duration}",
        "-filter_complex", "[0:v]split=2[a][b];[a]scale=256:144[v0];[b]null[v1]",
        "-map", "[v0]", "-map", "1:a", "-map", "[v1]", "-map", "1:a",
        "-c:v", "libx264", "-preset", "veryfast", "-profile:v", "baseline", "-pix_fmt", "yuv420p",
        "-g", "50", "-keyint_min", "50", "-sc_threshold", "0",
        "-b:v:0", "150k", "-maxrate:v:0", "200k", "-bufsize:v:0", "300k",
        "-b:v:1", "350k", "-maxrate:v:1", "450k", "-bufsize:v:1", "700k",
        "-c:a", "aac", "-b:a", "48k", "-ac", "1",
        "-f", "hls", "-hls_time", "2", "-hls_playlist_type", "vod",
        "-hls_segment_filename", "v%v/seg%d.ts", "-master_pl_name", "master.m3u8",
        "-var_stream_map", "v:0,a:0 v:1,a:1", "v%v/index.m3u8",
    ]  # fmt: skip


def _stamp(duration: int) -> dict[str, int]:
    return {"generator": _GENERATOR_VERSION, "duration": duration}


def generate_stream(target: Path, duration: int = DEFAULT_DURATION) -> TestStream:
    """Generate the test stream into ``target`` (replaced atomically), return it."""
    command = _ffmpeg_command(duration)
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".stream-", dir=target.parent))
    try:
        for rendition in ("v0", "v1"):
            (work / rendition).mkdir()
        result = subprocess.run(
            command, cwd=work, capture_output=True, text=True, timeout=300, check=False
        )
        if result.returncode != 0:
            raise HarnessError(f"ffmpeg failed ({result.returncode}): {result.stderr[-2000:]}")
        stream = TestStream.load(work)
        (work / "stream.json").write_text(json.dumps(_stamp(duration)), encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        os.replace(work, target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    logger.info("generated the test stream in %s (%.0f s)", target, stream.duration)
    return TestStream.load(target)


def cached_stream(target: Path, duration: int = DEFAULT_DURATION) -> TestStream:
    """The stream in ``target`` if :func:`generate_stream` made it with these parameters, else a
    new one generated there."""
    try:
        if json.loads((target / "stream.json").read_text(encoding="utf-8")) == _stamp(duration):
            return TestStream.load(target)
    except (OSError, ValueError):
        pass
    return generate_stream(target, duration)
