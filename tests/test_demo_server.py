"""``p2pml-py demo --open``'s HTTP side (:mod:`p2pml_py.apps.demo.server`) with a plain aiohttp
client on 127.0.0.1, and the command's errors for bad options. The page itself, in Chromium,
is tested by ``tests/interop/test_demo_page.py``."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from p2pml_py.apps.demo.server import PACKAGES, DemoServer, PageConfig
from p2pml_py.base.errors import HarnessError
from p2pml_py.testing.origin import segment_bytes
from p2pml_py.testing.stream import TestStream

MASTER = """#EXTM3U
#EXT-X-STREAM-INF:BANDWIDTH=200000,RESOLUTION=256x144
v0/index.m3u8
"""
MEDIA = """#EXTM3U
#EXT-X-VERSION:3
#EXT-X-TARGETDURATION:2
#EXTINF:2.000000,
seg0.ts
#EXTINF:2.000000,
seg1.ts
#EXT-X-ENDLIST
"""


@pytest.fixture
def stream(tmp_path: Path) -> TestStream:
    root = tmp_path / "stream"
    (root / "v0").mkdir(parents=True)
    (root / "master.m3u8").write_text(MASTER)
    (root / "v0" / "index.m3u8").write_text(MEDIA)
    for i in range(2):
        (root / "v0" / f"seg{i}.ts").write_bytes(segment_bytes("v0", i, 1000))
    return TestStream.load(root)


@pytest.fixture
def node_modules(tmp_path: Path) -> Path:
    root = tmp_path / "node_modules"
    for package in (*PACKAGES, "bittorrent-tracker"):
        (root / package / "dist").mkdir(parents=True)
        (root / package / "package.json").write_text("{}")
    (root / "hls.js" / "dist" / "hls.mjs").write_text("export default class Hls {}\n")
    (root / "bittorrent-tracker" / "dist" / "index.js").write_text("// not for the page\n")
    return root


@pytest.fixture
async def server(stream: TestStream, node_modules: Path) -> AsyncIterator[DemoServer]:
    async with DemoServer(stream, node_modules=node_modules) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


async def get(http: aiohttp.ClientSession, url: str) -> tuple[int, str, str]:
    async with http.get(URL(url, encoded=True)) as response:  # "..": sent as written
        body = (await response.read()).decode(errors="replace")
        return response.status, response.headers.get("Content-Type", ""), body


async def test_page_packages_and_stream(server: DemoServer, http: aiohttp.ClientSession) -> None:
    base = server.base_url
    status, kind, body = await get(http, server.page_url)
    assert (status, kind) == (200, "text/html")
    assert '"p2p-media-loader-hlsjs": "/node_modules/pml-hlsjs-2.3/' in body
    assert "/demo/demo.mjs" in body
    status, kind, body = await get(http, f"{base}/demo/demo.mjs")
    assert (status, kind) == (200, "text/javascript") and "onChunkDownloaded" in body
    assert (await get(http, f"{base}/demo/demo.css"))[:2] == (200, "text/css")
    # Only the packages the page imports, and nothing outside them.
    assert (await get(http, f"{base}/node_modules/hls.js/dist/hls.mjs"))[:2] == (
        200,
        "text/javascript",
    )
    for path in (
        "/node_modules/bittorrent-tracker/dist/index.js",
        "/node_modules/hls.js/../bittorrent-tracker/dist/index.js",
        "/demo/../server.py",
        "/demo/missing.js",
    ):
        assert (await get(http, f"{base}{path}"))[0] == 404, path
    # The stream is still served, and only its requests count as origin egress.
    status, _, body = await get(http, server.manifest_url(live=False, channel="demo"))
    assert status == 200 and "v0/index.m3u8" in body
    assert (await get(http, f"{base}/vod/demo/v0/seg1.ts"))[0] == 200
    assert server.stats.segment_paths() == ["/vod/demo/v0/seg1.ts"]
    assert not any(p.startswith(("/demo", "/node_modules")) for p in server.stats.requests)


async def test_config_and_status(server: DemoServer, http: aiohttp.ClientSession) -> None:
    # Before the tracker is up the page is told to wait.
    assert (await get(http, f"{server.base_url}/demo/config.json"))[0] == 503
    server.page_config = PageConfig(
        manifest_url=server.manifest_url(live=True, channel="demo"),
        tracker_url="ws://127.0.0.1:1",
        swarm_id="swarm",
        level=0,
        live=True,
        core={"highDemandTimeWindow": 4},
    )
    calls = 0

    def status() -> dict[str, object]:
        nonlocal calls
        calls += 1
        return {"seeder": {"peerIds": ["-PM0203-abc"]}, "calls": calls}

    server.status = status
    async with http.get(f"{server.base_url}/demo/config.json") as response:
        assert response.status == 200
        config = await response.json()
    assert config == {
        "version": "2.3.1",
        "manifest": f"{server.base_url}/live/demo/master.m3u8",
        "trackers": ["ws://127.0.0.1:1"],
        "swarmId": "swarm",
        "level": 0,
        "live": True,
        "core": {"highDemandTimeWindow": 4},
        "hls": {},
    }
    for expected in (1, 2):  # computed per request, never cached
        async with http.get(f"{server.base_url}/demo/status.json") as response:
            assert response.headers["Cache-Control"] == "no-store"
            assert await response.json() == {
                "seeder": {"peerIds": ["-PM0203-abc"]},
                "calls": expected,
            }


async def test_missing_packages_name_the_fix(stream: TestStream, tmp_path: Path) -> None:
    server = DemoServer(stream, node_modules=tmp_path / "empty")
    with pytest.raises(HarnessError, match=r"hls\.js missing .*run interop/setup\.sh"):
        await server.start()
    await server.aclose()


async def demo_cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "p2pml_py",
        "--no-tuning",
        "demo",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--port", "9000"), "p2pml-py demo: --port: only with --open"),
        (("--no-browser",), "p2pml-py demo: --no-browser: only with --open"),
        (("--open", "--host", "0.0.0.0"), "argument --host: an address of this machine"),
        (("--open", "--host", "localhost"), "argument --host: an IPv4 address, got 'localhost'"),
        (("--open", "--port", "70000"), "argument --port: port out of range"),
    ],
)
async def test_bad_options_are_named(args: tuple[str, ...], message: str) -> None:
    code, out, err = await demo_cli(*args)
    assert code == 2 and message in err, (code, out, err)


async def test_open_without_npm_packages_names_the_fix(tmp_path: Path) -> None:
    code, out, err = await demo_cli("--open", env={"P2PML_INTEROP_DIR": str(tmp_path)})
    assert code == 2, (out, err)
    assert "p2pml-py demo: --open: npm package hls.js missing in" in err
    assert "run interop/setup.sh" in err
    assert "open http" not in out
