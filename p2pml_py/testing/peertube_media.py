"""HLS made the way PeerTube makes it, for the emulated instance (:mod:`p2pml_py.testing.peertube`).

PeerTube (``packages/ffmpeg/src/ffmpeg-vod.ts``, ``server/core/lib/hls.ts``) transcodes every
resolution into **one fragmented MP4** served as ``EXT-X-BYTERANGE`` segments
(``-f hls -hls_playlist_type vod -hls_segment_type fmp4 -hls_flags single_file``, H.264 + AAC),
writes its own master playlist (``updateMasterHLSPlaylist``: ``#EXT-X-VERSION:3``, then per file
``#EXT-X-STREAM-INF:BANDWIDTH=<size*8/duration>,RESOLUTION=WxH,FRAME-RATE=<fps>,CODECS="..."``
and the resolution playlist's name) and one ``segments-sha256.json`` for the whole playlist
(``updateSha256VODSegments``): ``{"<file>": {"<start>-<endInclusive>": "<sha256 hex>"}}`` keyed by
the ``EXT-X-BYTERANGE`` ranges, the ``EXT-X-MAP`` init range not listed.

:func:`generate_peertube_media` does the same with one ffmpeg run (``testsrc2`` video and a
``sine`` tone, two resolutions, 144p and 240p) into a directory of files named like PeerTube's
(``<media id>-master.m3u8``, ``<media id>-<resolution>.m3u8``,
``<media id>-<resolution>-fragmented.mp4``, ``<media id>-segments-sha256.json``; PeerTube uses a
random UUID per file, one fixed id here so the files can be cached). PeerTube cuts 4 s segments
(``-hls_time 4``); the default here is 2 s so a short video still has enough segments to share.
:func:`cached_peertube_media` makes it once per parameter set (a stamp file, as
:func:`p2pml_py.testing.stream.cached_stream`); :meth:`PeerTubeMedia.load` reads it back and
checks the integrity list against the files.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from p2pml_py.base.errors import HarnessError
from p2pml_py.hls.hashes import (
    IntegrityList,
    IntegrityListBuilder,
    parse_integrity_list,
    sha256_hex,
)
from p2pml_py.testing.stream import parse_attributes

__all__ = [
    "DEFAULT_MEDIA_ID",
    "PeerTubeFile",
    "PeerTubeMedia",
    "PeerTubeSegment",
    "cached_peertube_media",
    "generate_peertube_media",
]

logger = logging.getLogger(__name__)

#: Bump when the ffmpeg command or the layout changes, so cached media are regenerated.
_GENERATOR_VERSION = 1
#: The file-name prefix of generated media (PeerTube: a random UUID per file).
DEFAULT_MEDIA_ID = "3f5ad0a2-7c1e-4d5b-9a64-0d9e8b2c4f11"
_STAMP = "media.json"
#: (width, height, video kbit/s) per resolution; PeerTube's resolution id is the height here.
_LADDER = ((256, 144, 150), (426, 240, 350))
_FPS = 25


@dataclass(frozen=True, slots=True)
class PeerTubeSegment:
    """One ``EXT-X-BYTERANGE`` segment: bytes ``[start, end]`` (inclusive) of its file."""

    index: int
    start: int
    length: int
    duration: float
    sha256: str

    @property
    def end(self) -> int:
        return self.start + self.length - 1

    @property
    def key(self) -> str:
        """Its key in ``segments-sha256.json``."""
        return f"{self.start}-{self.end}"


@dataclass(frozen=True, slots=True)
class PeerTubeFile:
    """One resolution: its media playlist and its fragmented MP4."""

    resolution: int
    width: int
    height: int
    fps: int
    bandwidth: int
    codecs: str
    playlist_name: str
    file_name: str
    size: int
    init_range: tuple[int, int]  # inclusive
    target_duration: int
    segments: tuple[PeerTubeSegment, ...]


@dataclass(frozen=True, slots=True)
class PeerTubeMedia:
    """A generated video directory (module doc). Its files are served as they are."""

    root: Path
    media_id: str
    duration: float
    files: tuple[PeerTubeFile, ...]

    @property
    def master_name(self) -> str:
        return f"{self.media_id}-master.m3u8"

    @property
    def sha_name(self) -> str:
        return f"{self.media_id}-segments-sha256.json"

    def file(self, resolution: int) -> PeerTubeFile:
        for file in self.files:
            if file.resolution == resolution:
                return file
        raise KeyError(f"no {resolution}p file (have {[f.resolution for f in self.files]})")

    def names(self) -> frozenset[str]:
        """Every file name a client may request."""
        names = {self.master_name, self.sha_name}
        for file in self.files:
            names |= {file.playlist_name, file.file_name}
        return frozenset(names)

    def integrity_list(self) -> IntegrityList:
        """The digests of every segment range, as PeerTube lists them."""
        builder = IntegrityListBuilder()
        for file in self.files:
            for segment in file.segments:
                builder.add_digest(file.file_name, (segment.start, segment.end), segment.sha256)
        return builder.build()

    @classmethod
    def load(cls, root: Path, *, check: bool = True) -> PeerTubeMedia:
        """Read a directory :func:`generate_peertube_media` wrote; :class:`HarnessError` if it is
        incomplete or (``check``) its ``segments-sha256.json`` does not match the files."""
        try:
            stamp = json.loads((root / _STAMP).read_text(encoding="utf-8"))
            media_id = str(stamp["media_id"])
            master = (root / f"{media_id}-master.m3u8").read_text(encoding="utf-8")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise HarnessError(f"no PeerTube media in {root}: {exc}") from exc
        files: list[PeerTubeFile] = []
        lines = [line.strip() for line in master.splitlines()]
        for i, line in enumerate(lines):
            if line.startswith("#EXT-X-STREAM-INF:"):
                if i + 1 >= len(lines) or not lines[i + 1] or lines[i + 1].startswith("#"):
                    raise HarnessError(f"{root}: EXT-X-STREAM-INF without a URI")
                files.append(
                    _load_file(root, parse_attributes(line.split(":", 1)[1]), lines[i + 1])
                )
        if not files:
            raise HarnessError(f"{root}: the master playlist lists no resolution")
        media = cls(
            root=root,
            media_id=media_id,
            duration=min(sum(s.duration for s in f.segments) for f in files),
            files=tuple(files),
        )
        if not check:
            return media
        try:
            on_disk = parse_integrity_list((root / media.sha_name).read_bytes())
        except OSError as exc:
            raise HarnessError(f"{root}: no segments-sha256.json: {exc}") from exc
        if on_disk != media.integrity_list():
            raise HarnessError(f"{root}: {media.sha_name} does not match the files")
        return media


def _byte_range(text: str, previous_end: int) -> tuple[int, int]:
    """``<length>[@<offset>]`` -> ``(offset, length)``; no offset: right after the previous."""
    length, _, offset = text.partition("@")
    return (int(offset) if offset else previous_end), int(length)


def _load_file(root: Path, attrs: dict[str, str], playlist_name: str) -> PeerTubeFile:
    path = root / playlist_name
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise HarnessError(f"cannot read {path}: {exc}") from exc
    width, _, height = attrs.get("RESOLUTION", "0x0").partition("x")
    file_name = ""
    init: tuple[int, int] | None = None
    target = 0
    duration: float | None = None
    byte_range: tuple[int, int] | None = None
    next_offset = 0
    spans: list[tuple[int, int, float]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#EXT-X-MAP:"):
            attrs_map = parse_attributes(line.split(":", 1)[1])
            file_name = attrs_map.get("URI", "")
            offset, length = _byte_range(attrs_map.get("BYTERANGE", "0@0"), 0)
            init = (offset, offset + length - 1)
            next_offset = offset + length
        elif line.startswith("#EXT-X-TARGETDURATION:"):
            target = int(line.split(":", 1)[1])
        elif line.startswith("#EXTINF:"):
            duration = float(line.split(":", 1)[1].split(",", 1)[0])
        elif line.startswith("#EXT-X-BYTERANGE:"):
            byte_range = _byte_range(line.split(":", 1)[1], next_offset)
        elif line and not line.startswith("#"):
            if duration is None or byte_range is None or line != file_name:
                raise HarnessError(f"{path}: segment {line!r} is not a byte range of {file_name}")
            spans.append((byte_range[0], byte_range[1], duration))
            next_offset = byte_range[0] + byte_range[1]
            duration, byte_range = None, None
    if init is None or not spans or target <= 0:
        raise HarnessError(f"{path}: no EXT-X-MAP, no segments or no EXT-X-TARGETDURATION")
    data = (root / file_name).read_bytes()
    segments = tuple(
        PeerTubeSegment(i, start, length, seconds, sha256_hex(data[start : start + length]))
        for i, (start, length, seconds) in enumerate(spans)
    )
    if segments[-1].end >= len(data):
        raise HarnessError(f"{path}: byte ranges run past the end of {file_name}")
    return PeerTubeFile(
        resolution=min(int(width), int(height)),
        width=int(width),
        height=int(height),
        fps=int(float(attrs.get("FRAME-RATE", "0"))),
        bandwidth=int(attrs.get("BANDWIDTH", "0")),
        codecs=attrs.get("CODECS", ""),
        playlist_name=playlist_name,
        file_name=file_name,
        size=len(data),
        init_range=init,
        target_duration=target,
        segments=segments,
    )


def _ffmpeg_command(duration: int, segment_seconds: int, media_id: str) -> list[str]:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise HarnessError("ffmpeg is needed to make the PeerTube test media (interop/setup.sh)")
    scale = ";".join(f"[s{i}]scale={w}:{h}[v{i}]" for i, (w, h, _) in enumerate(_LADDER))
    split = f"[0:v]split={len(_LADDER)}" + "".join(f"[s{i}]" for i in range(len(_LADDER)))
    command = [
        ffmpeg, "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", f"testsrc2=size=426x240:rate={_FPS}:duration={duration}",
        "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={duration}",
        "-filter_complex", f"{split};{scale}",
    ]  # fmt: skip
    for i in range(len(_LADDER)):
        command += ["-map", f"[v{i}]", "-map", "1:a"]
    for i, (_, _, kbps) in enumerate(_LADDER):
        command += [f"-b:v:{i}", f"{kbps}k", f"-maxrate:v:{i}", f"{kbps * 4 // 3}k"]
        command += [f"-bufsize:v:{i}", f"{kbps * 2}k"]
    stream_map = " ".join(f"v:{i},a:{i},name:{h}" for i, (_, h, _) in enumerate(_LADDER))
    # Fixed GOPs of one segment: every segment starts with a keyframe, as PeerTube's do.
    gop = str(_FPS * segment_seconds)
    command += [
        "-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high", "-pix_fmt", "yuv420p",
        "-g", gop, "-keyint_min", gop, "-sc_threshold", "0",
        "-c:a", "aac", "-b:a", "48k", "-ac", "1",
        "-f", "hls", "-hls_time", str(segment_seconds), "-hls_playlist_type", "vod",
        "-hls_segment_type", "fmp4", "-hls_flags", "single_file",
        "-var_stream_map", stream_map,
        "-hls_segment_filename", f"{media_id}-%v-fragmented.mp4",
        "-master_pl_name", "ffmpeg-master.m3u8",
        f"{media_id}-%v.m3u8",
    ]  # fmt: skip
    return command


def _master(work: Path, media_id: str, duration: int) -> str:
    """PeerTube's master playlist, with the codecs ffmpeg reported for each resolution."""
    ffmpeg_master = (work / "ffmpeg-master.m3u8").read_text(encoding="utf-8").splitlines()
    codecs: dict[str, str] = {}
    for i, line in enumerate(ffmpeg_master):
        if line.startswith("#EXT-X-STREAM-INF:") and i + 1 < len(ffmpeg_master):
            codecs[ffmpeg_master[i + 1].strip()] = parse_attributes(line.split(":", 1)[1])["CODECS"]
    lines = ["#EXTM3U", "#EXT-X-VERSION:3"]
    for width, height, _ in _LADDER:
        playlist = f"{media_id}-{height}.m3u8"
        size = (work / f"{media_id}-{height}-fragmented.mp4").stat().st_size
        bandwidth = math.ceil(size * 8 / duration)  # VideoModel.getBandwidthBits
        lines.append(
            f"#EXT-X-STREAM-INF:BANDWIDTH={bandwidth},RESOLUTION={width}x{height},"
            f'FRAME-RATE={_FPS},CODECS="{codecs[playlist]}"'
        )
        lines.append(playlist)
    return "\n".join(lines) + "\n"


