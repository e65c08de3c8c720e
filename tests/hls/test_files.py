"""Reading a stream from disk (:mod:`p2pml_py.hls.files`): public URLs mapped to files under the
master's directory, byte ranges, ``EXT-X-MAP``, refusals of anything outside, conditional reads,
missing files -- real files in a temporary directory, no HTTP at all."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import pytest

from p2pml_py.base.errors import OriginHttpError, SegmentInvalidError, SourceError
from p2pml_py.hls.fetcher import Validators
from p2pml_py.hls.files import LocalFiles, find_master
from p2pml_py.hls.source import HlsSource, RetryPolicy, SourceConfig
from p2pml_py.identity import swarm_id_from_manifest_url
from p2pml_py.testing.origin import LENGTH_ONLY

PUBLIC = "https://cdn.example.com/vod/movie/master.m3u8"

MASTER = """#EXTM3U
#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360
v0/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=1600000,RESOLUTION=1280x720
v1/index.m3u8
"""

#: fMP4-style: one file holding the init segment and two media segments as byte ranges.
RANGES = """#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:2
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-MAP:URI="media.mp4",BYTERANGE="100@0"
#EXTINF:2.0,
#EXT-X-BYTERANGE:300@100
media.mp4
#EXTINF:2.0,
#EXT-X-BYTERANGE:200
media.mp4
#EXT-X-ENDLIST
"""

#: Every way a playlist could point outside the stream's directory.
ESCAPES = """#EXTM3U
#EXT-X-TARGETDURATION:2
#EXT-X-PLAYLIST-TYPE:VOD
#EXTINF:2.0,
../../secret.ts
#EXTINF:2.0,
https://other.example.com/vod/movie/v1/seg.ts
#EXTINF:2.0,
%2e%2e/%2e%2e/secret.ts
#EXTINF:2.0,
a%2F..%2F..%2F..%2Fsecret.ts
#EXTINF:2.0,
link.ts
#EXTINF:2.0,
inside.ts
#EXTINF:2.0,
fifo.ts
#EXTINF:2.0,
missing.ts
#EXT-X-ENDLIST
"""

CONFIG = SourceConfig(
    validation=LENGTH_ONLY,  # the bodies here are not media
    retry=RetryPolicy(attempts=3, initial_delay=0.01, max_delay=0.01),
)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """``tmp_path/movie``: a master, a rendition with byte ranges and EXT-X-MAP, a rendition
    whose playlist tries to escape; ``tmp_path/secret.ts`` lies outside."""
    root = tmp_path / "movie"
    (root / "v0").mkdir(parents=True)
    (root / "v1").mkdir()
    (root / "master.m3u8").write_text(MASTER)
    (root / "v0" / "index.m3u8").write_text(RANGES)
    (root / "v0" / "media.mp4").write_bytes(bytes(range(256)) * 3)  # 768 bytes
    (root / "v1" / "index.m3u8").write_text(ESCAPES)
    (root / "v1" / "seg.ts").write_bytes(b"\x47" * 188)
    (root / "v1" / "inside.ts").symlink_to(root / "v1" / "seg.ts")
    (tmp_path / "secret.ts").write_bytes(b"secret")
    (root / "v1" / "link.ts").symlink_to(tmp_path / "secret.ts")
    os.mkfifo(root / "v1" / "fifo.ts")
    return root


def test_a_directory_names_its_master_playlist(tmp_path: Path) -> None:
    (tmp_path / "index.m3u8").write_text("#EXTM3U\n")
    assert find_master(tmp_path) == tmp_path / "index.m3u8"
    (tmp_path / "master.m3u8").write_text("#EXTM3U\n")
    assert find_master(tmp_path) == tmp_path / "master.m3u8"
    assert find_master(tmp_path / "index.m3u8") == tmp_path / "index.m3u8"
    single = tmp_path / "single"
    single.mkdir()
    (single / "movie.m3u8").write_text("#EXTM3U\n")
    assert find_master(single) == single / "movie.m3u8"
    (single / "other.m3u8").write_text("#EXTM3U\n")
    with pytest.raises(SourceError, match=r"found: movie\.m3u8, other\.m3u8"):
        find_master(single)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SourceError, match=r"found: no \.m3u8 file"):
        find_master(empty)
    with pytest.raises(SourceError, match="nowhere: No such file"):
        find_master(tmp_path / "nowhere")
    with pytest.raises(SourceError, match="must be http"):
        LocalFiles(tmp_path, "/vod/movie/master.m3u8")


async def test_a_local_source_reads_byte_ranges_and_init_segments_under_public_urls(
    tree: Path,
) -> None:
    async with HlsSource(PUBLIC, config=dataclasses.replace(CONFIG, local_path=str(tree))) as src:
        assert src.final_url == PUBLIC
        assert src.swarm_id == swarm_id_from_manifest_url(PUBLIC)
        assert [s.url for s in src.streams] == [
            "https://cdn.example.com/vod/movie/v0/index.m3u8",
            "https://cdn.example.com/vod/movie/v1/index.m3u8",
        ]
        playlist = await src.fetch_playlist(src.streams[0].url)
        first, second = playlist.segments
        assert first.url == "https://cdn.example.com/vod/movie/v0/media.mp4"
        assert (first.byte_range, second.byte_range) == ((100, 399), (400, 599))
        whole = (tree / "v0" / "media.mp4").read_bytes()
        assert await src.fetch_segment(first) == whole[100:400]
        assert await src.fetch_segment(second) == whole[400:600]
        assert first.init_segment is not None
        assert await src.fetch_init(first.init_segment) == whole[:100]
        assert src.stats.segment_bytes == 500 and src.stats.errors.total() == 0
        # Not one HTTP request: the source never even opened an HTTP session.
        assert src._session is None


async def test_urls_outside_the_directory_are_refused_and_nothing_outside_is_read(
    tree: Path,
) -> None:
    async with HlsSource(PUBLIC, config=dataclasses.replace(CONFIG, local_path=str(tree))) as src:
        playlist = await src.fetch_playlist(src.streams[1].url)
        by_name = {s.url.rsplit("/", 1)[-1]: s for s in playlist.segments}
        refusals = {
            "secret.ts": "outside the directory",  # ../../secret.ts, resolved by the parser
            "seg.ts": "another host",
            "%2e%2e/%2e%2e/secret.ts": "is not a plain file name",
            "a%2F..%2F..%2F..%2Fsecret.ts": "is not a plain file name",
            "link.ts": "leads out of",
            "fifo.ts": "not a regular file",
        }
        refused = set()
        for segment in playlist.segments:
            ends = [n for n in refusals if segment.url.endswith("/" + n)]
            name = max(ends, key=len, default=None)  # the longest: "../secret.ts" ends so too
            if name is None:
                continue
            with pytest.raises(SourceError, match=refusals[name]) as caught:
                await src.fetch_segment(segment)
            assert segment.url in str(caught.value)
            refused.add(name)
        assert refused == set(refusals)
        assert await src.fetch_segment(by_name["inside.ts"]) == b"\x47" * 188
        retries = src.stats.retries
        with pytest.raises(OriginHttpError, match=r"missing\.ts") as missing:
            await src.fetch_segment(by_name["missing.ts"])
        assert missing.value.status == 404
        assert src.stats.retries == retries  # a missing file is not retried, as a 404
        assert src.stats.errors["http_4xx"] == 1
        assert src._session is None
    files = LocalFiles(tree, PUBLIC)
    assert not files.covers("https://cdn.example.com/vod/other/x.ts")
    assert files.covers("https://cdn.example.com/vod/movie/v0/media.mp4?token=1")
    assert files.locate("https://cdn.example.com/vod/movie/v0/media.mp4?token=1") == (
        files.root / "v0" / "media.mp4"
    )


async def test_a_conditional_read_of_an_unchanged_file_is_not_modified(tree: Path) -> None:
    async with HlsSource(PUBLIC, config=dataclasses.replace(CONFIG, local_path=str(tree))) as src:
        playlist = await src.fetch_playlist(src.streams[0].url)
        segment = playlist.segments[0]
        first = await src.fetch_segment_response(segment)
        assert first.validators.etag and first.validators.last_modified
        again = await src.fetch_segment_response(segment, conditional=first.validators)
        assert again.not_modified and again.body == b""
        by_date = Validators(last_modified=first.validators.last_modified)
        assert (await src.fetch_segment_response(segment, conditional=by_date)).not_modified
        assert src.stats.unchanged == 2

        # Replaced on disk (a new file renamed over the old one, as packagers do).
        path = tree / "v0" / "media.mp4"
        replacement = path.with_suffix(".new")
        replacement.write_bytes(bytes(reversed(range(256))) * 3)
        replacement.replace(path)
        changed = await src.fetch_segment_response(segment, conditional=first.validators)
        assert not changed.not_modified
        assert changed.body == path.read_bytes()[100:400]
        assert changed.validators.etag != first.validators.etag


async def test_too_large_files_and_ranges_beyond_the_end_are_refused(tree: Path) -> None:
    config = dataclasses.replace(CONFIG, local_path=str(tree), max_segment_bytes=250)
    async with HlsSource(PUBLIC, config=config) as src:
        playlist = await src.fetch_playlist(src.streams[0].url)
        with pytest.raises(SourceError, match="byte range of 300 bytes exceeds 250"):
            await src.fetch_segment(playlist.segments[0])
        (tree / "v0" / "media.mp4").write_bytes(bytes(300))
        with pytest.raises(SourceError, match="file of 300 bytes has no bytes 400-599"):
            await src.fetch_segment(playlist.segments[1])
    files = LocalFiles(tree / "master.m3u8", PUBLIC)
    with pytest.raises(SourceError, match="300 bytes exceeds 100"):
        files.read("https://cdn.example.com/vod/movie/v0/media.mp4", max_bytes=100)


async def test_a_bad_local_path_fails_the_source_naming_it(tmp_path: Path) -> None:
    config = dataclasses.replace(CONFIG, local_path=str(tmp_path / "nowhere"))
    with pytest.raises(SourceError, match="nowhere"):
        async with HlsSource(PUBLIC, config=config):
            pass


async def test_an_integrity_list_among_the_files_is_read_from_disk(tree: Path) -> None:
    """Its URL under the public directory: read from the files, its digests enforced."""
    whole = (tree / "v0" / "media.mp4").read_bytes()
    listing = {
        "media.mp4": {
            "100-399": hashlib.sha256(whole[100:400]).hexdigest(),
            "400-599": hashlib.sha256(b"not these bytes").hexdigest(),
        }
    }
    (tree / "v0" / "segments-sha256.json").write_text(json.dumps(listing))
    config = dataclasses.replace(
        CONFIG,
        local_path=str(tree),
        integrity="https://cdn.example.com/vod/movie/v0/segments-sha256.json",
    )
    async with HlsSource(PUBLIC, config=config) as src:
        playlist = await src.fetch_playlist(src.streams[0].url)
        assert await src.fetch_segment(playlist.segments[0]) == whole[100:400]
        with pytest.raises(SegmentInvalidError, match="digest"):
            await src.fetch_segment(playlist.segments[1])
        assert src._session is None
