"""The emulated PeerTube instance: its pure parts, its API and static files on a real aiohttp
server (media written by hand, no ffmpeg), and its tracker (the node script, real
bittorrent-tracker)."""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import threading
import uuid
from pathlib import Path

import aiohttp
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from p2pml_py.base.errors import HarnessError
from p2pml_py.hls.hashes import parse_integrity_list
from p2pml_py.testing import peertube_media
from p2pml_py.testing.peertube import (
    EmulatedPeerTube,
    EmulatedVideo,
    PeerTubeTracker,
    Privacy,
    RateLimiter,
    peertube_info_hashes,
    run_peertube,
    short_uuid,
)
from p2pml_py.testing.peertube_media import PeerTubeMedia, cached_peertube_media
from tests.nodejs import INTEROP, ensure_node_modules

SCRIPT = Path(__file__).resolve().parents[2] / "p2pml_py/harness/web/node/peertube-tracker.mjs"
MEDIA_ID = "m"
SEGMENT = 1000
INIT = 100


# -- pure parts ---------------------------------------------------------------------------------


def test_short_uuid_is_short_uuid_flickr_base58_padded() -> None:
    # short-uuid's default translator: flickrBase58, consistentLength (padStart 22 with "1").
    assert short_uuid("00000000-0000-0000-0000-000000000001") == "1" * 21 + "2"
    assert short_uuid("00000000-0000-0000-0000-00000000003a") == "1" * 20 + "21"
    value = str(uuid.UUID(int=(1 << 128) - 1))
    assert len(short_uuid(value)) == 22
    alphabet = "123456789abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ"
    number = 0
    for ch in short_uuid("9c9de5e8-0a1e-484a-b099-e80766180a6d"):
        number = number * 58 + alphabet.index(ch)
    assert number == int("9c9de5e80a1e484ab099e80766180a6d", 16)


def _peertube_hash(text: str) -> str:
    """generateP2PMediaLoaderHash, spelled out: hex(utf8(base64(md5(text)[1:16])))."""
    digest = hashlib.md5(text.encode(), usedforsecurity=False).digest()[1:16]
    return base64.b64encode(digest).hex()


def test_info_hashes_are_the_ones_peertube_stores() -> None:
    url = "https://peertube.example/static/streaming-playlists/hls/u/u-master.m3u8"
    assert peertube_info_hashes(url, [144, 240]) == [
        _peertube_hash(f"v2-{url}-main-0"),
        _peertube_hash(f"v2-{url}-main-1"),
    ]
    # An audio-only file (resolution 0) adds the secondary stream, not a main index.
    assert peertube_info_hashes(url, [0, 144]) == [
        _peertube_hash(f"v2-{url}-main-0"),
        _peertube_hash(f"v2-{url}-secondary-0"),
    ]


def test_rate_limiter_is_a_window_per_client() -> None:
    limiter = RateLimiter(window=10.0, limit=3)
    assert [limiter.hit("a", 100.0 + i) for i in range(3)] == [None, None, None]
    assert limiter.hit("a", 104.0) == pytest.approx(6.0)
    assert limiter.hit("b", 104.0) is None  # another client has its own window
    assert limiter.hit("a", 110.0) is None  # a's window (from 100) is over
    limiter.hit("c", 200.0)  # a and b expired: dropped as c comes
    assert set(limiter._clients) == {"c"}
    with pytest.raises(ValueError, match="api_window"):
        RateLimiter(window=0, limit=1)
    with pytest.raises(ValueError, match="api_max"):
        RateLimiter(window=1, limit=0)


def test_video_checks_its_fields() -> None:
    with pytest.raises(ValueError, match="uuid"):
        EmulatedVideo("v", uuid="not-a-uuid")
    with pytest.raises(ValueError, match="password"):
        EmulatedVideo("v", privacy=Privacy.PASSWORD_PROTECTED)
    with pytest.raises(ValueError, match="password"):
        EmulatedVideo("v", password="x")


# -- media read back (hand-written files) --------------------------------------------------------


