"""pytest fixtures for browser interop tests: ``pytest -p p2pml_py.harness.pytest_plugin``.

Works from an installed wheel: the pages ship with the package, ``p2pml-py harness setup``
installs the pinned npm packages once (:mod:`p2pml_py.harness.install`, where:
:mod:`p2pml_py.harness.paths`).

Fixtures (async ones are function-scoped, so every test gets fresh servers and a fresh browser):

* ``interop_stream`` (session) -- the :class:`~p2pml_py.testing.stream.TestStream` (generated with
  ffmpeg on first use, or ``P2PML_INTEROP_STREAM``);
* ``interop_origin`` -- an :class:`~p2pml_py.harness.origin.InteropOrigin` serving pages,
  npm packages and the stream (VOD and live) on 127.0.0.1;
* ``embedded_tracker`` / ``npm_tracker`` -- p2pml_py's tracker / the npm bittorrent-tracker;
* ``chromium`` -- a headless :class:`~p2pml_py.harness.browser.Chromium`;
* ``interop`` -- an :class:`~p2pml_py.harness.scenario.Interop` bundling the three above, with
  helpers to open pages (hls.js, or Shaka with ``player="shaka"``), start Python peers and report
  rows;
* ``interop_report`` (session) -- rows added by tests; printed as one table at the end of the run.

Missing parts (Chromium, node packages, ffmpeg) make the tests *fail* with the reason, never skip:
a CI run must not pass by skipping its interop scenarios.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from p2pml_py.base.errors import HarnessError
from p2pml_py.harness.browser import Chromium
from p2pml_py.harness.origin import InteropOrigin
from p2pml_py.harness.report import InteropReport, PeerRow
from p2pml_py.harness.scenario import Interop
from p2pml_py.harness.stream import ensure_stream
from p2pml_py.harness.trackers import Tracker, run_tracker
from p2pml_py.testing.stream import TestStream

__all__ = [
    "chromium",
    "embedded_tracker",
    "interop",
    "interop_origin",
    "interop_report",
    "interop_stream",
    "npm_tracker",
]

_report = InteropReport()


@pytest.fixture(scope="session")
def interop_stream() -> TestStream:
    try:
        return ensure_stream()
    except HarnessError as exc:
        pytest.fail(f"interop stream unavailable: {exc}")


@pytest.fixture(scope="session")
def interop_report() -> InteropReport:
    return _report


@pytest_asyncio.fixture
async def interop_origin(interop_stream: TestStream) -> AsyncIterator[InteropOrigin]:
    try:
        origin = InteropOrigin(interop_stream)
        await origin.start()
    except HarnessError as exc:
        pytest.fail(str(exc))
    try:
        yield origin
    finally:
        await origin.aclose()


@pytest_asyncio.fixture
async def embedded_tracker() -> AsyncIterator[Tracker]:
    async with run_tracker("embedded") as tracker:
        yield tracker


@pytest_asyncio.fixture
async def npm_tracker() -> AsyncIterator[Tracker]:
    try:
        context = run_tracker("npm")
        tracker = await context.__aenter__()
    except HarnessError as exc:
        pytest.fail(str(exc))
    try:
        yield tracker
    finally:
        await context.__aexit__(None, None, None)


@pytest_asyncio.fixture
async def chromium() -> AsyncIterator[Chromium]:
    browser = Chromium()
    try:
        await browser.start()
    except HarnessError as exc:
        pytest.fail(str(exc))
    try:
        yield browser
    finally:
        await browser.aclose()


@pytest_asyncio.fixture
async def interop(
    request: pytest.FixtureRequest,
    interop_origin: InteropOrigin,
    chromium: Chromium,
    interop_report: InteropReport,
) -> AsyncIterator[Interop]:
    session = Interop(
        origin=interop_origin, chromium=chromium, report=interop_report, name=request.node.name
    )
    try:
        yield session
    finally:
        await session.aclose()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Under pytest-xdist, a worker hands its rows to the controller, which prints the table."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["p2pml_interop_rows"] = [dataclasses.asdict(row) for row in _report.rows]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    rows = getattr(node, "workeroutput", {}).get("p2pml_interop_rows", [])
    _report.add(PeerRow(**row) for row in rows)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: Any) -> None:
    if not _report.rows:
        return
    terminalreporter.section("browser interop: bytes by source per peer")
    for line in _report.table().splitlines():
        terminalreporter.write_line(line)
