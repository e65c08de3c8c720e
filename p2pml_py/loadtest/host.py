"""The viewer host: ``python -m p2pml_py.loadtest.host``, one asyncio process running every
virtual viewer of one Locust process (see :mod:`p2pml_py.loadtest.users` for why a process of
its own). Commands come on stdin and events go to stdout as JSON lines
(:mod:`p2pml_py.loadtest.protocol`); logs go to stderr.

Each ``watch`` command runs one viewer exactly as ``p2pml-py watch ARGV`` would
(:func:`p2pml_py.apps.cli.watch_viewer`: same options, same checks, same errors), reports its
totals every ``--interval`` seconds, and ends with one ``ended`` event: at the end of a VOD, after
its ``--duration``, on ``stop``, or when stdin closes (the Locust process is gone), which ends
every viewer and the host.

``--check -- ARGV`` only checks that ``ARGV`` makes a viewer (exit status 2 and the reason on
stderr otherwise), so a Locust master can refuse a bad run before any worker starts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import logging
import math
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from p2pml_py.apps.cli import CliError, build_parser, watch_viewer
from p2pml_py.base.aio import Notifier, TaskGroup, cancel_and_wait
from p2pml_py.base.errors import P2PMLError
from p2pml_py.loadtest.metrics import ViewerCounters
from p2pml_py.loadtest.protocol import HostEvent, parse_command
from p2pml_py.rtc.aiortc_backend.tuning import tune_process_unless_disabled

if TYPE_CHECKING:
    from p2pml_py.roles.viewer import Viewer

__all__ = ["ViewerHost", "counters_of", "main", "parse_watch"]

logger = logging.getLogger(__name__)

#: At most this many viewers at once. A Locust process sends one per user it runs; a real-time
#: aiortc viewer costs a share of a core, so a host, which is one process on one core, runs far
#: fewer than this -- the bound only stops a runaway client from growing the host without end.
MAX_VIEWERS = 1000
#: How long the host waits for its viewers to close when its stdin closes (each tells its
#: trackers and closes its connections: well under a second on a healthy machine). The Locust
#: side kills a host that takes longer than ``HOST_CLOSE_WAIT`` (10 s).
CLOSE_GRACE = 5.0
#: Longest command line read: a ``watch`` command is its arguments, well under this.
LINE_LIMIT = 1 << 20


class ConfigError(P2PMLError):
    """``ARGV`` does not make a viewer: the message is what ``p2pml-py watch`` would say."""


def parse_watch(argv: Sequence[str]) -> argparse.Namespace:
    """``p2pml-py watch ARGV``'s parsed arguments, or :class:`ConfigError` with argparse's
    message (argparse prints and exits; both are caught, stdout is the protocol pipe)."""
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            args = build_parser().parse_args(["watch", *argv])
    except SystemExit:
        lines = (err.getvalue() or out.getvalue()).strip().splitlines()
        message = lines[-1] if lines else "bad watch arguments"
        raise ConfigError(message.split(": error: ", 1)[-1]) from None
    if not args.tracker:
        raise ConfigError("--tracker: required (a load test never uses the public trackers)")
    return args


def _viewer(argv: Sequence[str]) -> tuple[Viewer, float | None]:
    args = parse_watch(argv)
    try:
        return watch_viewer(args), args.duration
    except CliError as exc:
        raise ConfigError(str(exc)) from None


def counters_of(viewer: Viewer) -> ViewerCounters:
    return ViewerCounters(
        http_bytes=viewer.http_bytes,
        p2p_bytes=viewer.p2p_bytes,
        http_segments=sum(viewer.http_segments.values()),
        p2p_segments=viewer.p2p_segments,
        origin_errors=viewer.origin_errors,
        stalls=viewer.stalls,
        startup_time=viewer.startup_time,
        uploaded_bytes=viewer.uploaded,
        peers=viewer.peer_count,
    )


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class ViewerHost:
    """The viewers of one host; :meth:`handle` each command line, :meth:`aclose` at the end.

    ``emit`` writes one event line (stdout in the process). Every ``watch`` gets exactly one
    ``ended`` event, whatever ends it -- also :meth:`aclose`.
    """

    def __init__(
        self,
        emit: Callable[[str], None],
        *,
        interval: float = 1.0,
        max_viewers: int = MAX_VIEWERS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not math.isfinite(interval) or interval <= 0:
            raise ValueError(f"interval: seconds > 0, got {interval}")
        self._emit = emit
        self.interval = interval
        self.max_viewers = max_viewers
        self._clock = clock
        self._tasks = TaskGroup(logger)
        self._stops: dict[str, asyncio.Event] = {}
        self._changed = Notifier()

    @property
    def running(self) -> int:
        return len(self._stops)

    def handle(self, line: str | bytes) -> None:
        try:
            op, viewer_id, argv = parse_command(line)
        except ValueError as exc:
            logger.warning("viewer host: bad command %.200r: %s", line, exc)
            return
        if op == "stop":
            stop = self._stops.get(viewer_id)
            if stop is not None:  # else it already ended (its "ended" is on its way)
                stop.set()
            return
        if viewer_id in self._stops:
            logger.warning("viewer host: viewer %s is already running", viewer_id)
            return
        if len(self._stops) >= self.max_viewers:
            self._ended(
                viewer_id,
                None,
                0.0,
                f"the host already runs its maximum of {self.max_viewers} viewers",
            )
            return
        self._stops[viewer_id] = asyncio.Event()
        self._tasks.spawn(self._session(viewer_id, argv), f"viewer-{viewer_id}")

    def _ended(
        self,
        viewer_id: str,
        counters: ViewerCounters | None,
        duration: float,
        error: str | None,
        stopped: bool = False,
    ) -> None:
        self._emit(HostEvent(viewer_id, "ended", counters, duration, stopped, error).to_line())

    async def _session(self, viewer_id: str, argv: list[str]) -> None:
        stop = self._stops[viewer_id]
        started = self._clock()
        try:
            viewer, duration = _viewer(argv)
        except Exception as exc:  # ConfigError, or anything else building it: this viewer's
            self._forget(viewer_id)
            message = str(exc) if isinstance(exc, ConfigError) else _describe(exc)
            self._ended(viewer_id, None, 0.0, f"config: {message}")
            return
        error: str | None = None
        stopping = asyncio.create_task(stop.wait(), name=f"viewer-{viewer_id}-stop")
        try:
            error = await self._start(viewer_id, viewer, stopping, duration)
            if error is None and not stopping.done():
                await self._watch(viewer_id, viewer, stopping, started, duration)
        finally:
            # Said first: before anything here can be cancelled, and before the viewer closes
            # (trackers are told, connections closed: a while), so that a stopping Locust user
            # has its last numbers at once. A viewer stopped from outside (stop, or the host
            # closing) did not end by itself.
            self._ended(
                viewer_id, counters_of(viewer), self._clock() - started, error, stop.is_set()
            )
            try:
                await cancel_and_wait([stopping])
                await viewer.aclose()
            finally:
                self._forget(viewer_id)

    async def _start(
        self,
        viewer_id: str,
        viewer: Viewer,
        stopping: asyncio.Task[object],
        duration: float | None,
    ) -> str | None:
        """Start ``viewer`` unless stopped (or out of time) first; the failure, if any."""
        starting = asyncio.create_task(viewer.start(), name=f"viewer-{viewer_id}-start")
        try:
            await asyncio.wait(
                [starting, stopping], timeout=duration, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            if not starting.done():
                await cancel_and_wait([starting])
        if starting.cancelled():
            return None if stopping.done() else "start: not started within its watch time"
        exc = starting.exception()
        if exc is None:
            return None
        # Any failure to start is this viewer's (its origin, its tracker, ...): reported.
        logger.info("viewer %s could not start: %s", viewer_id, _describe(exc))
        return f"start: {_describe(exc)}"

    async def _watch(
        self,
        viewer_id: str,
        viewer: Viewer,
        stopping: asyncio.Task[object],
        started: float,
        duration: float | None,
    ) -> None:
        """Report every interval until the VOD's end, ``duration`` or ``stop``."""
        ended = asyncio.create_task(viewer.wait_ended(), name=f"viewer-{viewer_id}-ended")
        try:
            while True:
                timeout = self.interval
                if duration is not None:
                    timeout = min(timeout, max(0.0, started + duration - self._clock()))
                done, _ = await asyncio.wait(
                    [ended, stopping], timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                if done or (duration is not None and self._clock() >= started + duration):
                    return
                self._emit(HostEvent(viewer_id, "progress", counters_of(viewer)).to_line())
        finally:
            await cancel_and_wait([ended])

    def _forget(self, viewer_id: str) -> None:
        del self._stops[viewer_id]
        self._changed.notify()

    async def aclose(self, grace: float = CLOSE_GRACE) -> None:
        """Stop every viewer -- also those whose command just came: each sends its ``ended``
        -- and wait up to ``grace`` seconds for them to close before cancelling the rest."""
        for stop in self._stops.values():
            stop.set()
        try:
            async with asyncio.timeout(grace):
                await self._changed.wait_until(lambda: not self._stops)
        except TimeoutError:
            logger.warning("viewer host: %d viewers still closing: cancelled", len(self._stops))
        finally:
            await self._tasks.aclose()


async def _stdin_reader() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=LINE_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


def _write_line(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def serve(interval: float, max_viewers: int) -> None:
    """Run viewers for the commands on stdin until it closes."""
    host = ViewerHost(_write_line, interval=interval, max_viewers=max_viewers)
    reader = await _stdin_reader()
    try:
        while line := await reader.readline():
            if line.strip():
                host.handle(line)
    except (ValueError, asyncio.LimitOverrunError) as exc:  # a line over LINE_LIMIT
        logger.error("viewer host: unreadable command stream: %s", exc)
    finally:
        # Sessions cancelled by aclose still close their viewers (trackers get "stopped").
        await host.aclose()


async def _check(argv: Sequence[str]) -> None:
    viewer, _ = _viewer(argv)
    await viewer.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    if given[:1] == ["--check"]:  # --check [--] ARGV: everything after it is watch's
        watch_args = given[2:] if given[1:2] == ["--"] else given[1:]
        logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
        try:
            asyncio.run(_check(watch_args))
        except ConfigError as exc:
            print(f"p2pml-py watch: {exc}", file=sys.stderr)
            return 2
        return 0
    parser = argparse.ArgumentParser(
        prog="python -m p2pml_py.loadtest.host",
        description="Run p2pml-py watch viewers for a Locust process (JSON lines on stdin and "
        "stdout). 'python -m p2pml_py.loadtest.host --check -- ARGV' only checks that "
        "'p2pml-py watch ARGV' makes a viewer.",
    )
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between reports")
    parser.add_argument("--max-viewers", type=int, default=MAX_VIEWERS)
    parser.add_argument(
        "--log-level", default="warning", choices=["debug", "info", "warning", "error"]
    )
    opts = parser.parse_args(given)
    if not math.isfinite(opts.interval) or opts.interval <= 0:
        parser.error(f"--interval: seconds > 0, got {opts.interval}")
    if opts.max_viewers < 1:
        parser.error(f"--max-viewers: at least 1, got {opts.max_viewers}")
    logging.basicConfig(
        stream=sys.stderr,
        level=getattr(logging, opts.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    tune_process_unless_disabled()
    asyncio.run(serve(opts.interval, opts.max_viewers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