def write_media(root: Path, segments: int = 3) -> PeerTubeMedia:
    """A PeerTube-shaped directory with made-up bytes: two resolutions, ``segments`` ranges each."""
    root.mkdir(parents=True, exist_ok=True)
    master = ["#EXTM3U", "#EXT-X-VERSION:3"]
    sha: dict[str, dict[str, str]] = {}
    for resolution, width in ((144, 256), (240, 426)):
        name = f"{MEDIA_ID}-{resolution}-fragmented.mp4"
        data = hashlib.shake_256(name.encode()).digest(INIT + segments * SEGMENT)
        (root / name).write_bytes(data)
        lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:7",
            "#EXT-X-TARGETDURATION:2",
            "#EXT-X-PLAYLIST-TYPE:VOD",
            f'#EXT-X-MAP:URI="{name}",BYTERANGE="{INIT}@0"',
        ]
        for i in range(segments):
            start = INIT + i * SEGMENT
            lines += ["#EXTINF:2.000000,", f"#EXT-X-BYTERANGE:{SEGMENT}@{start}", name]
            key = f"{start}-{start + SEGMENT - 1}"
            sha.setdefault(name, {})[key] = hashlib.sha256(
                data[start : start + SEGMENT]
            ).hexdigest()
        lines.append("#EXT-X-ENDLIST")
        (root / f"{MEDIA_ID}-{resolution}.m3u8").write_text("\n".join(lines) + "\n")
        master += [
            f"#EXT-X-STREAM-INF:BANDWIDTH={resolution * 1000},RESOLUTION={width}x{resolution},"
            f'FRAME-RATE=25,CODECS="avc1.64001f,mp4a.40.2"',
            f"{MEDIA_ID}-{resolution}.m3u8",
        ]
    (root / f"{MEDIA_ID}-master.m3u8").write_text("\n".join(master) + "\n")
    (root / f"{MEDIA_ID}-segments-sha256.json").write_text(json.dumps(sha))
    (root / "media.json").write_text(json.dumps({"media_id": MEDIA_ID}))
    return PeerTubeMedia.load(root)


def test_media_load_reads_ranges_and_checks_the_list(tmp_path: Path) -> None:
    media = write_media(tmp_path / "a")
    assert [f.resolution for f in media.files] == [144, 240]
    file = media.file(240)
    assert (file.width, file.height, file.fps, file.init_range) == (426, 240, 25, (0, INIT - 1))
    assert [(s.start, s.end) for s in file.segments] == [(100, 1099), (1100, 2099), (2100, 3099)]
    assert media.duration == 6.0
    listed = parse_integrity_list((media.root / media.sha_name).read_bytes())
    assert listed == media.integrity_list()
    # A list that disagrees with the files is refused.
    (media.root / media.sha_name).write_text(json.dumps({file.file_name: {"100-1099": "0" * 64}}))
    with pytest.raises(HarnessError, match="does not match"):
        PeerTubeMedia.load(media.root)
    assert PeerTubeMedia.load(media.root, check=False).files == media.files


# -- the API and static files ------------------------------------------------------------------


@pytest.fixture
def media(tmp_path: Path) -> PeerTubeMedia:
    return write_media(tmp_path / "media")


