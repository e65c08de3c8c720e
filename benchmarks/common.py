"""What the benchmark processes share: deterministic segment bytes (the test origin's), process
counters, the speedup options of the Python seeder and receivers, and CPU pinning."""

from __future__ import annotations

import argparse
import hashlib
import os
import resource

from p2pml_py.testing.media import segment_bytes as origin_segment_bytes

MIB = 1024 * 1024


def segment_bytes(segment_id: int, size: int) -> bytes:
    """The same bytes in every process, so receivers can check what arrived: the test origin's
    segment ``segment_id`` of a rendition named ``bench``."""
    return origin_segment_bytes("bench", segment_id, size)


def segment_digest(segment_id: int, size: int) -> str:
    return hashlib.sha256(segment_bytes(segment_id, size)).hexdigest()


def add_speedup_options(parser: argparse.ArgumentParser) -> None:
    """``--speedups`` and ``--no-gc-tuning``, for :func:`apply_speedups`."""
    parser.add_argument(
        "--speedups", default="", help="comma-separated p2pml_py.rtc.aiortc_backend.speedups"
    )
    parser.add_argument(
        "--no-gc-tuning", action="store_true", help="with --speedups: keep the default GC"
    )


def apply_speedups(args: argparse.Namespace) -> None:
    """With ``--speedups``: install those patches and warm up as the CLI's ``tune_process``
    does (one loopback connection, then the GC settings unless ``--no-gc-tuning``)."""
    if not args.speedups:
        return
    from p2pml_py.rtc.aiortc_backend import speedups, tuning

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
    """Instructions a process retires, user and kernel counted apart (``perf_event_open``).

    Unlike CPU seconds they do not change with the host's speed: on this VM the same work takes
    up to 2x the time from one minute to the next, the same instructions. ``read()`` gives
    ``{"user": N, "kernel": N}``, or ``{}`` where the kernel or the VM exposes no hardware
    counters (``/proc/sys/kernel/perf_event_paranoid``, containers) -- the columns then say
    ``-``. ``pid`` 0 is this process; another process's threads are each counted from the
    moment the counter is made (node and libdatachannel run several). Threads started after
    the counter count too (``inherit``).
    """

    _SYSCALL = {"x86_64": 298, "aarch64": 241}
    _TYPE_HARDWARE = 0
    _INSTRUCTIONS = 1
    _INHERIT, _EXCLUDE_USER, _EXCLUDE_KERNEL, _EXCLUDE_HV = 2, 16, 32, 64
    #: PERF_FORMAT_TOTAL_TIME_ENABLED | _RUNNING: when more events want the CPU's few hardware
    #: counters than it has, the kernel takes turns, and a count is scaled by enabled/running.
    _READ_FORMAT = 1 | 2

    def __init__(self, pid: int = 0) -> None:
        self.fds: dict[str, list[int]] = {"user": [], "kernel": []}
        self.error = ""
        try:
            threads = sorted(int(t) for t in os.listdir(f"/proc/{pid}/task")) if pid else [0]
            for thread in threads:
                for name, exclude in (
                    ("user", self._EXCLUDE_KERNEL | self._EXCLUDE_HV),
                    ("kernel", self._EXCLUDE_USER | self._EXCLUDE_HV),
                ):
                    self.fds[name].append(self._open(thread, exclude))
        except OSError as exc:
            self.close()
            self.error = f"no instruction counter: {exc}"

    def _open(self, pid: int, exclude: int) -> int:
        import ctypes
        import platform
        import struct

        number = self._SYSCALL.get(platform.machine())
        if number is None:
            raise OSError(f"perf_event_open: unknown syscall number on {platform.machine()}")
        # struct perf_event_attr (PERF_ATTR_SIZE_VER5, 112 bytes): type, size, config, then
        # read_format at offset 32 and the flag bits at 40; everything else zero.
        attr = bytearray(112)
        struct.pack_into("=IIQ", attr, 0, self._TYPE_HARDWARE, len(attr), self._INSTRUCTIONS)
        struct.pack_into("=QQ", attr, 32, self._READ_FORMAT, self._INHERIT | exclude)
        buffer = (ctypes.c_char * len(attr)).from_buffer(attr)
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        fd = int(
            libc.syscall(
                ctypes.c_long(number),
                buffer,
                ctypes.c_int(pid),  # 0: this process
                ctypes.c_int(-1),  # any CPU
                ctypes.c_int(-1),  # no group
                ctypes.c_ulong(0),
            )
        )
        if fd < 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"perf_event_open: {os.strerror(errno)}")
        return fd

    @staticmethod
    def _count(fd: int) -> int:
        import struct

        value: int
        enabled: int
        running: int
        value, enabled, running = struct.unpack("=QQQ", os.read(fd, 24))
        return value if running >= enabled or not running else value * enabled // running

    def read(self) -> dict[str, int]:
        return {name: sum(map(self._count, fds)) for name, fds in self.fds.items() if fds}

    def close(self) -> None:
        for fds in self.fds.values():
            for fd in fds:
                os.close(fd)
        self.fds = {}

    def __del__(self) -> None:
        self.close()


def instruction_counters() -> str:
    """ "" where this machine counts instructions (:class:`InstructionCounter`), else why not."""
    counter = InstructionCounter()
    counter.close()
    return counter.error


def instruction_columns(
    start: dict[str, int], end: dict[str, int], mb: float
) -> dict[str, float | None]:
    """Millions of instructions the sender retired per MB in the window, user and kernel apart:
    the host's speed changes the CPU seconds from one minute to the next, not these."""
    return {
        f"sender_Minstr_per_MB_{part}": round((end[part] - start[part]) / 1e6 / mb, 2)
        if mb > 0 and part in start and part in end
        else None
        for part in ("user", "kernel")
    }


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
