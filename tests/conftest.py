"""Shared test helpers.

``vectors`` loads the browser vector files shipped in ``tests/vectors`` and counts how many cases
each test module checked; the counts are printed at the end of the run, and a vector file that no
test checked fails the run (a test that silently finds zero vectors must not pass).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

VECTOR_DIR = Path(__file__).parent / "vectors"
VECTOR_FILES = sorted(p.name for p in VECTOR_DIR.glob("*.json"))

_checked: Counter[str] = Counter()


class VectorCounter:
    """Loads a vector file and records each case a test checks."""

    def load(self, name: str) -> Any:
        path = VECTOR_DIR / name
        with path.open(encoding="utf-8") as f:
            return json.load(f)

    def checked(self, name: str, count: int = 1) -> None:
        if name not in VECTOR_FILES:
            raise AssertionError(f"unknown vector file {name}")
        _checked[name] += count


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """The pinned npm packages of ``interop/`` (installed on first use)."""
    from tests.nodejs import ensure_node_modules

    try:
        return ensure_node_modules()
    except RuntimeError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def vectors() -> Iterator[VectorCounter]:
    yield VectorCounter()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: Any) -> None:
    _print_fuzz_summary(terminalreporter)
    if not _checked:
        return  # a partial run that touched no vector test
    terminalreporter.section("protocol vectors checked")
    for name in VECTOR_FILES:
        terminalreporter.write_line(f"{name}: {_checked[name]} vectors checked")


#: Whether this process collected every vector test module (under pytest-xdist: any worker did).
_collected_all_vectors = False


def pytest_collection_finish(session: pytest.Session) -> None:
    global _collected_all_vectors
    vector_modules = {str(p) for p in Path(__file__).parent.rglob("test_*vectors*.py")}
    collected = {str(item.fspath) for item in session.items}
    # Only a run that collected every vector test module can say a vector file went unchecked.
    _collected_all_vectors = bool(vector_modules) and vector_modules <= collected


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        # A pytest-xdist worker: its counts go to the controller, which judges the whole run.
        workeroutput["p2pml_vectors"] = dict(_checked)
        workeroutput["p2pml_all_vectors"] = _collected_all_vectors
        workeroutput["p2pml_fuzz"] = _fuzz_examples
        return
    _write_outcomes()
    # When the vector tests ran (the full suite), every file must have been checked at least once.
    if _collected_all_vectors and session.testsfailed == 0:
        missing = [name for name in VECTOR_FILES if _checked[name] == 0]
        if missing:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
            print(f"\nERROR: vector files checked by no test: {', '.join(missing)}")


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """pytest-xdist controller: add up what each worker checked."""
    global _collected_all_vectors, _fuzz_examples
    output = getattr(node, "workeroutput", {})
    _checked.update(output.get("p2pml_vectors", {}))
    _collected_all_vectors = _collected_all_vectors or bool(output.get("p2pml_all_vectors"))
    _fuzz_examples += int(output.get("p2pml_fuzz", 0))


_fuzz_examples = 0


def record_fuzz_example() -> None:
    """Called by each property-based example; the total is printed at the end of the run."""
    global _fuzz_examples
    _fuzz_examples += 1


def _print_fuzz_summary(terminalreporter: Any) -> None:
    if _fuzz_examples:
        terminalreporter.section("property-based tests")
        terminalreporter.write_line(f"{_fuzz_examples} examples run, 0 unexpected exceptions")


# -- retry policy ------------------------------------------------------------------------------
# Only tests that depend on real browsers or on real time may be retried, once, by
# scripts/pytest-rerun.sh; a unit test never is. Everything below tests/interop/ is "interop";
# "realtime" is set on the modules whose outcome rides on wall-clock windows (players at real-time
# rate, processes measured over seconds, a multi-process super-peer).
RETRIABLE_MARKERS = ("interop", "realtime")
_REALTIME_MODULES = (
    "tests/test_bench_smoke.py",
    "tests/roles/test_vod.py",
    "tests/roles/test_live_and_outages.py",
    "tests/superpeer/test_superpeer.py",
    "tests/superpeer/test_fleet_processes.py",
    "tests/roles/test_integrity.py",
    "tests/rtc/test_dead_peers.py",
    "tests/loadtest/test_locust_distributed.py",
)
_outcomes: dict[str, str] = {}
_retriable: dict[str, bool] = {}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "interop: real Chromium pages (may be retried once)")
    config.addinivalue_line(
        "markers", "realtime: outcome rides on wall-clock time (may be retried once)"
    )
    config.addinivalue_line("markers", "xdist_group(name): pytest-xdist runs a group on one worker")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = item.nodeid.split("::", 1)[0]
        if path.startswith("tests/interop/"):
            item.add_marker(pytest.mark.interop)
            # pytest-xdist (--dist loadgroup): the browser tests run one after another on one
            # worker, the rest of the suite on the other(s) meanwhile.
            item.add_marker(pytest.mark.xdist_group("browser"))
        elif path.startswith(_REALTIME_MODULES):
            item.add_marker(pytest.mark.realtime)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.failed:
        _outcomes[report.nodeid] = "failed"
    elif report.when == "call" and report.nodeid not in _outcomes:
        _outcomes[report.nodeid] = "skipped" if report.skipped else "passed"
    elif report.skipped and report.nodeid not in _outcomes:
        _outcomes[report.nodeid] = "skipped"
    _retriable[report.nodeid] = any(m in report.keywords for m in RETRIABLE_MARKERS)


def _write_outcomes() -> None:
    """For scripts/pytest-rerun.sh: every test's outcome and whether it may be retried."""
    path = os.environ.get("P2PML_OUTCOMES_FILE")
    if path:
        tests = {
            nodeid: {"outcome": o, "retriable": _retriable.get(nodeid, False)}
            for nodeid, o in _outcomes.items()
        }
        Path(path).write_text(json.dumps(tests), encoding="utf-8")


# -- unhandled exceptions -------------------------------------------------------------------------
# asyncio reports an exception nobody retrieved ("Task exception was never retrieved", a callback
# that raised, ...) through the loop's exception handler and then carries on: a bug that only
# shows in the logs. Every test of the suite fails when its loop reported one.
_unhandled: list[dict[str, Any]] = []
_default_handler = asyncio.BaseEventLoop.default_exception_handler


def _recording_handler(self: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    _unhandled.append(context)
    _default_handler(self, context)  # type: ignore[arg-type]


asyncio.BaseEventLoop.default_exception_handler = _recording_handler  # type: ignore[method-assign]


def _describe(context: dict[str, Any]) -> str:
    exc = context.get("exception")
    where = context.get("task") or context.get("future") or context.get("handle") or ""
    return f"{context.get('message')}: {exc!r} {where}"


@pytest.fixture(autouse=True)
def no_unhandled_exceptions() -> Iterator[None]:
    _unhandled.clear()
    yield
    gc.collect()  # a task that died with an exception reports it when it is collected
    found = list(_unhandled)
    _unhandled.clear()
    if found:
        pytest.fail(
            "the event loop reported unhandled exceptions:\n"
            + "\n".join(_describe(c) for c in found),
            pytrace=False,
        )
