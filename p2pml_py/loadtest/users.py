"""Locust virtual viewers: :class:`ViewerUser` runs one ``p2pml-py watch`` viewer per Locust user.

Use the shipped locustfile (``python -m p2pml_py.loadtest --help``), or import
:class:`ViewerUser` into your own. Importing this module imports Locust, which monkey-patches
the process for gevent: never import it where asyncio code runs (a test process, say).

Why the viewers run in a process of their own: Locust runs its users as gevent greenlets in a
monkey-patched process, and a viewer is asyncio + aiortc (UDP sockets, DTLS, timers on the
asyncio loop). An asyncio loop in a patched process would run on gevent's sockets and
selectors: something neither library is built for. So the first user of each Locust process
(a ``--worker``, or a local run) starts one *viewer host* (:mod:`p2pml_py.loadtest.host`): a
plain asyncio process running every viewer of that process's users, on uvloop when installed.
A user sends it ``watch``/``stop`` lines on its stdin; a greenlet reads each viewer's totals from
its stdout every ``--p2pml-report-interval`` and fires Locust request events
(:mod:`p2pml_py.loadtest.metrics` lists the rows), which workers report to the master as for any
Locust test. Give each worker a core: the worker itself only relays, the host does the work.

Each task run is one viewer session: a new peer joins the swarm, plays until the end of the VOD
or ``--p2pml-watch-seconds``, leaves; the user then starts the next session (churn). At the end
the master (or the local run) prints one ``p2pml:`` line: viewers, start-up, stalls, bytes by
source and the P2P share. Numbers a viewer made in the moments before the run stopped may miss
the master's totals (Locust's master waits 0.5 s for the workers' last reports).
"""

from __future__ import annotations

import itertools
import logging
import subprocess
import sys
import time
from typing import Any

import gevent  # type: ignore[import-untyped]
from gevent.event import Event  # type: ignore[import-untyped]
from gevent.lock import Semaphore  # type: ignore[import-untyped]
from locust import User, constant, events, task
from locust.argument_parser import LocustArgumentParser
from locust.env import Environment
from locust.exception import StopUser
from locust.runners import WorkerRunner
from locust.stats import RequestStats, console_logger

from p2pml_py.base.backoff import Backoff
from p2pml_py.loadtest.metrics import LoadSummary, Metric, SessionMetrics
from p2pml_py.loadtest.protocol import (
    HostEvent,
    LoadOptions,
    LoadOptionsError,
    parse_event,
    stop_command,
    watch_command,
)

__all__ = ["HostClient", "ViewerFailure", "ViewerUser", "load_options", "summary_of"]

logger = logging.getLogger(__name__)
#: Locust's event hooks, whose ``fire``/``add_listener`` are untyped (so: through ``Any``).
_events: Any = events

HOST_MODULE = "p2pml_py.loadtest.host"
#: How long a stopping user waits for its viewer's last report (the host sends it before it
#: closes the viewer: milliseconds, unless the host is stuck).
STOP_WAIT = 2.0
#: How long the host gets to close its viewers when Locust quits, before it is killed.
HOST_CLOSE_WAIT = 10.0
#: A host that died is started again after this back-off (per consecutive death), so a host that
#: cannot start does not make every user spawn processes in a tight loop.
HOST_RESTART = Backoff(initial=1.0, cap=30.0)
#: Lines of the host's stdout that are not events, logged at most this many times.
MAX_BAD_LINES_LOGGED = 10


class ViewerFailure(Exception):
    """A viewer's failure as Locust lists it; the message is the reason."""


def _request(environment: Environment) -> Any:
    hooks: Any = environment.events
    return hooks.request


def load_options(environment: Environment) -> LoadOptions:
    """The run's ``--p2pml-*`` options; :class:`LoadOptionsError` names a bad one."""
    opts = environment.parsed_options
    if opts is None:
        raise LoadOptionsError("--p2pml-url: required (no options were parsed)")
    return LoadOptions.parse(
        url=opts.p2pml_url,
        trackers=opts.p2pml_tracker,
        watch_seconds=float(opts.p2pml_watch_seconds),
        watch_args=opts.p2pml_watch_args,
        report_interval=float(opts.p2pml_report_interval),
    )


