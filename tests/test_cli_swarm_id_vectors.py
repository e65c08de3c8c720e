"""``p2pml-py swarm-id`` end to end: the real console script against hlsjs_streams.json."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.conftest import VectorCounter


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "p2pml_py", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_swarm_id_prints_the_browsers_info_hashes(vectors: VectorCounter, tmp_path: Path) -> None:
    data = vectors.load("hlsjs_streams.json")
    master = tmp_path / "master.m3u8"
    master.write_text(data["master_playlist"])
    result = run_cli("swarm-id", str(master), "--url", data["manifest_url"], "--json")
    assert result.returncode == 0, result.stderr
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    for package_version, short in (("2.3.1", "2.3"), ("2.2.2", "2.2")):
        expected = data["streams"][package_version]
        got = [r for r in rows if r["version"] == short]
        assert len(got) == len(expected) > 0
        for row, want in zip(got, expected, strict=True):
            assert (row["type"], row["index"]) == (want["type"], want["index"])
            assert row["stream_swarm_id"] == want["stream_swarm_id"]
            assert row["info_hash"] == want["info_hash"]
        vectors.checked("hlsjs_streams.json", len(expected))
    # The text form prints the same hashes.
    text = run_cli("swarm-id", str(master), "--url", data["manifest_url"], "--version", "2.2")
    assert text.returncode == 0
    for want in data["streams"]["2.2.2"]:
        assert want["info_hash"] in text.stdout
    assert all(w["info_hash"] not in text.stdout for w in data["streams"]["2.3.1"])


def test_swarm_id_over_http_uses_the_final_url(vectors: VectorCounter) -> None:
    """Browsers derive the swarm id from the manifest URL after redirects, minus the query."""
    data = vectors.load("hlsjs_streams.json")

    async def scenario() -> subprocess.CompletedProcess[str]:
        async def redirect(request: web.Request) -> web.Response:
            raise web.HTTPFound("/vod/movie/master.m3u8?session=42")

        async def master(request: web.Request) -> web.Response:
            return web.Response(text=data["master_playlist"])

        app = web.Application()
        app.router.add_get("/start", redirect)
        app.router.add_get("/vod/movie/master.m3u8", master)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            return await asyncio.to_thread(
                run_cli, "swarm-id", f"http://127.0.0.1:{port}/start", "--json"
            )
        finally:
            await runner.cleanup()

    result = asyncio.run(scenario())
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    main = [r for r in rows if r["type"] == "main" and r["version"] == "2.2"]
    port_url = main[0]["stream_swarm_id"].removeprefix("v2-").removesuffix("-main-0")
    assert port_url.startswith("http://127.0.0.1:") and port_url.endswith("/vod/movie/master.m3u8")


def test_bad_sources_give_one_line_and_status_2(tmp_path: Path) -> None:
    missing = run_cli("swarm-id", str(tmp_path / "nope.m3u8"), "--url", "https://x/y.m3u8")
    assert missing.returncode == 2
    assert missing.stderr.count("\n") == 1 and "nope.m3u8" in missing.stderr
    garbage = tmp_path / "garbage.m3u8"
    garbage.write_text("this is not a playlist\n")
    bad = run_cli("swarm-id", str(garbage), "--url", "https://x/y.m3u8")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    no_url = run_cli("swarm-id", str(garbage))
    assert no_url.returncode == 2 and "--url" in no_url.stderr
    unreachable = run_cli("swarm-id", "http://127.0.0.1:9/master.m3u8")
    assert unreachable.returncode == 2 and unreachable.stderr.count("\n") == 1
    bad_version = run_cli("swarm-id", str(garbage), "--url", "u", "--version", "3.0")
    assert bad_version.returncode == 2 and "--version" in bad_version.stderr
