"""``p2pml-py collector`` as a user runs it: a process on 127.0.0.1 that takes reports, serves
its metrics and leaves on SIGTERM; bad options are refused with a clear message."""

from __future__ import annotations

import asyncio
import re
import signal
import sys

import aiohttp

from tests.collector.helpers import body

URL_LINE = re.compile(r"collecting viewer stats on (http://127\.0\.0\.1:\d+)/pingback")


async def test_the_collector_command_takes_reports_until_sigterm() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "p2pml_py",
        "collector",
        "--listen",
        "127.0.0.1:0",
        "--cors-origin",
        "http://127.0.0.1:8080/",
        "--stream",
        "http://127.0.0.1:8000/vod/master.m3u8",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(20):
            line = (await proc.stdout.readline()).decode()
        found = URL_LINE.search(line)
        assert found, line
        base = found.group(1)
        async with aiohttp.ClientSession() as http:
            headers = {"Content-Type": "text/plain", "Origin": "http://127.0.0.1:8080"}
            async with http.post(base + "/pingback", data=body(), headers=headers) as response:
                assert response.status == 204
            async with http.post(
                base + "/pingback", data=body("b" * 32, stream="other"), headers=headers
            ) as response:
                assert response.status == 400
                assert (await response.json())["reason"] == "unknown_stream"
            async with http.get(base + "/metrics") as response:
                metrics = await response.text()
        assert 'p2pml_viewer_p2p_share{stream="http://127.0.0.1:8000/vod/master.m3u8"} 0.75' in (
            metrics
        )
        assert 'p2pml_viewer_reports_rejected_total{reason="unknown_stream"} 1.0' in metrics
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            await proc.wait()
        assert proc.returncode == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_a_bad_origin_is_refused_naming_the_option() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "p2pml_py",
        "collector",
        "--cors-origin",
        "www.example.org",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(20):
        _, err = await proc.communicate()
    assert proc.returncode == 2
    assert "--cors-origin" in err.decode() and "not an origin" in err.decode()
