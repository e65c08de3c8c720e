"""A whole distributed Locust run on this machine's loopback: ``python -m
p2pml_py.loadtest.loopback`` starts a synthetic origin, our tracker and a seeder, then a Locust
master and ``--workers`` workers of virtual viewers, and prints what the master printed.

It is the multi-machine run in miniature (the workers would name the master's address with
``--master-host``), for trying the load test out and for ``tests/loadtest``. Everything listens on
127.0.0.1; the viewers gather ICE candidates on 127.0.0.1 too.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from p2pml_py.engine.streams import PeerOptions
from p2pml_py.roles.seeder import Seeder
from p2pml_py.rtc.config import RtcConfig
from p2pml_py.testing.origin import Rendition, SyntheticOrigin
from p2pml_py.tracker.server import TrackerServer

__all__ = ["LoopbackRun", "main", "run_loopback"]

#: The demo's rendition: 2 s segments at 800 kbit/s.
RENDITION = Rendition("360p", bandwidth=800_000, width=640, height=360)
SEGMENT_SIZE = 200_000
#: Past the run's end: the processes had this long to finish before they are killed.
GRACE_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class LoopbackRun:
    """What the processes left: exit statuses (master first), logs and Locust's CSV prefix."""

    codes: tuple[int, ...]
    logs: dict[str, Path]
    csv_prefix: Path

    def log(self, name: str) -> str:
        return self.logs[name].read_text(errors="replace")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _spawn(command: list[str], log: Path) -> asyncio.subprocess.Process:
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        return await asyncio.create_subprocess_exec(
            *command, stdout=out, stderr=asyncio.subprocess.STDOUT, start_new_session=True
        )


async def _wait(proc: asyncio.subprocess.Process, timeout: float) -> int:
    try:
        async with asyncio.timeout(timeout):
            return await proc.wait()
    except TimeoutError:
        os.killpg(proc.pid, signal.SIGKILL)  # its own group: the worker and its viewer host
        return await proc.wait()


async def run_loopback(
    out_dir: Path,
    *,
    users: int = 4,
    workers: int = 2,
    run_seconds: int = 30,
    spawn_rate: float = 2.0,
    vod_segments: int = 30,
    locust_args: Sequence[str] = (),
) -> LoopbackRun:
    """Run it; the processes' output goes to ``out_dir/{master,worker1,...}.log``."""
    origin = SyntheticOrigin(
        renditions=(RENDITION,), segment_size=SEGMENT_SIZE, vod_segments=vod_segments
    )
    locust = [sys.executable, "-m", "p2pml_py.loadtest"]
    logs = {"master": out_dir / "master.log"}
    logs.update({f"worker{n}": out_dir / f"worker{n}.log" for n in range(1, workers + 1)})
    csv_prefix = out_dir / "run"
    async with origin, TrackerServer() as tracker:
        options = PeerOptions(trackers=(tracker.url,), rtc=RtcConfig(ice_addresses=("127.0.0.1",)))
        # The synthetic segments are not media: checked by length (origin.source_config()).
        async with Seeder(origin.url, options, source_config=origin.source_config()):
            port = _free_port()
            master = await _spawn(
                [
                    *locust,
                    *("--headless", "--master", "--expect-workers", str(workers)),
                    *("--master-bind-host", "127.0.0.1", "--master-bind-port", str(port)),
                    *("--users", str(users), "--spawn-rate", f"{spawn_rate:g}"),
                    *("--run-time", f"{run_seconds}s", "--csv", str(csv_prefix)),
                    *("--p2pml-url", origin.url, "--p2pml-tracker", tracker.url),
                    *("--p2pml-watch-args", "--validate length --ice-address 127.0.0.1"),
                    *locust_args,
                ],
                logs["master"],
            )
            worker_procs = [
                await _spawn(
                    [*locust, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)],
                    logs[f"worker{n}"],
                )
                for n in range(1, workers + 1)
            ]
            codes = [
                await _wait(proc, run_seconds + GRACE_SECONDS) for proc in (master, *worker_procs)
            ]
    return LoopbackRun(tuple(codes), logs, csv_prefix)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m p2pml_py.loadtest.loopback",
        description="A Locust master and workers of virtual viewers, with a synthetic origin, "
        "tracker and seeder, all on 127.0.0.1.",
    )
    parser.add_argument("--users", type=int, default=4, help="virtual viewers (default 4)")
    parser.add_argument("--workers", type=int, default=2, help="Locust workers (default 2)")
    parser.add_argument("--run-time", type=int, default=30, help="seconds (default 30)")
    parser.add_argument("--out", type=Path, help="where the logs and CSV go (default: a temp dir)")
    args = parser.parse_args(argv)
    for flag, value in (("--users", args.users), ("--workers", args.workers)):
        if value < 1:
            parser.error(f"{flag}: at least 1, got {value}")
    if args.run_time < 5:
        parser.error(f"--run-time: at least 5 s, got {args.run_time}")
    out = args.out or Path(tempfile.mkdtemp(prefix="p2pml-loadtest-"))
    out.mkdir(parents=True, exist_ok=True)
    vod_segments = max(30, args.run_time // 2 + 10)  # 2 s segments: longer than the run
    run = asyncio.run(
        run_loopback(
            out,
            users=args.users,
            workers=args.workers,
            run_seconds=args.run_time,
            vod_segments=vod_segments,
        )
    )
    print(run.log("master"), end="")
    print(f"logs and Locust's CSV in {out}; exit statuses {list(run.codes)}")
    return 0 if all(code == 0 for code in run.codes) else 1


if __name__ == "__main__":
    sys.exit(main())
