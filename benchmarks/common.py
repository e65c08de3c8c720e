"""What the benchmark processes share: deterministic segment bytes, process counters, the
speedup options of the Python seeder and receivers, and CPU pinning."""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import resource

MIB = 1024 * 1024


def segment_bytes(segment_id: int, size: int) -> bytes:
    """The same pseudo-random bytes in every process, so receivers can check what arrived."""
    return random.Random(segment_id).randbytes(size)


def segment_digest(segment_id: int, size: int) -> str:
    return hashlib.sha256(segment_bytes(segment_id, size)).hexdigest()


def add_speedup_options(parser: argparse.ArgumentParser) -> None:
    """``--speedups`` and ``--no-gc-tuning``, for :func:`apply_speedups`."""
    parser.add_argument("--speedups", default="", help="comma-separated p2pml_py.rtc.speedups")
    parser.add_argument(
        "--no-gc-tuning", action="store_true", help="with --speedups: keep the default GC"
    )


def apply_speedups(args: argparse.Namespace) -> None:
    """With ``--speedups``: install those patches and warm up as the CLI's ``tune_process``
    does (one loopback connection, then the GC settings unless ``--no-gc-tuning``)."""
    if not args.speedups:
        return
    from p2pml_py.rtc import speedups, tuning

    speedups.install(tuple(args.speedups.split(",")))
    tuning.warm_up()
    if not args.no_gc_tuning:
        tuning.tune_gc()


#: The most a receiver may drop (``--receiver-loss`` / ``--loss``): beyond it nothing arrives.
MAX_LOSS = 0.5


def loss_share(text: str) -> float:
    """argparse type of a share of datagrams to drop, 0 to :data:`MAX_LOSS`."""
    value = float(text)
    if not 0.0 <= value <= MAX_LOSS:
        raise argparse.ArgumentTypeError(f"must be between 0 and {MAX_LOSS}, not {text}")
    return value


def cpu_seconds() -> float:
    """User + system CPU time of this process (not its children)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def system_cpu_seconds() -> float:
    """System (kernel) CPU time of this process: on loopback, sendto() also runs the receive path."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_stime


def memory_kib() -> dict[str, int]:
    """Current (VmRSS) and peak (VmHWM) resident memory of this process, KiB."""
    values: dict[str, int] = {}
    with open(f"/proc/{os.getpid()}/status", encoding="ascii") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return {"rss_kib": values.get("VmRSS", 0), "peak_kib": values.get("VmHWM", 0)}


def reset_peak_memory() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to clear_refs)."""
    try:
        with open(f"/proc/{os.getpid()}/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
    except OSError:
        return False
    return True


def memory_columns(
    base_kib: int, idle_kib: int, after_first_kib: int, peak_kib: int, connected: int
) -> dict[str, float | int | None]:
    """The sender's memory columns of a result row, from its RSS readings (KiB)."""
    return {
        "rss_base_kib": base_kib,
        "rss_idle_kib": idle_kib,
        "idle_kib_per_conn": round((idle_kib - base_kib) / connected, 1) if connected else None,
        # The first connection also pays for lazy imports and caches; the marginal cost of one
        # more idle connection is measured from there.
        "idle_kib_per_extra_conn": round((idle_kib - after_first_kib) / (connected - 1), 1)
        if connected > 1
        else None,
        "peak_kib": peak_kib,
        "peak_kib_per_conn": round((peak_kib - base_kib) / connected, 1) if connected else None,
    }


# -- CPU pinning ----------------------------------------------------------------------------------
#: CPUs of the sender (seeder, native sender) and of every receiver process, when pinning is on:
#: the sender gets one core to itself, which is what "MB/s from one seeder core" means, and the
#: scheduler cannot move receivers onto it (on 2 cores that moved the numbers by +-30 %).
SENDER_CPUS: frozenset[int] = frozenset()
RECEIVER_CPUS: frozenset[int] = frozenset()


def plan_pinning(enabled: bool) -> str:
    """Set :data:`SENDER_CPUS` / :data:`RECEIVER_CPUS`; returns a line for the report."""
    global SENDER_CPUS, RECEIVER_CPUS
    available = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if not enabled or len(available) < 2:
        SENDER_CPUS = RECEIVER_CPUS = frozenset()
        return "not pinned" if enabled is False else "not pinned (fewer than 2 CPUs)"
    SENDER_CPUS = frozenset(available[:1])
    RECEIVER_CPUS = frozenset(available[1:])
    return f"sender on CPU {available[0]}, receivers on CPU(s) {','.join(map(str, available[1:]))}"


def _affinity(cpus: frozenset[int]) -> dict[str, object]:
    """``create_subprocess_exec`` keyword arguments that start the process on ``cpus``."""
    if not cpus:
        return {}
    chosen = set(cpus)
    return {"preexec_fn": lambda: os.sched_setaffinity(0, chosen)}


def sender_affinity() -> dict[str, object]:
    return _affinity(SENDER_CPUS)


def receiver_affinity() -> dict[str, object]:
    return _affinity(RECEIVER_CPUS)


def receiver_cpus_env() -> dict[str, str]:
    """For the native sender, which starts its receiver workers itself (with ``taskset``)."""
    if not RECEIVER_CPUS:
        return {}
    return {"P2PML_BENCH_RECEIVER_CPUS": ",".join(map(str, sorted(RECEIVER_CPUS)))}
