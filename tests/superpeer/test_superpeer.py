"""The super-peer as an operator runs it: a real process with worker processes, real origins,
the embedded tracker and ``p2pml-py watch`` viewers as subprocesses, all on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from p2pml_py.testing.origin import Rendition, SyntheticOrigin
from p2pml_py.testing.processes import Record, SuperPeerProcess
from p2pml_py.tracker.server import TrackerServer

VOD_SEGMENTS = 16
RENDITION = (Rendition("360p", bandwidth=800_000, width=640, height=360),)
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


def serving(name: str) -> Callable[[Record], bool]:
    return lambda r: r.get("event") == "stream_serving" and r.get("stream") == name


def stream(status: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in status["streams"] if s["name"] == name)


def seeder_ids(status: dict[str, Any], name: str) -> dict[str, str]:
    """info hash -> the super-peer's peer id in that swarm."""
    return {
        swarm["info_hash"]: swarm["peer_id"]
        for rendition in stream(status, name)["renditions"]
        for swarm in rendition["swarms"]
    }


async def tracker_holds(
    tracker: TrackerServer, ids: dict[str, str], present: bool, timeout: float = 10
) -> None:
    """Until each peer id is (or, ``present=False``, is no longer) in its swarm at the tracker.
    "serving" and "stopped_sent" mean the super-peer *sent* its announce; the tracker registers
    it when it processes the message, a moment later."""
    async with asyncio.timeout(timeout):
        while True:
            if all(
                (peer_id in tracker.registry.peers_of(info_hash)) == present
                for info_hash, peer_id in ids.items()
            ):
                return
            await asyncio.sleep(0.05)


def write_config(path: Path, tracker: str, streams: dict[str, str], **extra: str) -> None:
    lines = [
        "[superpeer]",
        "workers = 2",
        'listen = "127.0.0.1:0"',
        "stats_interval = 0.25",
        "[defaults]",
        f'trackers = ["{tracker}"]',
        'ice_addresses = ["127.0.0.1"]',
        "store_mb = 64",
        'validate = "length"',  # synthetic segments are not media
    ]
    for name, url in streams.items():
        lines += ["[[stream]]", f'name = "{name}"', f'url = "{url}"', extra.get(name, "")]
    path.write_text("\n".join(lines) + "\n")


