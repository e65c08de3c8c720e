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


class InstructionCounter:
    """Instructions this process retires, user and kernel counted apart (``perf_event_open``).

    Unlike CPU seconds they do not change with the host's speed: on this VM the same work takes
    up to 2x the time from one minute to the next, the same instructions. ``read()`` gives
    ``{"user": N, "kernel": N}``, or ``{}`` where the kernel or the VM exposes no hardware
    counters (``/proc/sys/kernel/perf_event_paranoid``, containers) -- the columns then say
    ``-``. Threads started after the counter count too (``inherit``).
    """

    _SYSCALL = {"x86_64": 298, "aarch64": 241}
    _TYPE_HARDWARE = 0
    _INSTRUCTIONS = 1
    _DISABLED, _INHERIT, _EXCLUDE_USER, _EXCLUDE_KERNEL, _EXCLUDE_HV = 1, 2, 16, 32, 64

    def __init__(self) -> None:
        self.fds: dict[str, int] = {}
        self.error = ""
        try:
            self.fds = {
                "user": self._open(self._EXCLUDE_KERNEL | self._EXCLUDE_HV),
                "kernel": self._open(self._EXCLUDE_USER | self._EXCLUDE_HV),
            }
        except OSError as exc:
            self.close()
            self.error = f"no instruction counter: {exc}"

    def _open(self, exclude: int) -> int:
        import ctypes
        import platform
        import struct

        number = self._SYSCALL.get(platform.machine())
        if number is None:
            raise OSError(f"perf_event_open: unknown syscall number on {platform.machine()}")
        # struct perf_event_attr (PERF_ATTR_SIZE_VER5, 112 bytes): type, size, config, then
        # the flag bits at offset 40; everything else zero.
        attr = bytearray(112)
        struct.pack_into("=IIQ", attr, 0, self._TYPE_HARDWARE, len(attr), self._INSTRUCTIONS)
        struct.pack_into("=Q", attr, 40, self._INHERIT | exclude)
        buffer = (ctypes.c_char * len(attr)).from_buffer(attr)
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        fd = int(
            libc.syscall(
                ctypes.c_long(number),
                buffer,
                ctypes.c_int(0),  # this process
                ctypes.c_int(-1),  # any CPU
                ctypes.c_int(-1),  # no group
                ctypes.c_ulong(0),
            )
        )
        if fd < 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"perf_event_open: {os.strerror(errno)}")
        return fd

    def read(self) -> dict[str, int]:
        return {name: int.from_bytes(os.read(fd, 8), "little") for name, fd in self.fds.items()}

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds = {}


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