async def test_api_answers_like_peertube(media: PeerTubeMedia) -> None:
    public = EmulatedVideo("public")
    unlisted = EmulatedVideo("unlisted", privacy=Privacy.UNLISTED, channel="other")
    private = EmulatedVideo("private", privacy=Privacy.PRIVATE)
    secret = EmulatedVideo("secret", privacy=Privacy.PASSWORD_PROTECTED, password="pw")
    videos = [public, unlisted, private, secret, EmulatedVideo("second")]
    async with (
        EmulatedPeerTube(media, videos, tokens={"tok"}) as peertube,
        aiohttp.ClientSession(headers={"User-Agent": "test-agent/1"}) as http,
    ):
        peertube.set_tracker("127.0.0.1", 4567)
        base = peertube.base_url
        async with http.get(f"{base}/api/v1/config") as r:
            assert (await r.json())["serverVersion"] == "7.2.1"
        for key in (public.id, public.uuid, public.short_uuid):
            async with http.get(f"{base}/api/v1/videos/{key}") as r:
                assert r.status == 200
                assert r.headers["Access-Control-Allow-Origin"] == "*"
                details = await r.json()
        assert details["uuid"] == public.uuid and details["shortUUID"] == public.short_uuid
        assert details["privacy"] == {"id": 1, "label": "Public"} and details["files"] == []
        assert details["trackerUrls"] == [
            "http://127.0.0.1:4567/tracker/announce",
            "ws://127.0.0.1:4567/tracker/socket",
        ]
        playlist = details["streamingPlaylists"][0]
        assert playlist["type"] == 1
        assert playlist["playlistUrl"] == peertube.playlist_url(public)
        assert playlist["playlistUrl"].endswith(f"/hls/{public.uuid}/{MEDIA_ID}-master.m3u8")
        assert playlist["segmentsSha256Url"] == peertube.segments_sha256_url(public)
        assert [f["resolution"]["id"] for f in playlist["files"]] == [144, 240]
        assert peertube.info_hashes(public) == peertube_info_hashes(
            playlist["playlistUrl"], [144, 240]
        )

        # Lists: public only, paginated, sorted; the channel's own list.
        async with http.get(f"{base}/api/v1/videos?start=0&count=1&sort=-publishedAt") as r:
            listing = await r.json()
        assert listing["total"] == 2 and [v["name"] for v in listing["data"]] == ["second"]
        assert "streamingPlaylists" not in listing["data"][0]
        async with http.get(f"{base}/api/v1/video-channels/root_channel/videos?count=10") as r:
            assert [v["name"] for v in (await r.json())["data"]] == ["second", "public"]
        async with http.get(f"{base}/api/v1/videos?count=101") as r:
            assert r.status == 400
        async with http.get(f"{base}/api/v1/video-channels/nobody/videos") as r:
            assert r.status == 404

        # Privacy: unlisted is readable, private needs a token, password videos the password.
        async with http.get(f"{base}/api/v1/videos/{unlisted.uuid}") as r:
            assert r.status == 200
        async with http.get(f"{base}/api/v1/videos/{private.uuid}") as r:
            assert r.status == 401
        auth = {"Authorization": "Bearer tok"}
        async with http.get(f"{base}/api/v1/videos/{private.uuid}", headers=auth) as r:
            assert r.status == 200
            assert "/hls/private/" in (await r.json())["streamingPlaylists"][0]["playlistUrl"]
        async with http.get(f"{base}/api/v1/videos/{secret.uuid}") as r:
            assert r.status == 403 and (await r.json())["code"] == "video_requires_password"
        wrong = {"x-peertube-video-password": "no"}
        async with http.get(f"{base}/api/v1/videos/{secret.uuid}", headers=wrong) as r:
            assert r.status == 403 and (await r.json())["code"] == "incorrect_video_password"
        right = {"x-peertube-video-password": "pw"}
        async with http.get(f"{base}/api/v1/videos/{secret.uuid}", headers=right) as r:
            assert r.status == 200
        async with http.get(f"{base}/api/v1/videos/{uuid.uuid4()}") as r:
            assert r.status == 404
        async with http.get(f"{base}/api/v1/videos/bad!") as r:
            assert r.status == 400

        requests = peertube.api_requests
        assert len(requests) == peertube.api_request_count == 16
        assert {r.user_agent for r in requests} == {"test-agent/1"}
        assert requests[0].path == "/api/v1/config" and requests[0].status == 200