async def watch(url: str, tracker: str, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "p2pml_py",
        "watch",
        url,
        "--tracker",
        tracker,
        "--ice-address",
        "127.0.0.1",
        "--json",
        "--no-status",
        "--validate",
        "length",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def summary_of(proc: asyncio.subprocess.Process, timeout: float) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()[-2000:]
    result: dict[str, Any] = json.loads(out)
    return result


VOD_ARGS = ("--playback-rate", "2", "--high-demand-window", "2", "--duration", "40")
LIVE_ARGS = ("--high-demand-window", "4", "--live-sync-segments", "6")


async def test_three_streams_viewers_reload_and_sigterm(tmp_path: Path) -> None:
    def vod() -> SyntheticOrigin:
        return SyntheticOrigin(
            renditions=RENDITION, vod_segments=VOD_SEGMENTS, segment_size=96 * 1024
        )

    async with (
        vod() as origin_a,
        vod() as origin_b,
        SyntheticOrigin(
            renditions=RENDITION, live=True, window=10, segment_duration=2.0, segment_size=64 * 1024
        ) as origin_c,
        vod() as origin_d,
        TrackerServer() as tracker,
    ):
        config = tmp_path / "superpeer.toml"
        write_config(config, tracker.url, {"a": origin_a.url, "b": origin_b.url, "c": origin_c.url})
        async with SuperPeerProcess(config) as sp:
            for name in "abc":
                await sp.wait_log(serving(name), 30)
            # The VOD seeders hold the whole stream before the viewers come.
            status = await sp.wait_status(
                lambda s: all(stream(s, n)["held_segments"] == VOD_SEGMENTS for n in "ab"), 20
            )
            assert {stream(status, n)["worker"] for n in "abc"} == {0, 1}  # spread over both
            viewers = {
                name: [await watch(url, tracker.url, *args) for _ in range(2)]
                for name, url, args in (
                    ("a", origin_a.url, VOD_ARGS),
                    ("b", origin_b.url, VOD_ARGS),
                    ("c", origin_c.url, LIVE_ARGS),
                )
            }
            summaries = {name: [await summary_of(p, 60) for p in viewers[name]] for name in "ab"}
            # The live stream's viewers are connected to the super-peer and get bytes from it.
            status = await sp.wait_status(
                lambda s: stream(s, "c")["peers"] == 2 and stream(s, "c")["uploaded_bytes"] > 0, 30
            )
            before_c = stream(status, "c")
            ids_a, ids_c = seeder_ids(status, "a"), seeder_ids(status, "c")
            for info_hash, peer_id in ids_c.items():
                assert peer_id in tracker.registry.peers_of(info_hash)

            # /metrics parses, and says what /status says.
            async with aiohttp.ClientSession() as http, http.get(sp.url + "/metrics") as response:
                text = await response.text()
            families = {f.name: f for f in text_string_to_metric_families(text)}
            uploaded = {
                s.labels["stream"]: s.value
                for s in families["p2pml_superpeer_uploaded_bytes"].samples
                if s.name.endswith("_total")
            }
            assert set(uploaded) == {"a", "b", "c"} and all(v > 0 for v in uploaded.values())
            peers = {s.labels["stream"]: s.value for s in families["p2pml_superpeer_peers"].samples}
            assert peers["c"] >= 1
            refused = [
                s.value
                for s in families["p2pml_superpeer_offers_refused"].samples
                if s.name.endswith("_total")
            ]
            assert refused and all(v == 0 for v in refused)  # far from the caps here
            for name in ("origin_bytes", "held_segments", "held_bytes", "worker_up", "stream_up"):
                assert "p2pml_superpeer_" + name in families

            # SIGHUP: a goes, d comes, b and c are not touched.
            write_config(
                config, tracker.url, {"b": origin_b.url, "c": origin_c.url, "d": origin_d.url}
            )
            sp.signal(signal.SIGHUP)
            reloaded = await sp.wait_log(lambda r: r.get("event") == "reloaded", 10)
            assert (reloaded["added"], reloaded["removed"], reloaded["restarted"]) == ("d", "a", "")
            await sp.wait_log(serving("d"), 20)
            removed = await sp.wait_log(lambda r: r.get("event") == "stream_removed", 10)
            assert removed["stream"] == "a" and removed["stopped_sent"] == len(ids_a)
            await tracker_holds(tracker, ids_a, present=False)
            status = await sp.wait_status(lambda s: stream(s, "d")["state"] == "serving", 10)
            assert sorted(s["name"] for s in status["streams"]) == ["b", "c", "d"]
            await tracker_holds(tracker, seeder_ids(status, "d"), present=True)
            after_c = stream(status, "c")
            assert seeder_ids(status, "c") == ids_c  # same peer ids: no re-join
            assert after_c["since"] == before_c["since"] and after_c["worker"] == before_c["worker"]
            assert after_c["connects"] == before_c["connects"] and after_c["peers"] == 2

            # SIGTERM: every seeder leaves its swarms with "stopped" while the viewers stay.
            ids_all = {**seeder_ids(status, "b"), **ids_c, **seeder_ids(status, "d")}
            assert await sp.terminate(30) == 0
            stopped = [r for r in sp.records if r.get("event") == "worker_stopped"]
            assert len(stopped) == 2
            # Counted per worker process: a's swarms (removed earlier) and all the others.
            assert sum(r["stopped_sent"] for r in stopped) == len(ids_all) + len(ids_a)
            await tracker_holds(tracker, ids_all, present=False)
            assert len(tracker.registry.peers_of(next(iter(ids_c)))) == 2  # the live viewers
            assert not sp.errors(), sp.errors()

        for proc in viewers["c"]:
            proc.send_signal(signal.SIGINT)
        summaries["c"] = [await summary_of(p, 20) for p in viewers["c"]]
    for name, group in summaries.items():
        http = sum(s["http_bytes"] for s in group)
        p2p = sum(s["p2p_bytes"] for s in group)
        reasons = [s["http_segments"] for s in group]
        assert p2p > http, (name, http, p2p, reasons)  # most bytes from peers
        for summary in group:
            assert summary["stalls"] == 0, (name, summary["stalls"])
            assert summary["p2p_bytes"] > 0


async def test_killed_worker_serves_again_and_status_page_charts(tmp_path: Path) -> None:
    async with (
        SyntheticOrigin(
            renditions=RENDITION, live=True, window=10, segment_duration=2.0, segment_size=64 * 1024
        ) as live,
        SyntheticOrigin(renditions=RENDITION, vod_segments=8) as vod,
        TrackerServer() as tracker,
    ):
        config = tmp_path / "superpeer.toml"
        write_config(config, tracker.url, {"live": live.url, "vod": vod.url})
        async with SuperPeerProcess(config) as sp:
            await sp.wait_log(serving("live"), 30)
            viewer = await watch(live.url, tracker.url, *LIVE_ARGS)
            try:
                status = await sp.wait_status(
                    lambda s: (
                        stream(s, "live")["peers"] == 1 and stream(s, "live")["uploaded_bytes"] > 0
                    ),
                    30,
                )
                index = stream(status, "live")["worker"]
                pid = status["workers"][index]["pid"]
                uploaded = stream(status, "live")["uploaded_bytes"]
                loop = asyncio.get_running_loop()
                killed_at = loop.time()
                os.kill(pid, signal.SIGKILL)
                crash = await sp.wait_log(lambda r: r.get("event") == "worker_crashed", 10)
                assert crash["worker"] == index and crash["exit_status"] == -signal.SIGKILL
                # Serving again: the new process joined the swarm and the viewer gets bytes
                # from it (the totals carry the dead process's bytes over).
                status = await sp.wait_status(
                    lambda s: (
                        s["workers"][index]["pid"] != pid
                        and stream(s, "live")["state"] == "serving"
                        and stream(s, "live")["peers"] == 1
                        and stream(s, "live")["uploaded_bytes"] > uploaded
                    ),
                    10 - (loop.time() - killed_at),
                )
                assert loop.time() - killed_at < 10
                assert status["workers"][index]["restarts"] == 1
                assert status["workers"][1 - index]["restarts"] == 0

                async with aiohttp.ClientSession() as http:
                    async with http.get(sp.url + "/metrics") as response:
                        text = await response.text()
                families = {f.name: f for f in text_string_to_metric_families(text)}
                restarts = {
                    s.labels["worker"]: s.value
                    for s in families["p2pml_superpeer_worker_restarts"].samples
                    if s.name.endswith("_total")
                }
                assert restarts == {str(index): 1.0, str(1 - index): 0.0}

                await screenshot_status_page(sp.url)
            finally:
                viewer.send_signal(signal.SIGINT)
                summary = await summary_of(viewer, 20)
            assert summary["p2p_bytes"] > 0
            assert await sp.terminate(30) == 0
            assert [r for r in sp.errors() if r.get("event") != "worker_crashed"] == []


async def screenshot_status_page(url: str) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-background-networking"],
        )
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 800})
            await page.goto(url + "/")
            # Charts are drawn from /status every second: wait for a few points.
            await page.wait_for_function("Number(document.body.dataset.samples || 0) >= 5")
            await page.wait_for_timeout(1500)  # let one more poll draw (the screenshot shows it)
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "superpeer-status.png"), full_page=True)
            # The upload line (first colour) is on the rates canvas, the stream lines on the
            # peers canvas: count their pixels.
            counts = await page.evaluate(
                """() => ["rates", "peers"].map(id => {
                    const c = document.getElementById(id);
                    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
                    const want = id === "rates" ? [0x1f, 0x77, 0xb4] : [0x2c, 0xa0, 0x2c];
                    let n = 0;
                    for (let i = 0; i < d.length; i += 4)
                        if (Math.abs(d[i] - want[0]) < 8 && Math.abs(d[i + 1] - want[1]) < 8
                            && Math.abs(d[i + 2] - want[2]) < 8) n++;
                    return n;
                })"""
            )
            assert counts[0] > 50 and counts[1] > 50, counts
            table = await page.inner_text("#streams")
            assert "live" in table and "serving" in table
        finally:
            await browser.close()
