"""Browsers past one machine: the harness's pages run in a browser that a Playwright server
launched (``playwright run-server``), chosen by ``P2PML_BROWSER_ENDPOINT``
(:mod:`p2pml_py.harness.remote`). Here the server runs on 127.0.0.1; on other machines it is the
same connection.

Two hls.js pages of one swarm play through the remote browser; the later one must get segments
from the first over WebRTC, byte-exact, without stalls; and the browser playing them must be the
server's, launched with the harness's flags.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from p2pml_py.base.aio import cancel_and_wait
from p2pml_py.harness.browser import Chromium
from p2pml_py.harness.paths import chromium_executable
from p2pml_py.harness.remote import ENDPOINT_ENV
from p2pml_py.harness.report import format_table
from p2pml_py.harness.scenario import Interop
from p2pml_py.harness.trackers import Tracker

PLAY_SECONDS = 12.0
#: A flag only the harness passes (CHROMIUM_FLAGS): the server's browser got the launch options.
HARNESS_FLAG = "--allow-loopback-in-peer-connection"


@dataclass(frozen=True)
class PlaywrightServer:
    endpoint: str
    pid: int


@pytest_asyncio.fixture
async def playwright_server() -> AsyncIterator[PlaywrightServer]:
    """``playwright run-server`` (Playwright for Python's own driver) on 127.0.0.1."""
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "playwright", "run-server"),
        *("--port", "0", "--host", "127.0.0.1", "--unsafe"),
        stdout=asyncio.subprocess.PIPE,
        start_new_session=True,  # the Python launcher and its node driver: one process group
    )
    assert proc.stdout is not None
    drain: asyncio.Task[bytes] | None = None
    try:
        async with asyncio.timeout(30):
            line = await proc.stdout.readline()
        found = re.match(rb"Listening on (ws://\S+)", line)
        assert found, f"playwright run-server printed {line!r}"
        drain = asyncio.create_task(proc.stdout.read())  # the pipe never fills
        yield PlaywrightServer(found.group(1).decode(), proc.pid)
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                async with asyncio.timeout(10):
                    await proc.wait()
            except TimeoutError:
                os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        if drain is not None:  # the pipe closed with the processes: read to its end
            try:
                async with asyncio.timeout(5):
                    await drain
            finally:
                await cancel_and_wait([drain])


@pytest_asyncio.fixture
async def chromium(
    playwright_server: PlaywrightServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Chromium]:
    """Overrides the plugin's fixture: the same Chromium class, configured by the environment
    only, as a test run against remote browsers would be."""
    monkeypatch.setenv(ENDPOINT_ENV, playwright_server.endpoint)
    # The browser binary on the server's machine (this one): Debian's Chromium.
    monkeypatch.setenv("P2PML_CHROMIUM", chromium_executable())
    browser = Chromium()
    assert browser.endpoints == (playwright_server.endpoint,)
    await browser.start()
    try:
        yield browser
    finally:
        await browser.aclose()


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


async def test_two_pages_share_in_a_remote_browser(
    interop: Interop, embedded_tracker: Tracker, playwright_server: PlaywrightServer
) -> None:
    first = await interop.open_page("2.3", [embedded_tracker.url])
    await first.wait_playing(2.0, timeout=30)
    second = await interop.open_page("2.3", [embedded_tracker.url])
    pages = [first, second]
    await asyncio.gather(*(page.wait_playing(PLAY_SECONDS, timeout=60) for page in pages))
    stats = [await page.stats() for page in pages]
    rows = interop.record(interop.page_row(p, s) for p, s in zip(pages, stats, strict=True))
    print("\n" + format_table(rows))

    # The pages live in the browser the server launched, with the harness's flags.
    browsers = [
        pid
        for pid in _descendants(playwright_server.pid)
        if HARNESS_FLAG in _cmdline(pid) and "--type=renderer" not in _cmdline(pid)
    ]
    assert browsers, "no Chromium with the harness's flags under the Playwright server"
    # ... and reaching this machine's loopback through the connection (expose_network): the
    # server gave its browser the proxy that tunnels back to the harness.
    cmdline = _cmdline(browsers[0])
    assert any(arg.startswith("--proxy-server=") for arg in cmdline), cmdline

    for page, s in zip(pages, stats, strict=True):
        assert s.fatal_errors == (), f"{page.label}: {s.fatal_errors}"
        assert s.stalls == 0, f"{page.label} stalled"
        assert interop.check_p2p_bytes(s) == [], f"{page.label} got wrong bytes over P2P"
    assert stats[1].p2p_bytes > 0, "the second page got nothing over P2P"
    assert stats[0].uploaded_bytes > 0, "the first page uploaded nothing"