async def test_static_files_ranges_cors_and_private_access(media: PeerTubeMedia) -> None:
    public = EmulatedVideo("public")
    private = EmulatedVideo("private", privacy=Privacy.PRIVATE)
    async with (
        EmulatedPeerTube(media, [public, private], tokens={"tok"}) as peertube,
        aiohttp.ClientSession() as http,
    ):
        file = media.file(144)
        url = peertube.static_url(public, file.file_name)
        segment = file.segments[1]
        expected = (media.root / file.file_name).read_bytes()[segment.start : segment.end + 1]
        headers = {"Range": f"bytes={segment.start}-{segment.end}"}
        async with http.get(url, headers=headers) as r:
            assert r.status == 206 and await r.read() == expected
            assert r.headers["Access-Control-Allow-Origin"] == "*"
            etag = r.headers["ETag"]
        async with http.get(url, headers={"If-None-Match": etag}) as r:
            assert r.status == 304
        async with http.options(url, headers={"Access-Control-Request-Headers": "range"}) as r:
            assert r.status == 204 and r.headers["Access-Control-Allow-Headers"] == "range"
        async with http.get(peertube.segments_sha256_url(public)) as r:
            assert parse_integrity_list(await r.read()) == media.integrity_list()
        async with http.get(peertube.playlist_url(public)) as r:
            assert f"{MEDIA_ID}-144.m3u8" in await r.text()
        async with http.get(peertube.static_url(public, "other.mp4")) as r:
            assert r.status == 404

        # Private files: only under private/, with a file token, the bearer token or nothing.
        private_url = peertube.playlist_url(private)
        async with http.get(private_url) as r:
            assert r.status == 403
        async with http.post(f"{peertube.base_url}/api/v1/videos/{private.uuid}/token") as r:
            assert r.status == 401
        async with http.post(
            f"{peertube.base_url}/api/v1/videos/{private.uuid}/token",
            headers={"Authorization": "Bearer tok"},
        ) as r:
            token = (await r.json())["files"]["token"]
        async with http.get(private_url, params={"videoFileToken": token}) as r:
            assert r.status == 200
        async with http.get(private_url.replace("/private/", "/")) as r:
            assert r.status == 404


async def test_corrupt_serves_a_range_that_the_list_refutes(media: PeerTubeMedia) -> None:
    video = EmulatedVideo("v")
    async with EmulatedPeerTube(media, [video]) as peertube, aiohttp.ClientSession() as http:
        name, start, end = peertube.corrupt(240, 2, user_agent="seeder")
        listed = media.integrity_list()
        url = peertube.static_url(video, name)
        headers = {"Range": f"bytes={start}-{end}"}
        async with http.get(url, headers={**headers, "User-Agent": "p2pml seeder"}) as r:
            bad = await r.read()
        async with http.get(url, headers={**headers, "User-Agent": "browser"}) as r:
            good = await r.read()
        assert len(bad) == len(good) == end - start + 1
        assert listed.check(url, (start, end), good).ok
        assert not listed.check(url, (start, end), bad).ok
        # The neighbouring range is untouched.
        before = media.file(240).segments[1]
        async with http.get(
            url,
            headers={"Range": f"bytes={before.start}-{before.end}", "User-Agent": "seeder"},
        ) as r:
            assert listed.check(url, (before.start, before.end), await r.read()).ok
        peertube.clear_corruption()
        async with http.get(url, headers={**headers, "User-Agent": "seeder"}) as r:
            assert await r.read() == good
        with pytest.raises(ValueError, match="segment"):
            peertube.corrupt(240, 3)


async def test_api_rate_limit_answers_429_with_retry_after(media: PeerTubeMedia) -> None:
    async with (
        EmulatedPeerTube(media, [EmulatedVideo("v")], api_window=60.0, api_max=3) as peertube,
        aiohttp.ClientSession() as http,
    ):
        statuses = []
        for _ in range(4):
            async with http.get(f"{peertube.base_url}/api/v1/config") as r:
                statuses.append(r.status)
                retry_after = r.headers.get("Retry-After")
        assert statuses == [200, 200, 200, 429]
        assert retry_after is not None and 1 <= int(retry_after) <= 60
        # Static files are not rate limited.
        async with http.get(peertube.playlist_url(peertube.videos[0])) as r:
            assert r.status == 200
        assert [r.status for r in peertube.api_requests] == statuses


# -- the tracker --------------------------------------------------------------------------------


