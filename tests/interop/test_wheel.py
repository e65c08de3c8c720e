"""The harness from a wheel, the way a team testing its own player uses it (issue 19).

Builds the wheel from a copy of the source tree (``pip wheel``, the pinned build backend from
``interop/.cache/wheelhouse`` that ``interop/setup.sh`` downloads, so it builds with no network),
installs it into a fresh venv outside the checkout, runs ``p2pml-py harness setup --cache`` there
(``npm ci --prefer-offline``: npm's cache, filled by ``interop/setup.sh``) and runs pytest in a
folder of its own with ``-p p2pml_py.harness.pytest_plugin`` on a two-page swarm test.

The venv gets p2pml-py's dependencies (aiortc, aiohttp, Playwright, pytest, ...) from the
project's venv through a ``.pth`` line naming its site-packages: installing them from PyPI would
need the network, which tests never have. A ``.pth`` path entry is appended to ``sys.path`` after
the venv's own site-packages and its ``.pth`` files are not run, so the checkout's editable
install of p2pml_py stays invisible and ``import p2pml_py`` finds the wheel's copy (checked).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from p2pml_py.testing.stream import TestStream

ROOT = Path(__file__).resolve().parents[2]
WHEELHOUSE = ROOT / "interop" / ".cache" / "wheelhouse"
#: Not copied: environments, installed packages, caches, build output.
_IGNORE = shutil.ignore_patterns(
    ".git",
    ".venv",
    "node_modules",
    ".cache",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".hypothesis",
    "artifacts",
    "bench-results",
)

TWO_PAGES = """
import asyncio

import pytest


@pytest.mark.asyncio
async def test_two_pages_share_segments(interop, embedded_tracker):
    first = await interop.open_page("2.3", [embedded_tracker.url])
    await first.wait_playing(2.0, timeout=30)
    second = await interop.open_page("2.3", [embedded_tracker.url])
    await asyncio.gather(first.wait_playing(12.0, timeout=60), second.wait_playing(12.0, timeout=60))
    stats = [await first.stats(), await second.stats()]
    for s in stats:
        assert s.fatal_errors == () and s.stalls == 0, s
        assert interop.check_p2p_bytes(s) == []
    assert stats[1].p2p_bytes > 0, stats[1]
    print("P2P bytes of the second page:", stats[1].p2p_bytes)
"""


def run(args: list[str | Path], cwd: Path, env: dict[str, str], timeout: float) -> str:
    result = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, (
        f"{' '.join(map(str, args))} exited {result.returncode}:\n{output}"
    )
    return output


@pytest.mark.timeout(600)  # build, venv, npm ci and a nested pytest run, one after another
def test_wheel_harness_in_a_fresh_venv(tmp_path: Path, interop_stream: TestStream) -> None:
    backend = sorted(p.name for p in WHEELHOUSE.glob("*.whl"))
    if not any(n.startswith("setuptools-") for n in backend) or not any(
        n.startswith("wheel-") for n in backend
    ):
        pytest.fail(f"no build backend in {WHEELHOUSE}: run interop/setup.sh (needs the network)")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("P2PML_", "PYTEST_", "PYTHON")) and k != "VIRTUAL_ENV"
    }

    # 1. the wheel, from a copy of the tree (pip builds in place: nothing lands in the checkout)
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=_IGNORE, symlinks=True)
    dist = tmp_path / "dist"
    pip: list[str | Path] = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    build: list[str | Path] = [
        *pip,
        "wheel",
        "--no-deps",
        "--no-index",
        "--find-links",
        WHEELHOUSE,
        "-w",
        dist,
    ]
    run([*build, source], tmp_path, env, timeout=300)
    [wheel] = dist.glob("p2pml_py-*.whl")

    # 2. a fresh venv outside the checkout with only the wheel installed
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv], tmp_path, env, timeout=120)
    python = venv / "bin" / "python"
    run([*pip, "--python", python, "install", "--no-deps", "--no-index", wheel], tmp_path, env, 300)
    site = Path(
        run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            tmp_path,
            env,
            60,
        ).strip()
    )
    (site / "p2pml-test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    where = run(
        [
            python,
            "-c",
            "import p2pml_py.harness.paths as p; print(p.__file__, p.checkout_interop_dir())",
        ],
        tmp_path,
        env,
        60,
    )
    assert where.startswith(str(site / "p2pml_py")), where
    assert where.strip().endswith(" None"), where  # not a checkout: no interop/ to fall back on

    # 3. the setup command, twice (the second run installs nothing)
    cache = tmp_path / "harness-cache"
    setup: list[str | Path] = [venv / "bin" / "p2pml-py", "harness", "setup", "--cache", cache]
    first = run(setup, tmp_path, env, timeout=900)
    assert "installing" in first and "shaka-player 4.16.50" in first, first
    assert "p2p-media-loader-core 2.2.2 (as pml-core-2.2)" in first, first
    second = run(setup, tmp_path, env, timeout=120)
    assert "already installed" in second and "running: npm" not in second, second

    # 4. a project of its own, using the pytest plugin the README advertises
    project = tmp_path / "my-player-tests"
    project.mkdir()
    (project / "pytest.ini").write_text("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    (project / "test_two_pages.py").write_text(TWO_PAGES)
    test_env = {
        **env,
        "P2PML_HARNESS_CACHE": str(cache),
        "P2PML_INTEROP_STREAM": str(interop_stream.root),
    }
    if "P2PML_CHROMIUM" in os.environ:
        test_env["P2PML_CHROMIUM"] = os.environ["P2PML_CHROMIUM"]
    pytest_args: list[str | Path] = [python, "-m", "pytest", "-p", "p2pml_py.harness.pytest_plugin"]
    output = run(
        [*pytest_args, "-p", "no:cacheprovider", "-q", "-s", "test_two_pages.py"],
        project,
        test_env,
        timeout=300,
    )
    assert "1 passed" in output, output
    assert "P2P bytes of the second page:" in output, output
