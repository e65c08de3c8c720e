"""Renditions as a user picks them: ``swarm-id`` shows the number ``--rendition`` takes next to the
page's hls.js level, and ``seed`` / ``watch`` accept ``lowest``, resolutions and bandwidths.

Real processes, real origin (:class:`SyntheticOrigin`, checked by length since its segments are
not media), real tracker; everything on 127.0.0.1 and every peer is given that tracker.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from p2pml_py.engine.streams import PeerOptions
from p2pml_py.roles.viewer import Viewer
from p2pml_py.rtc.config import RtcConfig
from p2pml_py.testing.origin import Rendition, SyntheticOrigin
from p2pml_py.tracker.server import TrackerServer
from tests.test_cli_roles import cli, finish

# Listed out of order, as real sites do: hls.js's level 0 is the second one listed.
RENDITIONS = (
    Rendition("720p", bandwidth=2_000_000, width=1280, height=720),
    Rendition("360p", bandwidth=800_000, width=640, height=360),
    Rendition("1080p", bandwidth=4_000_000, width=1920, height=1080),
)
UNSORTED = """\
#EXTM3U
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="English",LANGUAGE="en",URI="en/index.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=2000000,RESOLUTION=1280x720,CODECS="avc1.64001f,mp4a.40.2",AUDIO="a"
720p/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,CODECS="avc1.64001f,mp4a.40.2",AUDIO="a"
360p/index.m3u8
"""
URL = "https://cdn.example.org/live/master.m3u8"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "p2pml_py", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_swarm_id_shows_rendition_numbers_and_hlsjs_levels(tmp_path: Path) -> None:
    path = tmp_path / "master.m3u8"
    path.write_text(UNSORTED)
    result = run_cli("swarm-id", str(path), "--url", URL, "--version", "2.3", "--json")
    assert result.returncode == 0, result.stderr
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    got = [
        (r["rendition"], r["type"], r["hlsjs_level"], r["hlsjs_levels"], r["label"]) for r in rows
    ]
    assert got == [
        (0, "main", 1, [1], "1280x720 2000 kbps"),
        (1, "main", 0, [0], "640x360 800 kbps"),
        (2, "secondary", None, [], "English (en)"),
    ]
    text = run_cli("swarm-id", str(path), "--url", URL, "--version", "2.3")
    assert text.returncode == 0, text.stderr
    for row in rows:
        assert row["info_hash"] in text.stdout
    lines = text.stdout.splitlines()
    assert any(
        rows[1]["info_hash"] in line
        and line.endswith("rendition 1: 640x360 800 kbps, hls.js level 0")
        for line in lines
    ), text.stdout
    assert any(line.endswith("rendition 2: English (en), audio track") for line in lines)
    assert "--rendition" in lines[-1] and "lowest" in lines[-1]  # how to use the numbers


async def test_seed_lowest_and_a_resolution_then_watch_by_resolution() -> None:
    async with (
        SyntheticOrigin(renditions=RENDITIONS, vod_segments=10, segment_size=16 * 1024) as origin,
        TrackerServer() as tracker,
    ):
        common = ["--tracker", tracker.url, "--ice-address", "127.0.0.1", "--json"]
        common += ["--validate", "length"]  # synthetic segments are not media
        seeder = await cli(
            "seed", origin.url, *common, "--fetch", "all",
            "--rendition", "lowest", "--rendition", "1920x1080",
        )  # fmt: skip
        try:
            async with asyncio.timeout(20):
                await tracker.wait_until(lambda: tracker.stats().swarms == 2)
            watch = await cli(
                "watch", origin.url, *common, "--rendition", "640x360",
                "--playback-rate", "8", "--high-demand-window", "2", "--duration", "30",
            )  # fmt: skip
            code, out, err = await finish(watch)
            assert code == 0, err
            viewer = json.loads(out)
            assert viewer["streams"][0]["playlist_url"] == f"{origin.base_url}/360p/index.m3u8"
            assert viewer["ended"] and viewer["p2p_bytes"] > 0  # the seeder's swarm, joined
            # At the default log level the viewer still says what it joined.
            assert "watching rendition 1: 640x360 800 kbps, hls.js level 0" in err, err
        finally:
            seeder.send_signal(signal.SIGINT)
            code, out, err = await finish(seeder)
        assert code == 0, err
        summary = json.loads(out)
        assert [s["playlist_url"] for s in summary["streams"]] == [
            f"{origin.base_url}/360p/index.m3u8",
            f"{origin.base_url}/1080p/index.m3u8",
        ]
        assert "default trackers" not in err  # --tracker given: nothing else is used


async def test_a_selector_matching_nothing_lists_the_renditions() -> None:
    async with (
        SyntheticOrigin(renditions=RENDITIONS, vod_segments=4) as origin,
        TrackerServer() as tracker,
    ):
        code, _, err = await finish(
            await cli(
                "watch", origin.url, "--tracker", tracker.url, "--ice-address", "127.0.0.1",
                "--validate", "length", "--rendition", "480p",
            )
        )  # fmt: skip
    assert code == 2
    assert err.count("\n") == 1, err
    assert "'480p' matches nothing" in err and "1: 640x360 800 kbps, hls.js level 0" in err


async def test_a_malformed_selector_fails_before_anything_starts() -> None:
    code, _, err = await finish(
        await cli(
            "seed",
            "http://127.0.0.1:9/m.m3u8",
            "--tracker",
            "ws://127.0.0.1:9",
            "--rendition",
            "fast",
        )
    )
    assert code == 2 and "--rendition" in err and "640x360" in err, err
    code, _, err = await finish(
        await cli(
            "watch",
            "http://127.0.0.1:9/m.m3u8",
            "--tracker",
            "ws://127.0.0.1:9",
            "--rendition",
            "all",
        )
    )
    assert code == 2 and "--rendition: a viewer plays one rendition" in err, err


async def test_the_viewer_logs_the_rendition_it_joined(caplog: pytest.LogCaptureFixture) -> None:
    async with (
        SyntheticOrigin(renditions=RENDITIONS, vod_segments=4) as origin,
        TrackerServer() as tracker,
    ):
        options = PeerOptions(trackers=(tracker.url,), rtc=RtcConfig(ice_addresses=("127.0.0.1",)))
        viewer = Viewer(
            origin.url, options, rendition="lowest", source_config=origin.source_config()
        )
        with caplog.at_level(logging.INFO, logger="p2pml_py.roles.viewer"):
            async with viewer:
                pass
    assert viewer.joined == "rendition 1: 640x360 800 kbps, hls.js level 0"
    (record,) = [r for r in caplog.records if r.__dict__.get("event") == "rendition_joined"]
    fields = {k: record.__dict__[k] for k in ("rendition", "hlsjs_level", "label")}
    assert fields == {"rendition": 1, "hlsjs_level": 0, "label": "640x360 800 kbps"}
    assert record.__dict__["playlist_url"] == f"{origin.base_url}/360p/index.m3u8"
