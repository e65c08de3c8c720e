"""A real super-peer process for tests and benchmarks: ``python -m p2pml_py.apps.superpeer``.

:class:`SuperPeerProcess` runs the command as an operator would (``--config FILE --log-format
json``), so this layer never imports the app: it only reads what the process writes. Its stderr
-- the parent's and its workers' JSON log lines, one object a line -- is read as it comes, so the
pipe never fills and the process never blocks on a log write. What the driver keeps is bounded:

* ``records``: the last ``keep_records`` log records (``dropped`` counts the older ones);
* ``problems``: the first ``keep_records`` warnings, errors and non-JSON lines (``level``
  ``"raw"``: a traceback or a warning printed past the logging set-up), then only counted. The
  first ones are kept because the first failure usually explains the rest.

``start`` returns once the ``http_listening`` record names the status server's URL (bounded by
``start_timeout``); ``wait_log`` waits for a record, ``terminate`` stops the process as systemd or
Kubernetes would (SIGTERM, SIGKILL after a grace period) and ``kill`` as a lost machine would.
With ``new_session`` the process leads its own process group, so ``kill`` takes its worker
processes too (a pod that dies). stdout is discarded: the super-peer writes nothing there.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import sys
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp

from p2pml_py.base.aio import Notifier, Service, cancel_and_wait

__all__ = ["Record", "SuperPeerProcess"]

#: One JSON log line (``p2pml_py/apps/logs.py``), or ``{"level": "raw", "msg": line}``.
Record = dict[str, Any]

#: Levels kept in ``problems``; ``errors()`` is the part at ERROR_LEVELS.
PROBLEM_LEVELS = frozenset({"warning", "error", "critical", "raw"})
ERROR_LEVELS = frozenset({"error", "critical", "raw"})
#: Longest log line read whole. A record with a traceback (``exc``) is a few KiB; a longer line
#: becomes a ``raw`` record saying so, so one line cannot hold an unbounded buffer.
LINE_LIMIT = 1 << 20
#: How long to read the log after the process exited: its workers' last lines (``worker_stopped``)
#: come through the same pipe, which closes when the last of them is gone.
DRAIN_SECONDS = 5.0
#: How often ``wait_status`` reads ``/status`` again: the tests' ``stats_interval`` (a worker
#: report is what changes it).
STATUS_INTERVAL = 0.25


class SuperPeerProcess(Service):
    """``python -m p2pml_py.apps.superpeer --config CONFIG --log-format json`` as a subprocess.

    ``env``: variables set on top of this process's environment (``HOSTNAME``: a fleet member's
    id, as in a StatefulSet pod). ``async with`` starts it and kills it on the way out if it is
    still running; stop it with :meth:`terminate` first to see it leave cleanly.
    """

    def __init__(
        self,
        config: Path,
        *,
        env: Mapping[str, str] | None = None,
        new_session: bool = False,
        keep_records: int = 10_000,
        start_timeout: float = 30.0,
    ) -> None:
        if keep_records < 1:
            raise ValueError(f"keep_records: must be >= 1, got {keep_records}")
        if start_timeout <= 0:
            raise ValueError(f"start_timeout: must be > 0, got {start_timeout}")
        self.config = config
        self.env = dict(env) if env is not None else None
        self.new_session = new_session
        self.keep_records = keep_records
        self.start_timeout = start_timeout
        self.proc: asyncio.subprocess.Process | None = None
        #: The status server's base URL, from the ``http_listening`` record ("" before it).
        self.url = ""
        #: :meth:`terminate` had to SIGKILL it after its grace period.
        self.killed = False
        #: Problems seen beyond the ``keep_records`` kept in :attr:`problems`.
        self.problems_dropped = 0
        self._records: deque[Record] = deque(maxlen=keep_records)
        self._count = 0
        self._problems: list[Record] = []
        self._changed = Notifier()
        self._reader: asyncio.Task[None] | None = None

    # -- what it logged ------------------------------------------------------------------------

    @property
    def records(self) -> list[Record]:
        """The last ``keep_records`` records, oldest first (a copy)."""
        return list(self._records)

    @property
    def dropped(self) -> int:
        """Records read but no longer kept."""
        return self._count - len(self._records)

    @property
    def problems(self) -> list[Record]:
        """The first ``keep_records`` warning, error, critical and raw records (a copy)."""
        return list(self._problems)

    def errors(self) -> list[Record]:
        """The kept problems at error level or worse (raw lines count: nothing the super-peer
        logs on purpose bypasses the JSON formatter)."""
        return [r for r in self._problems if r.get("level") in ERROR_LEVELS]

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    @property
    def ended(self) -> bool:
        """Its log is closed: the process and every worker that shared its stderr are gone."""
        return self._reader is not None and self._reader.done()

    def _tail(self, count: int = 10) -> str:
        last = itertools.islice(self._records, max(0, len(self._records) - count), None)
        return " | ".join(str(r.get("msg", r)) for r in last)[-2000:]

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the process; return once it logged ``http_listening`` (:attr:`url` is set).

        Raises ``TimeoutError`` after ``start_timeout`` and ``RuntimeError`` if the process
        exits first (a config error, say), with its last log lines; ``async with`` then kills it.
        """
        if self.proc is not None:
            raise RuntimeError("this super-peer process was already started")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "p2pml_py.apps.superpeer",
            "--config",
            str(self.config),
            "--log-format",
            "json",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=None if self.env is None else {**os.environ, **self.env},
            start_new_session=self.new_session,
            limit=LINE_LIMIT,
        )
        self._reader = asyncio.create_task(self._read(), name=f"superpeer-log-{self.proc.pid}")
        try:
            async with asyncio.timeout(self.start_timeout):
                await self._changed.wait_until(lambda: bool(self.url) or self.ended)
        except TimeoutError:
            raise TimeoutError(
                f"the super-peer did not log http_listening within {self.start_timeout:g} s: "
                f"{self._tail()}"
            ) from None
        if not self.url:
            # Its log closed first; the exit status follows a moment later. Wait for it (bounded)
            # so the caller sees the real exit code, not the SIGKILL of ``aclose``.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.start_timeout):
                    await self.proc.wait()
            raise RuntimeError(f"the super-peer exited before listening: {self._tail()}")

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the super-peer's parent process (SIGHUP reloads, SIGTERM stops)."""
        if self.proc is None:
            raise RuntimeError("the super-peer process was not started")
        if self.proc.returncode is None:
            _send(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL: no ``stopped`` announce leaves it. With ``new_session`` to its whole process
        group, workers included (a lost pod); otherwise to the parent alone."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            if self.new_session:
                os.killpg(self.proc.pid, signal.SIGKILL)
            elif self.proc.returncode is None:
                _send(self.proc.pid, signal.SIGKILL)

    async def terminate(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (every seeder leaves its swarms with ``stopped``, then the workers exit), and
        SIGKILL if it is still running after ``timeout`` (:attr:`killed`). Returns the exit
        code (``None``: never started) once the log was read to its end (bounded)."""
        if self.proc is None:
            return None
        if self.proc.returncode is None:
            self.signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(timeout):
                    await self.proc.wait()
            except TimeoutError:
                self.killed = True
                self.kill()
                await self.proc.wait()
        await self._drain()
        return self.proc.returncode

    async def aclose(self) -> None:
        """Kill it if it is still running, wait for it and stop reading its log (idempotent)."""
        if self.proc is not None:
            if self.proc.returncode is None:
                self.kill()
            await self.proc.wait()
        await self._drain()
        if self._reader is not None:
            await cancel_and_wait([self._reader])

    async def _drain(self) -> None:
        if self._reader is not None and not self._reader.done():
            await asyncio.wait([self._reader], timeout=DRAIN_SECONDS)

    # -- reading the log -----------------------------------------------------------------------

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        stderr = self.proc.stderr
        try:
            while True:
                try:
                    line = await stderr.readline()
                except ValueError:  # over LINE_LIMIT: the stream dropped what it had of it
                    self._add({"level": "raw", "msg": f"a log line over {LINE_LIMIT} bytes"})
                    continue
                if not line:
                    return
                self._add(_parse(line))
        finally:
            self._changed.notify()

    def _add(self, record: Record) -> None:
        self._records.append(record)
        self._count += 1
        if record.get("event") == "http_listening" and not self.url:
            self.url = str(record.get("url", ""))
        if record.get("level") in PROBLEM_LEVELS:
            if len(self._problems) < self.keep_records:
                self._problems.append(record)
            else:
                self.problems_dropped += 1
        self._changed.notify()

    async def wait_log(self, predicate: Callable[[Record], bool], timeout: float) -> Record:
        """The first kept record (from the oldest still kept) that matches, waiting for it if
        need be. ``TimeoutError`` after ``timeout``; ``RuntimeError`` if the log ends first."""
        position = 0  # records before this one (counted from the first ever read) were checked
        try:
            async with asyncio.timeout(timeout):
                while True:
                    changed = self._changed.next()
                    first = self.dropped
                    for record in itertools.islice(self._records, max(0, position - first), None):
                        if predicate(record):
                            return record
                    position = self._count
                    if self.ended:
                        raise RuntimeError(
                            f"the super-peer's log ended without that record: {self._tail()}"
                        )
                    await changed.wait()
        except TimeoutError:
            raise TimeoutError(
                f"no such log record within {timeout:g} s; the last ones: {self._tail()}"
            ) from None

    # -- its status server ---------------------------------------------------------------------

    async def status(self, http: aiohttp.ClientSession | None = None) -> dict[str, Any]:
        """``GET /status`` (in ``http`` if given, else in a session of its own)."""
        if not self.url:
            raise RuntimeError("the super-peer is not listening yet")
        if http is None:
            async with aiohttp.ClientSession() as own:
                return await self.status(own)
        async with http.get(self.url + "/status") as response:
            response.raise_for_status()
            result: dict[str, Any] = await response.json()
            return result

    async def wait_status(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float
    ) -> dict[str, Any]:
        """``/status`` changes only when a worker reports (every ``stats_interval``): read it
        again every STATUS_INTERVAL until ``predicate`` holds (``TimeoutError`` after
        ``timeout``)."""
        async with aiohttp.ClientSession() as http, asyncio.timeout(timeout):
            while True:
                status = await self.status(http)
                if predicate(status):
                    return status
                await asyncio.sleep(STATUS_INTERVAL)


def _parse(line: bytes) -> Record:
    text = line.decode(errors="replace").rstrip()
    try:
        record = json.loads(text)
    except ValueError:
        return {"level": "raw", "msg": text}
    return record if isinstance(record, dict) else {"level": "raw", "msg": text}


def _send(pid: int, sig: int) -> None:
    """``os.kill``, not ``Process.send_signal``: the latter polls first (``waitpid(WNOHANG)``),
    which reaps a child that just exited before asyncio's child watcher does; the watcher then
    finds no child and reports exit code 255 instead of the real one. A zombie ignores the
    signal, so sending it to a child that exited but was not reaped yet is harmless."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
