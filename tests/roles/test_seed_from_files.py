"""Seeding from files on disk (issue 18): a seeder reads an ffmpeg-made stream from its directory
while a real origin on 127.0.0.1 serves the same files under the URL the viewer loads; the
seeder sends the origin not one request, and the viewer gets the seeder's bytes over aiortc. A
live playlist rewritten on disk is followed. The ``seed --from`` command line too."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from p2pml_py.apps.superpeer.config import StreamConfig, parse_config
from p2pml_py.base.errors import ConfigError
from p2pml_py.engine.streams import PeerOptions
from p2pml_py.hls.source import SourceConfig
from p2pml_py.identity import swarm_id_from_manifest_url
from p2pml_py.roles.base import segment_digests
from p2pml_py.roles.seeder import Seeder
from p2pml_py.rtc.aiortc_backend.loopback import LOOPBACK_CONFIG
from p2pml_py.testing.origin import StreamOrigin
from p2pml_py.testing.stream import TestStream, cached_stream
from p2pml_py.tracker.server import TrackerServer
from tests.roles.helpers import play_to_end, store_filled
from tests.roles.test_integrity import run_cli, store_changed


@pytest.fixture(scope="module")
def stream(tmp_path_factory: pytest.TempPathFactory) -> TestStream:
    """12 s of real media (ffmpeg: H.264 + AAC in MPEG-TS, 2 s segments, two renditions)."""
    return cached_stream(tmp_path_factory.mktemp("stream"), duration=12)


async def test_a_seeder_reading_files_serves_a_viewer_with_no_origin_request(
    stream: TestStream,
) -> None:
    async with StreamOrigin(stream) as origin, TrackerServer() as tracker:
        url = origin.vod_url()  # what the viewer (a page) loads
        options = PeerOptions(trackers=(tracker.url,), rtc=LOOPBACK_CONFIG)
        files = SourceConfig(local_path=str(stream.root))  # a directory: its master.m3u8
        rendition = stream.renditions[0]
        async with Seeder(url, options, renditions=[0], source_config=files) as seeder:
            assert seeder.source.swarm_id == swarm_id_from_manifest_url(url)
            await store_filled(seeder.streams[0].store, len(rendition.segments), timeout=30)
            assert origin.stats.total_requests == 0  # the seeder read everything from disk
            held = segment_digests(seeder.streams[0].store)
            assert held == {str(s.index): s.sha256 for s in rendition.segments}
            summary, got = await play_to_end(url, options, rendition=0)
            assert seeder.source._session is None  # no HTTP session was ever opened
    assert summary.p2p_bytes > 0 and summary.stalls == 0
    assert got and all(held[sid] == digest for sid, digest in got.items())
    # Every segment byte the origin sent went to the viewer, none to the seeder.
    assert origin.stats.segment_bytes() == summary.http_bytes
    assert seeder.uploaded >= summary.p2p_bytes


def write_live(directory: Path, stream: TestStream, first: int, count: int) -> None:
    """A live media playlist of segments ``first .. first+count-1`` (the recorded files, in
    order), written the way ffmpeg's HLS muxer does: a temporary file renamed over the old one,
    and the segment that left the window deleted (``-hls_flags delete_segments``)."""
    segments = stream.renditions[0].segments
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:2"]
    lines.append(f"#EXT-X-MEDIA-SEQUENCE:{first}")
    for sequence in range(first, first + count):
        source = stream.root / segments[sequence].path
        target = directory / f"live{sequence}.ts"
        if not target.exists():
            shutil.copyfile(source, target)
        lines += [f"#EXTINF:{segments[sequence].duration:.6f},", target.name]
    temporary = directory / "index.m3u8.tmp"
    temporary.write_text("\n".join(lines) + "\n")
    os.replace(temporary, directory / "index.m3u8")
    if first > 0:
        (directory / f"live{first - 1}.ts").unlink(missing_ok=True)


async def test_a_live_playlist_rewritten_on_disk_is_followed(
    stream: TestStream, tmp_path: Path
) -> None:
    channel = tmp_path / "channel"
    (channel / "v0").mkdir(parents=True)
    (channel / "master.m3u8").write_text(
        '#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=300000,CODECS="avc1.42c015,mp4a.40.2"\nv0/index.m3u8\n'
    )
    write_live(channel / "v0", stream, 0, 3)
    async with TrackerServer() as tracker:
        options = PeerOptions(trackers=(tracker.url,), rtc=LOOPBACK_CONFIG)
        config = SourceConfig(local_path=str(channel / "master.m3u8"), reload_interval=0.1)
        url = "http://127.0.0.1:9/live/channel/master.m3u8"  # never contacted
        async with Seeder(url, options, source_config=config, fetch="all") as seeder:
            store = seeder.streams[0].store
            await store_changed(store, lambda: set(store.ids()) == {0, 1, 2})
            write_live(channel / "v0", stream, 2, 3)
            await store_changed(store, lambda: {3, 4} <= set(store.ids()))
            write_live(channel / "v0", stream, 4, 2)
            await store_changed(store, lambda: set(store.ids()) == {4, 5})
            follower = seeder.source.followers[0]
            assert follower.playlist is not None and follower.playlist.is_live
            segments = stream.renditions[0].segments
            assert store.get(5) == (stream.root / segments[5].path).read_bytes()
            assert seeder.origin_errors == 0 and seeder.source._session is None


async def test_seed_from_needs_the_url_pages_load(tmp_path: Path) -> None:
    code, _, err = await run_cli("seed", "--from", tmp_path, "--tracker", "ws://127.0.0.1:9")
    assert code == 2 and "needs --url, the manifest URL the pages load" in err
    code, _, err = await run_cli(
        "seed",
        "--from",
        tmp_path,
        "--url",
        "https://cdn.example.com/m.m3u8",
        "--tracker",
        "ws://127.0.0.1:9",
    )
    assert code == 2 and "found: no .m3u8 file" in err and str(tmp_path) in err
    code, _, err = await run_cli(
        "seed",
        "http://127.0.0.1:9/m.m3u8",
        "--url",
        "http://127.0.0.1:9/m.m3u8",
        "--tracker",
        "ws://127.0.0.1:9",
    )
    assert code == 2 and "--url goes with --from" in err


def test_a_super_peer_stream_path_is_checked_and_reaches_the_worker(tmp_path: Path) -> None:
    """``path`` next to ``url``: relative to the config file, resolved to the master playlist,
    through the worker channel unchanged; a bad one names the field, its line and the path."""
    movie = tmp_path / "vod" / "movie"
    movie.mkdir(parents=True)
    (movie / "index.m3u8").write_text("#EXTM3U\n")
    text = (
        '[[stream]]\nurl = "https://cdn.example.com/vod/movie/index.m3u8"\n'
        'trackers = ["wss://tracker.example.com"]\npath = "{}"\n'
    )
    config = parse_config(text.format("vod/movie"), "sp.toml", base_dir=tmp_path)
    spec = config.streams[0]
    assert spec.path == str(movie / "index.m3u8")
    assert StreamConfig.from_json(spec.to_json()) == spec
    assert parse_config(text.format(movie), "sp.toml").streams[0].path == spec.path
    missing = r"^sp\.toml:4: stream\[1\]\.path: .*nowhere: No such file"
    with pytest.raises(ConfigError, match=missing):
        parse_config(text.format("nowhere"), "sp.toml", base_dir=tmp_path)
    (movie / "index.m3u8").rename(movie / "a.m3u8")
    (movie / "b.m3u8").write_text("#EXTM3U\n")
    with pytest.raises(ConfigError, match=r"stream\[1\]\.path: .*found: a\.m3u8, b\.m3u8\)"):
        parse_config(text.format(movie), "sp.toml")
    with pytest.raises(ConfigError, match=r"defaults: unknown key|defaults\.path: unknown key"):
        parse_config('[defaults]\npath = "/srv"\n' + text.format(movie), "sp.toml")
