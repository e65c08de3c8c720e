"""The opt-in memory report of a worker (``P2PML_MEMORY_PROFILE``)."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from p2pml_py.apps.superpeer import memprofile


def test_off_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(memprofile.ENV, raising=False)
    assert memprofile.from_environment(0) is None


async def test_the_report_names_what_grew_since_the_baseline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(memprofile.ENV, str(tmp_path / "prof"))
    monkeypatch.setenv(memprofile.BASELINE_ENV, "0")
    profile = memprofile.from_environment(3)
    assert profile is not None
    try:
        kept = []
        assert "no baseline yet" in profile.report()
        await profile.take_baseline()
        kept.append([bytearray(1000) for _ in range(2000)])  # ~2 MB allocated here
        cycle: list[object] = [bytearray(3_000_000)]  # 3 MB of cyclic garbage: not growth
        cycle.append(cycle)
        del cycle
        profile.write()
    finally:
        tracemalloc.stop()
    text = (tmp_path / "prof" / "worker-3-memory.txt").read_text()
    assert text.startswith("after ") and "baseline at 0 s" in text
    assert "full collections after closed connections: {'collections'" in text
    growth = [line for line in text.splitlines() if line.startswith("+")]
    first = growth[0]  # the largest growth comes first: the kept list, not the collected cycle
    assert 1900 < float(first.split(" KB")[0]) < 2900
    assert "test_memprofile.py" in text
    info = memprofile.malloc_info()
    assert info is None or info["arena"] >= info["free"] >= 0
