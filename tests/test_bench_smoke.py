"""The benchmark machinery (benchmarks/) at tiny scale: real seeder and receiver processes on
127.0.0.1 produce numbers. No speed is asserted -- only that the measurements exist and the data
arrived intact."""

from __future__ import annotations

import pytest

from benchmarks.common import InstructionCounter, instruction_columns, instruction_counters
from benchmarks.run import VARIANTS, Options, format_table, python_scenario


def _options() -> Options:
    return Options(
        receivers=(2,),
        duration=2.0,
        warmup=0.5,
        workers=2,
        segment_size=64 * 1024,
        segments=2,
        variants=(VARIANTS["tuned"],),
        chromium=False,
        reference=False,
        chromium_receivers=0,
        profile="",
    )


async def test_python_scenario_produces_numbers() -> None:
    result = await python_scenario(_options(), VARIANTS["tuned"], 2)
    assert result["connected"] == 2
    assert result["connect_errors"] == []
    assert result["aggregate_MBps"] > 0
    assert result["cpu_s_per_MB"] is not None and result["cpu_s_per_MB"] > 0
    assert result["segments_received"] > 0
    assert result["corrupt_segments"] == 0
    assert result["offer_to_open_ms"]["median"] > 0
    assert result["idle_kib_per_conn"] is not None
    assert result["peak_kib"] > 0
    assert result["max_gap_s"] is not None
    assert result["receiver_cpu_s_per_MB"] is not None and result["receiver_cpu_s_per_MB"] > 0
    assert result["seeder_sys_share"] is not None and 0 <= result["seeder_sys_share"] <= 1
    if not instruction_counters():  # this machine has hardware counters
        assert result["sender_Minstr_per_MB_user"] > result["sender_Minstr_per_MB_kernel"] > 0
    table = format_table([result])
    assert "| python tuned" in table and table.count("\n") == 2


async def test_node_receivers_scenario_produces_numbers() -> None:
    from benchmarks import native

    try:
        native._node()
    except native.NativeUnavailable as exc:
        pytest.skip(str(exc))
    result = await native.node_receivers_scenario(_options(), VARIANTS["tuned"], 2)
    assert result.get("error") is None
    assert result["connected"] == 2
    assert result["connect_errors"] == []
    assert result["download_failures"] == {}
    assert result["aggregate_MBps"] > 0
    assert result["segments_received"] > 0
    assert result["corrupt_segments"] == 0
    assert result["receiver_cpu_s_per_MB"] is not None and result["receiver_cpu_s_per_MB"] > 0
    table = format_table([result])
    assert "| python tuned -> node-datachannel receivers | 2 |" in table


async def test_lossy_receivers_still_get_every_segment_intact() -> None:
    import dataclasses

    options = dataclasses.replace(_options(), receiver_loss=0.02)
    result = await python_scenario(options, VARIANTS["tuned"], 2)
    assert result["receiver_loss"] == 0.02
    assert result["segments_received"] > 0 and result["corrupt_segments"] == 0
    assert "2 % loss" in format_table([result])