def _stamp(duration: int, segment_seconds: int, media_id: str) -> dict[str, object]:
    return {
        "generator": _GENERATOR_VERSION,
        "duration": duration,
        "segment_seconds": segment_seconds,
        "media_id": media_id,
    }


def generate_peertube_media(
    target: Path,
    *,
    duration: int = 30,
    segment_seconds: int = 2,
    media_id: str = DEFAULT_MEDIA_ID,
) -> PeerTubeMedia:
    """Make the media into ``target`` (replaced atomically) and return it."""
    if duration < segment_seconds or segment_seconds < 1:
        raise ValueError(
            f"duration ({duration}) must be >= segment_seconds ({segment_seconds}) >= 1"
        )
    if not media_id or "/" in media_id or media_id.startswith("."):
        raise ValueError(f"media_id: not a file-name prefix: {media_id!r}")
    command = _ffmpeg_command(duration, segment_seconds, media_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".peertube-", dir=target.parent))
    try:
        result = subprocess.run(
            command, cwd=work, capture_output=True, text=True, timeout=300, check=False
        )
        if result.returncode != 0:
            raise HarnessError(f"ffmpeg failed ({result.returncode}): {result.stderr[-2000:]}")
        master = _master(work, media_id, duration)
        (work / "ffmpeg-master.m3u8").unlink()
        (work / f"{media_id}-master.m3u8").write_text(master, encoding="utf-8")
        stamp = _stamp(duration, segment_seconds, media_id)
        (work / _STAMP).write_text(json.dumps(stamp), encoding="utf-8")
        # The integrity list from the playlists' byte ranges; a full load checks it.
        unchecked = PeerTubeMedia.load(work, check=False)
        sha = unchecked.integrity_list().to_json()
        (work / unchecked.sha_name).write_text(sha, encoding="utf-8")
        PeerTubeMedia.load(work)
        if target.exists():
            shutil.rmtree(target)
        os.replace(work, target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    media = PeerTubeMedia.load(target)
    logger.info("generated PeerTube media in %s (%.0f s)", target, media.duration)
    return media


def cached_peertube_media(
    target: Path,
    *,
    duration: int = 30,
    segment_seconds: int = 2,
    media_id: str = DEFAULT_MEDIA_ID,
) -> PeerTubeMedia:
    """The media in ``target`` if they were made with these parameters, else new ones there.

    Processes that share the cache (pytest-xdist workers) take turns: one generates, the others
    wait and then load what it made. Without that, two workers of a fresh checkout both made the
    media, and the second one's files replaced the first one's while the first served them with
    its own segment list (ffmpeg's output differs by a few bytes from run to run).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(target.parent / f".{target.name}.lock"):
        try:
            stamp = json.loads((target / _STAMP).read_text(encoding="utf-8"))
            if stamp == _stamp(duration, segment_seconds, media_id):
                return PeerTubeMedia.load(target)
        except (OSError, ValueError, HarnessError):
            pass
        return generate_peertube_media(
            target, duration=duration, segment_seconds=segment_seconds, media_id=media_id
        )


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (made if missing) while the block runs."""
    with open(path, "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
