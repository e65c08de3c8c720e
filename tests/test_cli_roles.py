"""``p2pml-py seed``, ``watch`` and ``demo`` as a user runs them: real processes, real origin,
real tracker, all on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from typing import Any

from p2pml_py.testing.origin import Rendition, SyntheticOrigin
from p2pml_py.tracker.server import TrackerServer

RENDITIONS = (
    Rendition("360p", bandwidth=800_000, width=640, height=360),
    Rendition("720p", bandwidth=2_000_000, width=1280, height=720),
)


async def cli(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "p2pml_py",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def finish(proc: asyncio.subprocess.Process, timeout: float = 60) -> tuple[int, str, str]:
    async with asyncio.timeout(timeout):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_seed_and_watch_json_summaries_and_clean_exit() -> None:
    async with (
        SyntheticOrigin(renditions=RENDITIONS, vod_segments=20, segment_size=32 * 1024) as origin,
        TrackerServer() as tracker,
    ):
        common = ["--tracker", tracker.url, "--ice-address", "127.0.0.1", "--json"]
        common += ["--validate", "length"]  # synthetic segments are not media
        seeder = await cli("seed", origin.url, *common, "--protocol", "both")
        # Wait until the seeder announced its swarms (2 renditions x 2 versions).
        async with asyncio.timeout(20):
            await tracker.wait_until(lambda: tracker.stats().swarms == 4)
        watch = await cli(
            "--log-level",
            "info",
            "--log-format",
            "json",
            "watch",
            origin.url,
            *common,
            "--rendition",
            "1",
            "--playback-rate",
            "8",
            "--high-demand-window",
            "2",
            "--duration",
            "30",
        )
        code, out, err = await finish(watch)
        assert code == 0, err
        viewer: dict[str, Any] = json.loads(out)
        for key in ("http_bytes", "p2p_bytes", "uploaded_bytes", "stalls", "peers_seen", "peers"):
            assert key in viewer
        assert viewer["ended"] and viewer["stalls"] == 0
        assert viewer["p2p_bytes"] > 0 and viewer["peers_seen"] >= 1
        assert viewer["streams"][0]["playlist_url"].endswith("720p/index.m3u8")
        # --log-format json: one object per line; steps carry an "event" tools can read.
        records = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
        assert records and all("msg" in r and "level" in r for r in records)
        joined = [r["peer_id"] for r in records if r.get("event") == "swarm_joined"]
        assert joined == [viewer["streams"][0]["swarms"][0]["peer_id"]]
        got_from = {r["remote_peer_id"] for r in records if r.get("event") == "first_segment_from"}
        assert got_from and got_from <= set(viewer["peers"])

        seeder.send_signal(signal.SIGINT)  # Ctrl-C: leave cleanly
        code, out, err = await finish(seeder)
        assert code == 0, err
        summary = json.loads(out)
        assert summary["http_bytes"] == 2 * 20 * 32 * 1024  # every rendition, once
        assert summary["uploaded_bytes"] == viewer["p2p_bytes"]
        assert len(summary["streams"]) == 2
        assert {s["version"] for s in summary["streams"][0]["swarms"]} == {"2.2", "2.3"}
        # "stopped" reached the tracker: it forgot the seeder's peers.
        async with asyncio.timeout(10):
            await tracker.wait_until(lambda: tracker.stats().peers == 0)


async def test_bad_arguments_name_the_field() -> None:
    checks = [
        (["seed", "http://x/m.m3u8", "--tracker", ""], "--tracker"),
        (["seed", "http://x/m.m3u8", "--tracker", "http://t"], "--tracker"),
        (["seed", "http://x/m.m3u8", "--tracker", "ws://t", "--protocol", "3"], "--protocol"),
        (["watch", "http://x/m.m3u8", "--tracker", "ws://t", "--protocol", "both"], "--protocol"),
        (["seed", "http://x/m.m3u8", "--tracker", "ws://t", "--ice-address", "nope"], "ice"),
        (["watch", "http://x/m.m3u8", "--tracker", "ws://t", "--duration", "-1"], "--duration"),
    ]
    for args, field in checks:
        code, _, err = await finish(await cli(*args))
        assert code == 2, (args, err)
        assert field in err, (args, err)


async def test_unreachable_origin_is_one_line_and_status_2() -> None:
    code, _out, err = await finish(
        await cli("watch", "http://127.0.0.1:9/m.m3u8", "--tracker", "ws://127.0.0.1:9")
    )
    assert code == 2
    assert err.strip().count("\n") == 0 and "127.0.0.1:9" in err, err


async def test_demo_prints_its_table() -> None:
    code, out, err = await finish(
        await cli("demo", "--viewers", "2", "--segments", "12", "--playback-rate", "4"), 120
    )
    assert code == 0, err
    assert "viewer 2" in out and "origin egress" in out and "P2P %" in out
    code, out, err = await finish(
        await cli("demo", "--viewers", "2", "--segments", "12", "--playback-rate", "4", "--json"),
        120,
    )
    summary = json.loads(out)
    assert summary["stalls"] == 0
    assert len(summary["viewers"]) == 2
    assert summary["p2p_share"] > 0
