"""The harness's shipped files and where it looks for things (no browser, no npm run)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from p2pml_py.base.errors import HarnessError, LocalProtocolError
from p2pml_py.harness import install, paths
from p2pml_py.harness.browser import PlayerConfig
from p2pml_py.harness.pages import PLAYER_VERSIONS, page_name

ROOT = Path(__file__).resolve().parents[2]
ENV = ("P2PML_INTEROP_DIR", "P2PML_HARNESS_CACHE", "P2PML_INTEROP_CACHE", "XDG_CACHE_HOME")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def shipped_lock() -> dict[str, object]:
    data: dict[str, object] = json.loads(paths.lock_file().read_text())
    return data


def test_every_page_and_its_modules_are_shipped() -> None:
    for player, versions in PLAYER_VERSIONS.items():
        for version in versions:
            page = paths.pages_dir() / page_name(player, version)
            text = page.read_text()
            assert '<script src="stats.js">' in text
            module = "player.mjs" if player == "hlsjs" else "shaka.mjs"
            assert f'from "./{module}"' in text
    for name in ("player.mjs", "shaka.mjs", "common.mjs", "stats.js"):
        assert (paths.pages_dir() / name).is_file()
    assert (paths.node_scripts_dir() / "tracker-server.mjs").is_file()


def test_package_data_globs_cover_the_web_folder() -> None:
    # setup.cfg ships web/*.json, web/pages/*, web/node/*: nothing may sit deeper.
    for path in paths.web_dir().rglob("*"):
        if path.is_file():
            relative = path.relative_to(paths.web_dir())
            assert len(relative.parts) <= 2, relative
            assert relative.parts[0] in ("pages", "node") or relative.suffix == ".json", relative


def test_lock_pins_shaka_and_its_core() -> None:
    packages = {p.alias: p for p in install.locked_packages(shipped_lock())}
    assert str(packages["shaka-player"]) == "shaka-player 4.16.50"
    assert packages["shaka-player"].version.startswith("4.16.")
    assert str(packages["pml-shaka-2.2"]) == "p2p-media-loader-shaka 2.2.2 (as pml-shaka-2.2)"
    assert str(packages["pml-core-2.2"]) == "p2p-media-loader-core 2.2.2 (as pml-core-2.2)"
    lock = shipped_lock()
    entries = lock["packages"]
    assert isinstance(entries, dict)
    # The Shaka integration's own core dependency resolves to the same 2.2.2 the page maps.
    assert entries["node_modules/pml-shaka-2.2"]["dependencies"] == {
        "p2p-media-loader-core": "2.2.2"
    }
    assert entries["node_modules/p2p-media-loader-core"]["version"] == "2.2.2"
    # package.json and the lock agree (npm ci refuses otherwise).
    manifest = json.loads((paths.web_dir() / "package.json").read_text())
    assert manifest["dependencies"] == entries[""]["dependencies"]


def test_locked_packages_rejects_a_foreign_file() -> None:
    with pytest.raises(HarnessError, match=r"package-lock\.json"):
        install.locked_packages({"name": "x"})


def test_checkout_links_interop_to_the_shipped_files() -> None:
    interop = paths.checkout_interop_dir()
    assert interop == ROOT / "interop"
    for name in ("package.json", "package-lock.json"):
        assert (interop / name).resolve() == paths.web_dir() / name
    tracker = interop / "node" / "tracker-server.mjs"
    assert tracker.resolve() == paths.node_scripts_dir() / "tracker-server.mjs"


def test_node_root_order(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    digest = paths.lock_digest()[:12]
    clean_env.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert paths.harness_cache_root() == tmp_path / "xdg" / "p2pml-py" / "harness"
    assert paths.npm_dir() == tmp_path / "xdg" / "p2pml-py" / "harness" / f"npm-{digest}"
    # In this checkout interop/node_modules exists (interop/setup.sh): it is used...
    if (ROOT / "interop" / "node_modules").is_dir():
        assert paths.node_root() == ROOT / "interop"
    # ...unless a harness cache is named explicitly,
    clean_env.setenv("P2PML_HARNESS_CACHE", str(tmp_path / "cache"))
    assert paths.node_modules_dir() == tmp_path / "cache" / f"npm-{digest}" / "node_modules"
    # or a directory of one's own.
    clean_env.setenv("P2PML_INTEROP_DIR", str(tmp_path / "mine"))
    assert paths.node_modules_dir() == tmp_path / "mine" / "node_modules"


def test_cache_dir_order(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert paths.cache_dir() == ROOT / "interop" / ".cache"
    clean_env.setenv("P2PML_INTEROP_CACHE", str(tmp_path))
    assert paths.cache_dir() == tmp_path


def test_is_installed_needs_the_stamp_of_this_lock(tmp_path: Path) -> None:
    packages = install.locked_packages(shipped_lock())
    digest = paths.lock_digest()
    modules = tmp_path / "node_modules"
    for package in packages:
        (modules / package.alias).mkdir(parents=True)
        (modules / package.alias / "package.json").write_text("{}")
    assert not install.is_installed(tmp_path, digest, packages)  # no stamp: npm ci did not finish
    (modules / install.STAMP).write_text("0" * 64 + "\n")
    assert not install.is_installed(tmp_path, digest, packages)  # another lock's packages
    (modules / install.STAMP).write_text(digest + "\n")
    assert install.is_installed(tmp_path, digest, packages)
    (modules / "shaka-player" / "package.json").unlink()
    assert not install.is_installed(tmp_path, digest, packages)


def test_missing_chromium_names_the_fix(tmp_path: Path) -> None:
    reason = paths.missing_chromium(str(tmp_path / "chromium"))
    assert reason is not None
    assert reason.startswith(f"no Chromium at {tmp_path / 'chromium'}: ")
    assert "apt-get install chromium" in reason and "P2PML_CHROMIUM" in reason
    binary = tmp_path / "chrome"
    binary.write_text("#!/bin/sh\n")
    assert paths.missing_chromium(str(binary)) is not None  # not executable
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    assert paths.missing_chromium(str(binary)) is None
    assert paths.missing_chromium(str(tmp_path)) is not None  # a directory


def test_check_system_reports_a_missing_chromium(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("P2PML_CHROMIUM", str(tmp_path / "none"))
    problems = install.check_system(need_stream_tools=False)
    [chromium] = [p for p in problems if p.fatal and "Chromium" in p.what]
    assert "apt-get install chromium" in chromium.fix


def test_player_config_query_and_checks() -> None:
    config = PlayerConfig(
        version="2.2",
        manifest_url="http://127.0.0.1:1/vod/c/master.m3u8",
        trackers=("ws://127.0.0.1:2",),
        player="shaka",
        shaka={"manifest.defaultPresentationDelay": 12},
    )
    assert "shaka.manifest.defaultPresentationDelay=12" in config.query()
    assert config.label == "shaka 2.2.2"
    with pytest.raises(LocalProtocolError, match=r"no shaka page for p2p-media-loader '2\.3'"):
        PlayerConfig(version="2.3", manifest_url="u", trackers=(), player="shaka")
    with pytest.raises(LocalProtocolError, match="hls options given for a shaka page"):
        PlayerConfig(version="2.2", manifest_url="u", trackers=(), player="shaka", hls={"a": 1})
    with pytest.raises(LocalProtocolError, match="unknown player 'dash'"):
        page_name("dash", "2.2")
    hlsjs = PlayerConfig(version="2.3", manifest_url="u", trackers=())
    assert hlsjs.label == "2.3.1" and "shaka." not in hlsjs.query()


def test_cli_hands_harness_to_the_harness_module() -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "p2pml_py", "harness", "setup", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "usage: p2pml-py harness setup" in result.stdout
    assert "--cache DIR" in result.stdout