def check_viewer(options: LoadOptions) -> None:
    """Build one viewer from ``options`` in a throw-away host (``--check``): a bad ``watch``
    argument fails the run once, before any worker starts, instead of in every user."""
    argv = options.watch_argv()
    done = subprocess.run(
        [sys.executable, "-m", HOST_MODULE, "--check", "--", *argv],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        raise LoadOptionsError(
            f"--p2pml-url/--p2pml-tracker/--p2pml-watch-args: {lines[-1] if lines else done}"
        )


class _Session:
    """One viewer session, as the user waiting for it sees it."""

    def __init__(self, viewer_id: str, host: _HostProcess) -> None:
        self.viewer_id = viewer_id
        self.host = host
        self.metrics = SessionMetrics()
        self.done = Event()


class _HostProcess:
    """One viewer host process and the sessions it runs."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.sessions: dict[str, _Session] = {}
        self.healthy = False  # it reported at least one event
        self.reader: Any = None


class HostClient:
    """This Locust process's viewer host: started on first use, started again (with back-off)
    after it died, closed when Locust quits."""

    def __init__(self, environment: Environment, options: LoadOptions) -> None:
        self.environment = environment
        self.options = options
        self._host: _HostProcess | None = None
        self._ids = itertools.count(1)
        self._deaths = 0
        self._not_before = 0.0
        self._bad_lines = 0
        self._closed = False
        self._starting = Semaphore()  # users start together: one host, not one each

    def watch(self) -> _Session:
        """Start a viewer session (the caller waits on ``session.done``)."""
        with self._starting:
            host = self._ensure_host()
        session = _Session(str(next(self._ids)), host)
        host.sessions[session.viewer_id] = session
        self._send(host, watch_command(session.viewer_id, self.options.watch_argv()))
        return session

    def stop(self, session: _Session) -> None:
        if session.viewer_id in session.host.sessions:
            self._send(session.host, stop_command(session.viewer_id))

    def _ensure_host(self) -> _HostProcess:
        if self._closed:
            raise StopUser()
        if self._host is not None and self._host.proc.poll() is None:
            return self._host
        wait = self._not_before - time.monotonic()
        if wait > 0:
            gevent.sleep(wait)
        command = [
            sys.executable,
            "-m",
            HOST_MODULE,
            "--interval",
            f"{self.options.report_interval:g}",
        ]
        proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
            # Its own session: a Ctrl-C on Locust reaches Locust, which closes the host in turn.
            start_new_session=True,
        )
        host = _HostProcess(proc)
        host.reader = gevent.spawn(self._read, host)
        self._host = host
        logger.info("p2pml viewer host started (pid %d)", proc.pid)
        return host

    def _send(self, host: _HostProcess, line: str) -> None:
        assert host.proc.stdin is not None
        try:
            host.proc.stdin.write(line + "\n")
            host.proc.stdin.flush()
        except OSError as exc:  # the host died: its reader ends its sessions
            logger.warning("p2pml viewer host (pid %d): %s", host.proc.pid, exc)

    def _read(self, host: _HostProcess) -> None:
        stdout = host.proc.stdout
        assert stdout is not None
        while line := stdout.readline():
            try:
                event = parse_event(line)
            except ValueError as exc:
                self._bad_line(line, exc)
                continue
            if not host.healthy:
                host.healthy = True
                self._deaths = 0
            self._dispatch(host, event)
        code = host.proc.wait()
        if host.sessions and not self._closed:
            logger.error("p2pml viewer host (pid %d) exited with status %s", host.proc.pid, code)
        if not self._closed:
            self._deaths += 1
            self._not_before = time.monotonic() + HOST_RESTART.delay(self._deaths)
        for session in list(host.sessions.values()):
            error = f"viewer host exited with status {code}"
            self._finish(host, session, session.metrics.end(None, 0.0, error=error))

    def _bad_line(self, line: str, exc: ValueError) -> None:
        self._bad_lines += 1
        if self._bad_lines <= MAX_BAD_LINES_LOGGED:
            logger.warning("p2pml viewer host: not an event (%s): %.200r", exc, line)

    def _dispatch(self, host: _HostProcess, event: HostEvent) -> None:
        session = host.sessions.get(event.viewer_id)
        if session is None:
            return
        try:
            if event.kind == "progress":
                assert event.counters is not None
                self._fire(session.metrics.update(event.counters))
                return
            metrics = session.metrics.end(
                event.counters, event.duration, stopped=event.stopped, error=event.error
            )
        except ValueError as exc:  # totals went down: a host bug, this session is lost
            logger.error("p2pml viewer %s: %s", event.viewer_id, exc)
            metrics = session.metrics.end(None, event.duration, error=f"bad report: {exc}")
        self._finish(host, session, metrics)

    def _finish(self, host: _HostProcess, session: _Session, metrics: list[Metric]) -> None:
        host.sessions.pop(session.viewer_id, None)
        self._fire(metrics)
        session.done.set()

    def _fire(self, metrics: list[Metric]) -> None:
        for metric in metrics:
            _request(self.environment).fire(
                request_type=metric.request_type,
                name=metric.name,
                response_time=metric.response_time,
                response_length=metric.length,
                exception=None if metric.error is None else ViewerFailure(metric.error),
                context={},
            )

    def close(self) -> None:
        """End every viewer and the host (its stdin closes; killed after HOST_CLOSE_WAIT)."""
        self._closed = True
        host, self._host = self._host, None
        if host is None:
            return
        if host.proc.stdin is not None:
            try:
                host.proc.stdin.close()
            except OSError:
                pass
        try:
            host.proc.wait(timeout=HOST_CLOSE_WAIT)
        except subprocess.TimeoutExpired:
            logger.warning("p2pml viewer host (pid %d) did not exit: killed", host.proc.pid)
            host.proc.kill()
            host.proc.wait()
        if host.reader is not None:
            host.reader.join(timeout=HOST_CLOSE_WAIT)


_client: HostClient | None = None


def _host_client(environment: Environment) -> HostClient:
    global _client
    if _client is None:
        _client = HostClient(environment, load_options(environment))
    return _client


class ViewerUser(User):
    """One virtual viewer; each task run is one viewer session (a new peer in the swarm)."""

    wait_time = constant(0)

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self._session: _Session | None = None

    @task
    def watch(self) -> None:
        try:
            client = _host_client(self.environment)
        except LoadOptionsError as exc:
            logger.error("p2pml: %s", exc)
            _request(self.environment).fire(
                request_type="viewer",
                name="startup",
                response_time=0,
                response_length=0,
                exception=ViewerFailure(str(exc)),
                context={},
            )
            raise StopUser() from exc
        self._session = client.watch()
        self._session.done.wait()
        self._session = None

    def on_stop(self) -> None:
        session, self._session = self._session, None
        if session is not None and _client is not None and not session.done.is_set():
            _client.stop(session)
            session.done.wait(timeout=STOP_WAIT)


def summary_of(stats: RequestStats) -> LoadSummary:
    """The run's :class:`LoadSummary` from Locust's rows (on the master: every worker's)."""

    def row(method: str, name: str) -> tuple[int, int, int]:
        entry = stats.entries.get((name, method))
        if entry is None:
            return 0, 0, 0
        return entry.num_requests, entry.num_failures, entry.total_content_length

    startups, failed, _ = row("viewer", "startup")
    entry = stats.entries.get(("startup", "viewer"))
    ok_starts = startups - failed
    median = float(entry.median_response_time) if entry is not None and ok_starts else None
    http, origin_errors, http_bytes = row("segment", "http")
    p2p, _, p2p_bytes = row("segment", "p2p")
    stalls, _, _ = row("viewer", "stall")
    sessions, _, uploaded = row("viewer", "session")
    return LoadSummary(
        viewers=startups,
        failed_starts=failed,
        startup_median_ms=median,
        stalls=stalls,
        http_segments=http - origin_errors,
        http_bytes=http_bytes,
        p2p_segments=p2p,
        p2p_bytes=p2p_bytes,
        origin_errors=origin_errors,
        sessions=sessions,
        uploaded_bytes=uploaded,
    )


# -- Locust hooks ---------------------------------------------------------------------------------


def _add_arguments(parser: LocustArgumentParser, **_: Any) -> None:
    parser.add_argument(
        "--p2pml-url",
        default="",
        env_var="LOCUST_P2PML_URL",
        help="p2pml: HLS manifest URL the virtual viewers play (the one your pages load)",
    )
    parser.add_argument(
        "--p2pml-tracker",
        default="",
        env_var="LOCUST_P2PML_TRACKER",
        help="p2pml: tracker URL(s) the viewers announce to, comma-separated (your pages' "
        "announceTrackers); required: a load test never uses the public default trackers",
    )
    parser.add_argument(
        "--p2pml-watch-seconds",
        type=float,
        default=0.0,
        env_var="LOCUST_P2PML_WATCH_SECONDS",
        help="p2pml: length of one viewer session; the user then joins again as a new peer "
        "(default 0: until the VOD ends; live: until the run stops)",
    )
    parser.add_argument(
        "--p2pml-watch-args",
        default="",
        env_var="LOCUST_P2PML_WATCH_ARGS",
        help="p2pml: more 'p2pml-py watch' options for every viewer, e.g. '--protocol 2.2 "
        "--validate length --ice-address 192.0.2.7'",
    )
    parser.add_argument(
        "--p2pml-report-interval",
        type=float,
        default=1.0,
        env_var="LOCUST_P2PML_REPORT_INTERVAL",
        help="p2pml: seconds between two reports of a viewer's totals (default 1)",
    )


_environment: Environment | None = None


def _check_options(environment: Environment, **_: Any) -> None:
    """A headless master or local run checks its options once (a worker gets the master's)."""
    global _environment
    _environment = environment
    opts = environment.parsed_options
    if isinstance(environment.runner, WorkerRunner) or opts is None or not opts.headless:
        return
    try:
        check_viewer(load_options(environment))
    except LoadOptionsError as exc:
        logger.error("p2pml: %s", exc)
        sys.exit(f"p2pml: {exc}")


def _close_host(environment: Environment, **_: Any) -> None:
    if _client is not None:
        _client.close()


def _print_summary(exit_code: int, **_: Any) -> None:
    """After Locust's own tables: on the master (or a local run) its stats are every worker's."""
    environment = _environment
    if environment is None or environment.runner is None:
        return
    if not isinstance(environment.runner, WorkerRunner):
        console_logger.info(summary_of(environment.runner.stats).format())


_events.init_command_line_parser.add_listener(_add_arguments)
_events.init.add_listener(_check_options)
_events.quitting.add_listener(_close_host)
_events.quit.add_listener(_print_summary)
