"""p2pml_py.rtc.aiortc_backend.versions: the one table of checked aiortc/aioice versions agrees
with the ``fast`` extra's exact pins and with constraints.txt, and its check reads the version
the package reports."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import aioice
import aiortc
import pytest

from p2pml_py.rtc.aiortc_backend import versions

ROOT = Path(__file__).resolve().parents[2]


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(lines: list[str]) -> dict[str, str]:
    """``name==version`` lines (comments and blanks skipped) by normalized name."""
    pins: dict[str, str] = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, separator, version = line.partition("==")
        assert separator, f"not an exact pin: {line!r}"
        pins[_normalized(name.strip())] = version.strip()
    return pins


def _setup_cfg() -> configparser.ConfigParser:
    config = configparser.ConfigParser()
    assert config.read(ROOT / "setup.cfg")
    return config


def _fast_pins() -> dict[str, str]:
    return _pins(_setup_cfg()["options.extras_require"]["fast"].splitlines())


def test_fast_extra_pins_exactly_the_checked_versions_and_the_constraints() -> None:
    fast = _fast_pins()
    constraints = _pins((ROOT / "constraints.txt").read_text().splitlines())
    assert {"aiortc", "aioice", "uvloop"} <= set(fast)
    for name, version in fast.items():
        assert constraints.get(name) == version, f"{name}: fast pins {version}"
    for patch_set, packages in versions.CHECKED.items():
        for package, checked in packages.items():
            assert package in fast, f"{patch_set} patches {package}, which fast does not pin"
            assert versions.major_minor(fast[package]) in checked, (patch_set, package)
    # The speedups are checked against one version of each: the pinned one.
    assert {
        package: (versions.major_minor(fast[package]),) for package in versions.CHECKED["speedups"]
    } == versions.CHECKED["speedups"]


def test_install_requires_stays_loose() -> None:
    requirements = _setup_cfg()["options"]["install_requires"].split()
    assert requirements and not [r for r in requirements if "==" in r]


def test_this_environment_runs_the_pinned_versions() -> None:
    """So the speedup tests exercise the patches, not the fallback."""
    fast = _fast_pins()
    for package in ("aiortc", "aioice"):
        assert versions.installed_version(package) == fast[package]
    for patch_set in versions.CHECKED:
        assert versions.unsupported(patch_set) is None


def test_unsupported_names_the_package_and_the_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aiortc, "__version__", "1.17.0")
    reason = versions.unsupported("speedups")
    assert reason is not None and "aiortc 1.17.0" in reason and "1.16" in reason
    assert versions.unsupported("udp_buffers") is None  # aioice only
    monkeypatch.setattr(aioice, "__version__", "0.13.9")  # same major.minor: still checked
    assert versions.unsupported("udp_buffers") is None
    monkeypatch.delattr(aioice, "__version__")  # then the distribution's metadata tells
    assert versions.installed_version("aioice") == _fast_pins()["aioice"]
    assert versions.installed_version("no_such_package_here") == ""
