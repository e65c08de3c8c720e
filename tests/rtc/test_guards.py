"""The version guards of the aiortc/aioice patches: on an unchecked version, or with a name a patch
relies on missing, speedups, addresses and tuning leave aiortc/aioice as they are, log exactly one
warning that says why, never raise -- and data still flows on plain aiortc."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aioice
import aioice.ice
import aiortc
import aiortc.rtcdtlstransport
import aiortc.rtcsctptransport
import pytest

from p2pml_py.rtc.aiortc_backend import addresses, speedups, tuning, versions
from p2pml_py.rtc.aiortc_backend.speedups import aes_gcm_first

from .helpers import linked, send_all

ROOT = Path(__file__).resolve().parents[2]

#: Everything the speedups may replace.
PATCHED = (
    aiortc.rtcsctptransport.RTCSctpTransport,
    aiortc.rtcsctptransport.InboundStream,
    aiortc.rtcdtlstransport.RTCDtlsTransport,
    aiortc.rtcdtlstransport.RTCCertificate,
    aioice.ice.Connection,
    aioice.ice.StunProtocol,
)


def _snapshot() -> list[dict[str, Any]]:
    return [dict(vars(owner)) for owner in PATCHED] + [{"asyncio": aioice.ice.asyncio}]


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.fixture
def clean() -> Iterator[None]:
    speedups.uninstall()
    yield
    speedups.uninstall()


# -- speedups ----------------------------------------------------------------------------------


@pytest.mark.usefixtures("clean")
async def test_unchecked_aiortc_version_falls_back_to_plain_aiortc(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(aiortc, "__version__", "1.15.2")
    before = _snapshot()
    caplog.set_level(logging.INFO)
    assert speedups.install() == ()
    assert speedups.installed() == ()
    (warning,) = _warnings(caplog)
    assert "aiortc 1.15.2 is not a checked version" in warning
    assert _snapshot() == before
    async with linked() as (a, b):
        await send_all(a, b, os.urandom(300_000))
        await send_all(b, a, os.urandom(70_000))


@pytest.mark.usefixtures("clean")
async def test_a_missing_private_attribute_falls_back_to_plain_aiortc(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # fast_data_path's gap-block handling calls it; aiortc itself only after a loss.
    monkeypatch.delattr(aiortc.rtcsctptransport.RTCSctpTransport, "_maybe_abandon")
    before = _snapshot()
    caplog.set_level(logging.INFO)
    assert speedups.check() is not None
    assert speedups.install() == ()
    (warning,) = _warnings(caplog)
    assert "fast_data_path" in warning and "RTCSctpTransport._maybe_abandon is missing" in warning
    assert _snapshot() == before
    async with linked() as (a, b):
        await send_all(a, b, os.urandom(300_000))


@pytest.mark.usefixtures("clean")
def test_a_failure_while_installing_undoes_every_replacement(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> bool:
        raise OSError("no /proc here")

    monkeypatch.setattr(aes_gcm_first, "_cpu_has_aes", broken)  # read while installing
    before = _snapshot()
    assert speedups.install() == ()
    (warning,) = _warnings(caplog)
    assert "no /proc here" in warning
    assert _snapshot() == before


def _run(script: str) -> subprocess.CompletedProcess[str]:
    prologue = (
        "import logging, sys\n"
        "logging.basicConfig(level=logging.INFO, stream=sys.stderr,"
        " format='%(levelname)s %(name)s %(message)s')\n"
    )
    return subprocess.run(
        [sys.executable, "-c", prologue + script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )


def _stderr_warnings(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert result.returncode == 0, result.stderr
    return [line for line in result.stderr.splitlines() if line.startswith("WARNING")]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("import aiortc; aiortc.__version__ = '0.1'", "aiortc 0.1 is not a checked version"),
        # a rename in aiortc: importing the package must not read the name
        (
            "import aiortc.rtcsctptransport as m; del m.DataChunk",
            "aiortc.rtcsctptransport.DataChunk is missing",
        ),
    ],
)
def test_fresh_process_imports_and_installs_speedups_with_one_warning(
    change: str, reason: str
) -> None:
    result = _run(
        f"{change}\n"
        "import p2pml_py.rtc.aiortc_backend.speedups as speedups\n"
        "assert speedups.install() == (), speedups.installed()\n"
        "assert speedups.installed() == ()\n"
    )
    (warning,) = _stderr_warnings(result)
    assert "speedups not installed" in warning and reason in warning


# -- addresses ---------------------------------------------------------------------------------


@pytest.fixture
def fresh_addresses() -> Iterator[None]:
    addresses.uninstall()
    yield
    addresses.uninstall()


@pytest.mark.usefixtures("fresh_addresses")
def test_addresses_on_an_unchecked_aioice_leave_aioice_in_charge(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(aioice, "__version__", "0.14.0")
    original = aioice.ice.get_host_addresses
    for _ in range(3):  # one warning per process, not per connection
        with addresses.gathering_addresses(("127.0.0.1",)):
            assert aioice.ice.get_host_addresses is original
            assert "127.0.0.1" not in aioice.ice.get_host_addresses(True, True)
    (warning,) = _warnings(caplog)
    assert "aioice 0.14.0 is not a checked version" in warning
    assert not addresses.installed()


@pytest.mark.usefixtures("fresh_addresses")
def test_addresses_without_get_host_addresses_do_not_raise(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delattr(aioice.ice, "get_host_addresses")
    with addresses.gathering_addresses(("127.0.0.1",)):
        assert not hasattr(aioice.ice, "get_host_addresses")
    (warning,) = _warnings(caplog)
    assert "aioice.ice.get_host_addresses is missing" in warning


@pytest.mark.usefixtures("fresh_addresses")
async def test_addresses_checked_again_after_uninstall_and_data_flows() -> None:
    with addresses.gathering_addresses(("127.0.0.1",)):
        assert aioice.ice.get_host_addresses(True, False) == ["127.0.0.1"]
    assert addresses.installed()
    async with linked() as (a, b):  # gathers on 127.0.0.1 only: through the wrapper
        await send_all(a, b, os.urandom(100_000))


def test_fresh_process_with_unchecked_aioice_addresses_one_warning() -> None:
    result = _run(
        "import aioice; aioice.__version__ = '0.1'\n"
        "import aioice.ice\n"
        "from p2pml_py.rtc.aiortc_backend import addresses\n"
        "for _ in range(2):\n"
        "    with addresses.gathering_addresses(('127.0.0.1',)):\n"
        "        assert '127.0.0.1' not in aioice.ice.get_host_addresses(True, True)\n"
        "assert not addresses.installed()\n"
    )
    (warning,) = _stderr_warnings(result)
    assert "aioice 0.1 is not a checked version" in warning


# -- tuning: the UDP buffer patch ----------------------------------------------------------------


@pytest.fixture
def restore_buffers() -> Iterator[None]:
    tuning.reset_udp_buffer_sizes()
    yield
    tuning.reset_udp_buffer_sizes()


@pytest.mark.usefixtures("restore_buffers")
async def test_udp_buffers_on_an_unchecked_aioice_leave_aioice_alone_and_data_flows(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Only this patch's row: the addresses the loopback links need stay chosen.
    monkeypatch.setitem(versions.CHECKED, "udp_buffers", {"aioice": ("0.1",)})
    original = vars(aioice.ice.Connection)["gather_candidates"]
    assert not tuning.set_udp_buffer_sizes(3 * 1024 * 1024, 3 * 1024 * 1024)
    (warning,) = _warnings(caplog)
    assert "UDP buffer sizes left" in warning and "aioice 0.13" in warning
    assert vars(aioice.ice.Connection)["gather_candidates"] is original
    async with linked() as (a, b):
        await send_all(a, b, os.urandom(300_000))


@pytest.mark.usefixtures("restore_buffers")
def test_udp_buffers_without_gather_candidates_do_not_raise(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delattr(aioice.ice.Connection, "gather_candidates")
    assert not tuning.set_udp_buffer_sizes()
    (warning,) = _warnings(caplog)
    assert "aioice.ice.Connection.gather_candidates is missing" in warning
    assert "gather_candidates" not in vars(aioice.ice.Connection)


def test_fresh_process_with_unchecked_aioice_tuning_one_warning() -> None:
    result = _run(
        "import aioice; aioice.__version__ = '0.1'\n"
        "import aioice.ice\n"
        "from p2pml_py.rtc.aiortc_backend import tuning\n"
        "original = aioice.ice.Connection.gather_candidates\n"
        "assert not tuning.set_udp_buffer_sizes()\n"
        "assert aioice.ice.Connection.gather_candidates is original\n"
    )
    (warning,) = _stderr_warnings(result)
    assert "aioice 0.1 is not a checked version" in warning
