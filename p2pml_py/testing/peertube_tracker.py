"""The tracker of the emulated PeerTube instance: ``node peertube-tracker.mjs`` as a subprocess.

The script (``p2pml_py/harness/web/node/peertube-tracker.mjs``) runs the npm bittorrent-tracker
behind the filter and routes PeerTube puts in front of it (``server/core/controllers/tracker.ts``):
an info hash it does not know is refused, and over a WebSocket the IP is blocked for 3 minutes
(later upgrades of ``/tracker/socket``: 403). It prints one JSON line per event, read here as they
come (the pipe never fills) into bounded counters.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import shutil
import tempfile
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from p2pml_py.base.aio import Notifier, Service, cancel_and_wait
from p2pml_py.base.errors import HarnessError

__all__ = ["BLOCK_SECONDS", "PeerTubeTracker", "TrackerEvent"]

logger = logging.getLogger(__name__)

#: The tracker's block time (``TRACKER_RATE_LIMITS.BLOCK_IP_LIFETIME``, 3 minutes).
BLOCK_SECONDS = 180.0
_HEX_HASH = re.compile(r"[0-9a-f]{40}")

#: One JSON line of the node script (``{"event": ..., ...}``).
TrackerEvent = dict[str, Any]


class PeerTubeTracker(Service):
    """``node peertube-tracker.mjs`` (see the script's header) run from ``node_root``.

    ``script`` and ``node_root`` come from the harness (``harness/peertube.py``): this layer does
    not know where the package data and npm packages are. Counters: :attr:`blocked_count`,
    :attr:`refused_count`, :attr:`announced_info_hashes` (hex, known or not, at most
    ``keep_events`` distinct), :attr:`unknown_announces`; :attr:`events` keeps the last
    ``keep_events`` lines.
    """

    def __init__(
        self,
        script: Path,
        node_root: Path,
        known: Iterable[str] = (),
        *,
        interval_ms: int | None = None,
        block_seconds: float = BLOCK_SECONDS,
        start_timeout: float = 20.0,
        keep_events: int = 10_000,
    ) -> None:
        if block_seconds <= 0 or not math.isfinite(block_seconds):
            raise ValueError(f"block_seconds: must be > 0, got {block_seconds}")
        if keep_events < 1:
            raise ValueError(f"keep_events: must be >= 1, got {keep_events}")
        self.script = script
        self.node_root = node_root
        self.interval_ms = interval_ms
        self.block_seconds = block_seconds
        self.start_timeout = start_timeout
        self.keep_events = keep_events
        self.host = "127.0.0.1"
        self.port = 0
        self.known: frozenset[str] = _check_hashes(known)
        self.blocked_count = 0
        self.blocked_ips: set[str] = set()
        self.refused_count = 0
        self.announce_count = 0
        self.unknown_announces = 0
        self.announced_info_hashes: set[str] = set()
        self.warnings: deque[str] = deque(maxlen=100)
        self.reloads = 0
        self._events: deque[TrackerEvent] = deque(maxlen=keep_events)
        self._changed = Notifier()
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._ended = False

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/tracker/socket"

    @property
    def announce_url(self) -> str:
        return f"http://{self.host}:{self.port}/tracker/announce"

    @property
    def events(self) -> list[TrackerEvent]:
        return list(self._events)

    @property
    def _known_file(self) -> Path:
        assert self._dir is not None
        return Path(self._dir.name) / "known-hashes.json"

    async def start(self) -> None:
        node = shutil.which("node")
        if node is None:
            raise HarnessError("node is needed for the PeerTube tracker: apt-get install nodejs")
        for package in ("bittorrent-tracker", "ws"):
            if not (self.node_root / "node_modules" / package).is_dir():
                raise HarnessError(
                    f"npm package {package} is not installed in {self.node_root / 'node_modules'}"
                    ": run `p2pml-py harness setup` (in a git checkout: interop/setup.sh)"
                )
        self._dir = tempfile.TemporaryDirectory(prefix="peertube-tracker-")
        self._known_file.write_text(json.dumps(sorted(self.known)), encoding="utf-8")
        args = [str(self.script), str(self._known_file)]
        if self.interval_ms is not None:
            args += ["--interval-ms", str(self.interval_ms)]
        args += ["--block-ms", str(round(self.block_seconds * 1000))]
        self._proc = await asyncio.create_subprocess_exec(
            node,
            *args,
            cwd=self.node_root,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        self._reader = asyncio.create_task(self._read(), name="peertube-tracker-stdout")
        try:
            async with asyncio.timeout(self.start_timeout):
                await self._changed.wait_until(lambda: self.port > 0 or self._ended)
        except TimeoutError:
            raise HarnessError("the PeerTube tracker did not report its port") from None
        if not self.port:
            assert self._proc.stderr is not None
            err = await self._proc.stderr.read()
            raise HarnessError(f"the PeerTube tracker exited: {err.decode(errors='replace')}")
        logger.info("PeerTube tracker on port %d (pid %d)", self.port, self._proc.pid)

    async def aclose(self) -> None:
        proc = self._proc
        if proc is not None and proc.returncode is None:
            assert proc.stdin is not None
            proc.stdin.close()  # the script exits when stdin closes
            try:
                async with asyncio.timeout(5):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self._reader is not None:
            await cancel_and_wait([self._reader])
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    async def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        try:
            while line := await self._proc.stdout.readline():
                try:
                    event = json.loads(line)
                except ValueError:
                    event = {"event": "raw", "message": line.decode(errors="replace").rstrip()}
                if isinstance(event, dict):
                    self._on_event(event)
        finally:
            self._ended = True
            self._changed.notify()

    def _on_event(self, event: TrackerEvent) -> None:
        self._events.append(event)
        kind = event.get("event")
        if "port" in event and not self.port:
            self.port = int(event["port"])
        elif kind == "announce":
            self.announce_count += 1
            if not event.get("known"):
                self.unknown_announces += 1
            if len(self.announced_info_hashes) < self.keep_events:
                self.announced_info_hashes.add(str(event.get("info_hash_hex")))
        elif kind == "blocked":
            self.blocked_count += 1
            if len(self.blocked_ips) < self.keep_events:
                self.blocked_ips.add(str(event.get("ip")))
        elif kind == "refused":
            self.refused_count += 1
        elif kind == "reloaded":
            self.reloads += 1
        elif kind in ("warning", "error", "raw"):
            self.warnings.append(str(event.get("message")))
        self._changed.notify()

    async def wait_event(
        self, predicate: Callable[[TrackerEvent], bool], timeout: float
    ) -> TrackerEvent:
        """The first kept event that matches, waiting for it if need be (``TimeoutError``)."""
        async with asyncio.timeout(timeout):
            while True:
                changed = self._changed.next()
                for event in self._events:
                    if predicate(event):
                        return event
                if self._ended:
                    raise HarnessError("the PeerTube tracker exited")
                await changed.wait()

    async def _command(self, line: str) -> None:
        if self._proc is None or self._proc.stdin is None or self._proc.returncode is not None:
            raise HarnessError("the PeerTube tracker is not running")
        self._proc.stdin.write(line.encode() + b"\n")
        await self._proc.stdin.drain()

    async def set_known(self, hashes: Iterable[str], timeout: float = 10.0) -> None:
        """Replace the known info hashes (hex) and wait until the tracker read them."""
        self.known = _check_hashes(hashes)
        self._known_file.write_text(json.dumps(sorted(self.known)), encoding="utf-8")
        reloads = self.reloads
        await self._command("reload")
        async with asyncio.timeout(timeout):
            await self._changed.wait_until(lambda: self.reloads > reloads or self._ended)

    async def unblock(self) -> None:
        """Clear the tracker's block list (as if 3 minutes had passed)."""
        await self._command("unblock")
        await self.wait_event(lambda e: e.get("event") == "unblocked", 10.0)


def _check_hashes(hashes: Iterable[str]) -> frozenset[str]:
    checked = frozenset(hashes)
    for value in checked:
        if not _HEX_HASH.fullmatch(value):
            raise ValueError(f"known info hash {value!r}: expected 40 lowercase hex digits")
    return checked