def test_receiver_loss_out_of_range_is_refused_naming_the_option(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from benchmarks import receiver, run

    with pytest.raises(SystemExit) as exit_info:
        run.main(["--receiver-loss", "0.7"])
    assert exit_info.value.code == 2
    assert "argument --receiver-loss: must be between 0 and 0.5" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        receiver.main(["--url", "http://127.0.0.1:1", "--loss", "-0.1"])
    assert exit_info.value.code == 2
    assert "argument --loss: must be between 0 and 0.5" in capsys.readouterr().err


async def test_native_reference_produces_numbers() -> None:
    from benchmarks import native

    try:
        native._node()
    except native.NativeUnavailable as exc:
        pytest.skip(str(exc))
    row = await native.native_reference(_options(), 2)
    assert row.get("error") is None
    assert row["connected"] == 2
    assert row["aggregate_MBps"] > 0
    assert row["cpu_s_per_MB"] is not None and row["cpu_s_per_MB"] > 0
    if not instruction_counters():  # counted in node's threads between its window lines
        assert row["sender_Minstr_per_MB_user"] > 0 and row["sender_Minstr_per_MB_kernel"] > 0
    assert "| native: node-datachannel" in format_table([row])


def test_instruction_counter_counts_this_process_user_and_kernel_apart() -> None:
    counter = InstructionCounter()
    if counter.error:  # no hardware counters here: nothing is read, the columns say "-"
        assert counter.read() == {}
        assert "perf_event_open" in counter.error
        return
    try:
        before = counter.read()
        total = 0
        for step in range(200_000):  # user-space work: at least one instruction per step
            total += step
        middle = counter.read()
        with open("/dev/zero", "rb") as zero:  # kernel work: 200 reads of 64 KiB
            for _ in range(200):
                zero.read(65536)
        after = counter.read()
    finally:
        counter.close()
    assert total == 199_999 * 200_000 // 2
    assert middle["user"] - before["user"] > 200_000
    assert after["kernel"] - middle["kernel"] > 200 * 1000
    assert counter.read() == {}  # closed


def test_instruction_counter_counts_every_thread_of_another_process() -> None:
    import subprocess
    import sys

    if instruction_counters():
        pytest.skip(instruction_counters())
    # Two threads of 2 million steps each, after a line that says both exist.
    code = (
        "import sys, threading\n"
        "go = threading.Event()\n"
        "def work():\n"
        "    go.wait(); sum(range(2_000_000))\n"
        "t = threading.Thread(target=work); t.start()\n"
        "print('ready', flush=True); sys.stdin.readline(); go.set(); work(); t.join()\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert child.stdout is not None and child.stdin is not None
    assert child.stdout.readline() == b"ready\n"
    counter = InstructionCounter(child.pid)
    try:
        assert counter.error == "" and len(counter.fds["user"]) == 2  # main thread + worker
        child.stdin.write(b"go\n")
        child.stdin.close()
        assert child.wait(timeout=60) == 0
        counted = counter.read()
    finally:
        counter.close()
    # Each thread's sum() retires well over one instruction per step.
    assert counted["user"] > 2 * 2_000_000


def test_instruction_columns_are_per_mb_and_missing_without_counters() -> None:
    start = {"user": 1_000_000, "kernel": 0}
    end = {"user": 61_000_000, "kernel": 5_000_000}
    assert instruction_columns(start, end, 2.0) == {
        "sender_Minstr_per_MB_user": 30.0,
        "sender_Minstr_per_MB_kernel": 2.5,
    }
    assert instruction_columns({}, {}, 2.0) == {
        "sender_Minstr_per_MB_user": None,
        "sender_Minstr_per_MB_kernel": None,
    }
    assert instruction_columns(start, end, 0.0)["sender_Minstr_per_MB_user"] is None


async def test_capacity_scenario_produces_numbers() -> None:
    """The capacity benchmark (benchmarks/capacity.py) at tiny scale: the Python seed (a real
    Swarm), 3 node-datachannel viewers in one worker, 64 KiB segments every second for 3 s."""
    from benchmarks import capacity, native

    try:
        native._node()
    except native.NativeUnavailable as exc:
        pytest.skip(str(exc))
    options = capacity.Options(
        segment_duration=1.0,
        duration=3.0,
        workers=1,
        segments=4,
        seeds=("python",),
        segment_size=64 * 1024,
        connect_timeout=20.0,
    )
    row = await capacity.scenario(options, "python", 350.0, 3)
    assert row["connected"] == 3
    assert row["seeder_connected"] == 3
    assert row["segments_completed"] > 0
    assert row["received_MB"] > 0
    assert row["corrupt"] == 0
    assert isinstance(row["heap_kib_per_conn"], float)
    assert row["offer_to_open_ms"]["p50"] is not None
    assert row["seeder_offer_to_open_ms"]["p50"] is not None
    assert row["seeder_cpu_pct"] is not None
    assert "| python | 350 | 3 | 3 |" in capacity.format_table([row])
