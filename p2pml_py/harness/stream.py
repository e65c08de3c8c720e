"""The playable test stream: generated once with ffmpeg, then loaded from disk.

:func:`ensure_stream` writes an HLS stream into ``<cache>/stream/`` (idempotent: a stamp file holds
the generation parameters, a different stamp regenerates): ``testsrc2`` video plus a ``sine`` tone,
H.264 baseline + AAC in MPEG-TS, 2-second segments cut at fixed 2-second GOPs, two renditions
(256x144 and 426x240) listed in ``master.m3u8``, each in ``v<N>/index.m3u8`` + ``v<N>/seg<K>.ts``.

:class:`TestStream` describes any stream laid out that way -- a master playlist with relative
variant URIs, media playlists with relative segment URIs, every file under one directory -- so a
user can point the harness at their own stream (``P2PML_INTEROP_STREAM=/dir``). The origin serves it
as VOD and re-plays it as a live sliding window (:mod:`p2pml_py.harness.origin`).
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
from p2pml_py.harness.paths import cache_dir

__all__ = ["Rendition", "Segment", "TestStream", "ensure_stream", "generate_stream"]

logger = logging.getLogger(__name__)

#: Bump when the ffmpeg command changes, so cached streams are regenerated.
_GENERATOR_VERSION = 1
_DEFAULT_DURATION = 60


@dataclass(frozen=True, slots=True)
class Segment:
    """One media segment file of a rendition (``index`` = 0-based position = VOD external id)."""

    index: int
    uri: str
    duration: float
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Rendition:
    """One variant of the master playlist.

    ``level`` is hls.js's level number (variants sorted by bitrate, INTEROP-NOTES); ``position``
    is the variant's place in the master playlist (the 2.2.x stream index, SPEC c.2).
    """

    position: int
    level: int
    bandwidth: int
    resolution: str | None
    playlist_uri: str
    target_duration: int
    segments: tuple[Segment, ...]

    @property
    def directory(self) -> str:
        parent = str(PurePosixPath(self.playlist_uri).parent)
        return "" if parent == "." else parent

    def segment_path(self, segment: Segment) -> str:
        """Path of a segment relative to the stream root."""
        return str(PurePosixPath(self.directory) / segment.uri) if self.directory else segment.uri


@dataclass(frozen=True, slots=True)
class TestStream:
    """A VOD HLS stream on disk (see the module doc for the expected layout)."""

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
        variants: list[tuple[int, str | None, str]] = []
        lines = [line.strip() for line in master.splitlines()]
        for i, line in enumerate(lines):
            if not line.startswith("#EXT-X-STREAM-INF:"):
                continue
            attrs = _attributes(line.split(":", 1)[1])
            uri = next((u for u in lines[i + 1 :] if u and not u.startswith("#")), None)
            if uri is None:
                raise HarnessError(f"{master_path}: EXT-X-STREAM-INF without a URI")
            bandwidth = int(attrs.get("BANDWIDTH") or attrs.get("AVERAGE-BANDWIDTH") or 0)
            variants.append((bandwidth, attrs.get("RESOLUTION"), uri))
        if not variants:
            raise HarnessError(f"{master_path} lists no variants")
        # hls.js sorts levels by bitrate (stable sort), INTEROP-NOTES "Browser page".
        order = sorted(range(len(variants)), key=lambda k: variants[k][0])
        level_of = {position: level for level, position in enumerate(order)}
        renditions = []
        for position, (bandwidth, resolution, uri) in enumerate(variants):
            target, segments = _load_media_playlist(root, uri)
            renditions.append(
                Rendition(
                    position=position,
                    level=level_of[position],
                    bandwidth=bandwidth,
                    resolution=resolution,
                    playlist_uri=uri,
                    target_duration=target,
                    segments=segments,
                )
            )
        return cls(root=root, master_text=master, renditions=tuple(renditions))

    def by_level(self, level: int) -> Rendition:
        for rendition in self.renditions:
            if rendition.level == level:
                return rendition
        raise HarnessError(f"the stream has no hls.js level {level}")

    def sha256_by_path(self) -> dict[str, str]:
        """Segment path (relative to the root) -> SHA-256 hex, for every rendition."""
        return {r.segment_path(s): s.sha256 for r in self.renditions for s in r.segments}

    @property
    def duration(self) -> float:
        return min(sum(s.duration for s in r.segments) for r in self.renditions)


def _attributes(text: str) -> dict[str, str]:
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
                    uri=line,
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


def generate_stream(target: Path, duration: int = _DEFAULT_DURATION) -> TestStream:
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
        stamp = {"generator": _GENERATOR_VERSION, "duration": duration}
        (work / "stream.json").write_text(json.dumps(stamp), encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        os.replace(work, target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    logger.info("generated the test stream in %s (%.0f s)", target, stream.duration)
    return TestStream.load(target)


def ensure_stream(cache: Path | None = None, duration: int = _DEFAULT_DURATION) -> TestStream:
    """The harness's stream: ``P2PML_INTEROP_STREAM`` if set, else the generated one (made once)."""
    own = os.environ.get("P2PML_INTEROP_STREAM")
    if own:
        return TestStream.load(Path(own))
    target = (cache or cache_dir()) / "stream"
    stamp_path = target / "stream.json"
    want = {"generator": _GENERATOR_VERSION, "duration": duration}
    try:
        if json.loads(stamp_path.read_text(encoding="utf-8")) == want:
            return TestStream.load(target)
    except (OSError, ValueError):
        pass
    return generate_stream(target, duration)


if __name__ == "__main__":  # python -m p2pml_py.harness.stream: used by interop/setup.sh
    logging.basicConfig(level=logging.INFO)
    made = ensure_stream()
    logger.info(
        "stream at %s: %d renditions, %.0f s", made.root, len(made.renditions), made.duration
    )