def _announce(info_hash: str, peer_id: str = "-PM0202-abcdefghijkl") -> str:
    return json.dumps(
        {
            "action": "announce",
            "info_hash": info_hash,
            "peer_id": peer_id,
            "numwant": 0,
            "uploaded": 0,
            "downloaded": 0,
            "event": "started",
            "offers": [],
        }
    )


async def test_tracker_blocks_an_unknown_info_hash_like_peertube() -> None:
    ensure_node_modules()
    known = "A" * 20  # the 20-character info hash on the wire; the filter sees its hex
    async with PeerTubeTracker(SCRIPT, INTEROP, [known.encode().hex()]) as tracker:
        async with websockets.connect(tracker.ws_url) as ws:
            await ws.send(_announce(known))
            answer = json.loads(await ws.recv())
            assert "failure reason" not in answer and answer["info_hash"] == known
        assert tracker.blocked_count == 0
        assert tracker.announced_info_hashes == {known.encode().hex()}

        # Over HTTP an unknown hash gets a bencoded failure and no block.
        unknown = "B" * 20
        async with aiohttp.ClientSession() as http:
            query = f"info_hash={unknown}&peer_id=-PM0202-abcdefghijkl&port=6881"
            async with http.get(f"{tracker.announce_url}?{query}") as r:
                assert b"failure reason" in await r.read()
        assert tracker.blocked_count == 0

        # Over a WebSocket: the failure, then the socket closes and the IP is blocked.
        async with websockets.connect(tracker.ws_url) as ws:
            await ws.send(_announce(unknown))
            answer = json.loads(await ws.recv())
            assert "Unknown infoHash" in answer["failure reason"]
            with pytest.raises(ConnectionClosed):
                await ws.recv()
        assert tracker.blocked_count == 1 and tracker.blocked_ips == {"127.0.0.1"}
        with pytest.raises(InvalidStatus) as refused:
            await websockets.connect(tracker.ws_url)
        assert refused.value.response.status_code == 403
        assert tracker.refused_count == 1
        assert tracker.unknown_announces == 2

        # The block lifts (3 minutes in PeerTube; here by command); new hashes load on reload.
        await tracker.unblock()
        await tracker.set_known([unknown.encode().hex()])
        async with websockets.connect(tracker.ws_url) as ws:
            await ws.send(_announce(unknown))
            assert "failure reason" not in json.loads(await ws.recv())
        assert tracker.blocked_count == 1


async def test_run_peertube_registers_every_playlist_hash(media: PeerTubeMedia) -> None:
    ensure_node_modules()
    videos = [EmulatedVideo("a"), EmulatedVideo("b", privacy=Privacy.UNLISTED)]
    async with run_peertube(media, videos, tracker_script=SCRIPT, node_root=INTEROP) as (
        peertube,
        tracker,
    ):
        assert tracker.known == frozenset(peertube.all_info_hashes())
        assert len(tracker.known) == 4
        assert peertube.tracker_urls[1] == tracker.ws_url
    with pytest.raises(ValueError, match="40 lowercase hex"):
        PeerTubeTracker(SCRIPT, INTEROP, ["abc"])


def test_cached_media_wait_for_the_process_that_makes_them(tmp_path: Path) -> None:
    # Media with the stamp cached_peertube_media() looks for (written by hand: no ffmpeg).
    root = tmp_path / "peertube-media"
    made = write_media(root)
    stamp = peertube_media._stamp(6, 2, MEDIA_ID)
    (root / peertube_media._STAMP).write_text(json.dumps(stamp))
    results: list[PeerTubeMedia] = []

    def load() -> None:
        results.append(cached_peertube_media(root, duration=6, media_id=MEDIA_ID))

    # Another process (here: this test) is making the media: a reader waits for its lock...
    with open(tmp_path / ".peertube-media.lock", "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        reader = threading.Thread(target=load)
        reader.start()
        reader.join(timeout=0.5)
        assert reader.is_alive() and results == []
        fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
    # ...and then loads what was made instead of making its own.
    reader.join(timeout=10)
    assert not reader.is_alive()
    assert [r.files for r in results] == [made.files]
