"""Issue 18: ``p2pml-py demo --open`` as a user runs it, watched in headless Chromium.

The demo runs as a process (what users run); two tabs open the URL it prints, play the stream,
connect to the Python seeder and to each other, and chart their bytes. Mid-run a screenshot of a
tab is saved to ``artifacts/demo-page.png`` (VOD) and ``artifacts/demo-page-live.png`` (live,
what the README suggests), both git-ignored; then the chart is checked to show P2P bytes, and
Ctrl-C (SIGINT) to end the demo with its table.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page, async_playwright

from p2pml_py.harness.browser import CHROMIUM_FLAGS, DEFAULT_EXECUTABLE
from p2pml_py.testing.stream import TestStream

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
URL_LINE = re.compile(r"^open (http://127\.0\.0\.1:\d+/) in a browser; open it in several tabs")
UPLOADED = re.compile(r"the seeder uploaded ([\d.]+) MB to (\d+) peers")

#: JS over the page's model (window.p2pmlDemo, ``s``): the seeder is a connected peer.
SEEDER_CONNECTED = "s.python.seeder.some((id) => s.peers[id] && s.peers[id].connected)"
#: ... and so is someone else: the other tab.
TWO_PEERS = "Object.values(s.peers).filter((p) => p.connected).length >= 2"
#: The chart (not only the counters) shows P2P bytes, over a few samples.
CHART_P2P = "s.chart.p2pBytes > 0 && s.chart.samples >= 5"


async def wait_state(page: Page, expression: str, timeout: float, label: str) -> None:
    script = f"() => {{ const s = window.p2pmlDemo; return !!(s && ({expression})); }}"
    try:
        await page.wait_for_function(script, timeout=timeout * 1000, polling=250)
    except PlaywrightError as exc:
        state = await page.evaluate("() => JSON.stringify(window.p2pmlDemo ?? null)")
        raise AssertionError(f"{label}: {expression!r} not true: {exc}\nstate: {state}") from exc


async def read_url(proc: asyncio.subprocess.Process, out: list[str]) -> str:
    assert proc.stdout is not None
    while line := await proc.stdout.readline():
        text = line.decode().rstrip()
        out.append(text)
        found = URL_LINE.match(text)
        if found:
            return found.group(1)
    raise AssertionError(f"the demo exited without printing its URL: {out}")


async def drain(stream: asyncio.StreamReader | None, into: list[str]) -> None:
    assert stream is not None
    while line := await stream.readline():
        into.append(line.decode(errors="replace").rstrip())
        del into[:-200]


async def chart_in_dom(page: Page) -> dict[str, Any]:
    raw = await page.evaluate(
        """() => JSON.stringify({
            dataP2p: Number(document.getElementById("chart").dataset.p2pBytes),
            areaHeight: document.getElementById("p2p-area").getBBox().height,
            legend: document.getElementById("p2p-total").textContent,
            seederRows: document.querySelectorAll("#peers td.seeder").length,
            playing: window.p2pmlDemo.playing,
            errors: window.p2pmlDemo.errors,
        })"""
    )
    result: dict[str, Any] = json.loads(raw)
    return result


@pytest.mark.parametrize("mode", ["VOD", "live"])
async def test_demo_page_charts_p2p_bytes_from_the_seeder_and_tabs(
    interop_stream: TestStream, node_modules: Path, mode: str
) -> None:
    screenshot = ARTIFACTS / ("demo-page.png" if mode == "VOD" else "demo-page-live.png")
    # The demo uses the harness's stream and packages (same cache, same interop/ directory):
    # the fixtures made sure both exist.
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "p2pml_py",
        "demo",
        "--open",
        "--port",
        "0",
        "--no-browser",
        *(["--live"] if mode == "live" else []),
        "--duration",
        "120",  # an upper bound: the test stops it with Ctrl-C
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out: list[str] = []
    err: list[str] = []
    stderr_task = asyncio.create_task(drain(proc.stderr, err))
    try:
        async with asyncio.timeout(30):
            url = await read_url(proc, out)
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=os.environ.get("P2PML_CHROMIUM", DEFAULT_EXECUTABLE),
                args=list(CHROMIUM_FLAGS),
            )
            try:
                # Two tabs in separate contexts (nothing shared but the swarm), opened at once.
                contexts = [
                    await browser.new_context(viewport={"width": 1180, "height": 860})
                    for _ in range(2)
                ]
                pages = [await context.new_page() for context in contexts]
                await asyncio.gather(*(page.goto(url) for page in pages))
                for label, page in zip(("tab1", "tab2"), pages, strict=True):
                    await wait_state(page, "s.ready && s.error === null", 20, label)
                for label, page in zip(("tab1", "tab2"), pages, strict=True):
                    await wait_state(page, f"{SEEDER_CONNECTED} && {TWO_PEERS}", 30, label)
                    await wait_state(page, f"{CHART_P2P} && s.playing", 40, label)
                # Mid-run: the demo and both players are still going.
                ARTIFACTS.mkdir(exist_ok=True)
                await pages[1].screenshot(path=str(screenshot), full_page=True)
                print(f"\nscreenshot of the demo page ({mode}): {screenshot}")
                for label, page in zip(("tab1", "tab2"), pages, strict=True):
                    dom = await chart_in_dom(page)
                    assert dom["dataP2p"] > 0, f"{label}: the chart shows no P2P bytes: {dom}"
                    assert dom["areaHeight"] > 1, f"{label}: the P2P area is not drawn: {dom}"
                    assert dom["legend"] != "0.00 MB", dom
                    assert dom["seederRows"] >= 1, f"{label}: the seeder is not listed: {dom}"
                    assert dom["errors"] == [], f"{label}: {dom['errors']}"
            finally:
                await browser.close()
        assert proc.returncode is None, "the demo stopped before it was told to"
        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(30):
            await drain(proc.stdout, out)
            await proc.wait()
            await stderr_task
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        stderr_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stderr_task
    log = "\n".join(out + err[-40:])
    assert proc.returncode == 0, log
    assert any(
        line.startswith(f"p2pml-py demo --open: {mode} ffmpeg test stream") for line in out
    ), log
    uploaded = next((UPLOADED.search(line) for line in out if UPLOADED.search(line)), None)
    assert uploaded is not None, log
    assert float(uploaded.group(1)) > 0 and int(uploaded.group(2)) >= 2, log
