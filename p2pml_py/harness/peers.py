"""Python peers as subprocesses of the ``p2pml-py`` CLI (``seed`` / ``watch`` with ``--json``).

Running the real CLI (not the library in-process) tests what users run, and keeps the peer's
event loop, aiortc and CPU use apart from the test's. With ``--json`` the CLI prints one JSON
object on stdout when it exits; :class:`PeerResult` is that object, typed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from p2pml_py.base.aio import Service, cancel_and_wait
from p2pml_py.base.errors import HarnessError, LocalProtocolError

__all__ = ["PeerResult", "PythonPeer", "PythonPeerConfig"]

logger = logging.getLogger(__name__)

_STDERR_TAIL = 200  # lines of the peer's log kept for failure messages


def _json_record(text: str) -> dict[str, Any] | None:
    """A ``--log-format json`` record, or None for other output (a traceback, say)."""
    if not text.startswith("{"):
        return None
    try:
        record = json.loads(text)
    except ValueError:
        return None
    return record if isinstance(record, dict) and "msg" in record else None


@dataclass(frozen=True, slots=True)
class PythonPeerConfig:
    """Command line of one ``p2pml-py seed|watch|peertube`` run (``peertube``: the manifest URL is
    a PeerTube URL, and the instance names trackers and protocol: give none)."""

    command: str  # "seed", "watch" or "peertube"
    manifest_url: str
    trackers: tuple[str, ...]
    protocol: str  # "2.3", "2.2" or (seed only) "both"
    duration: float
    rendition: tuple[str, ...] = ()  # seed: "all" or indexes; watch: one index
    ice_address: str = "127.0.0.1"
    log_level: str = "info"
    status: bool = True  # a status line per second on stderr: lands in the log tail on failure
    extra_args: tuple[str, ...] = ()
    #: seed: ``all`` -- the scenarios open pages once the seeder holds segments, so it fetches
    #: every rendition from the start (``p2pml-py seed``'s own default is ``auto``).
    fetch: str = "all"

    def __post_init__(self) -> None:
        if self.command not in ("seed", "watch", "peertube"):
            raise LocalProtocolError(f"unknown p2pml-py command {self.command!r}")
        if self.protocol not in ("2.3", "2.2", "both"):
            raise LocalProtocolError(f"unknown protocol {self.protocol!r}")
        if self.command == "peertube":
            if self.trackers or self.rendition:
                raise LocalProtocolError("peertube: the instance names trackers and renditions")
        elif not self.trackers:
            raise LocalProtocolError("a Python peer needs at least one tracker")

    def argv(self) -> list[str]:
        args = [sys.executable, "-m", "p2pml_py", "--log-level", self.log_level]
        args += ["--log-format", "json", self.command]
        args.append(self.manifest_url)
        for tracker in self.trackers:
            args += ["--tracker", tracker]
        if self.command != "peertube":
            args += ["--protocol", self.protocol]
        args += ["--ice-address", self.ice_address]
        if self.rendition:
            for rendition in self.rendition:
                args += ["--rendition", rendition]
        if self.command in ("seed", "peertube"):
            args += ["--fetch", self.fetch]
        args += ["--duration", f"{self.duration:g}", "--json"]
        args += ["--status" if self.status else "--no-status", *self.extra_args]
        return args


@dataclass(frozen=True, slots=True)
class PeerResult:
    """The JSON object a ``p2pml-py ... --json`` run printed."""

    http_bytes: int
    p2p_bytes: int
    uploaded_bytes: int
    stalls: int | None
    peers_seen: int
    uploaded_by_peer: Mapping[str, int]
    downloaded_by_peer: Mapping[str, int]
    segments: Mapping[str, Mapping[str, str]]  # playlist URL -> segment id -> SHA-256 hex
    own_peer_ids: tuple[str, ...]  # this peer's peer id in every swarm it joined
    raw: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> PeerResult:
        try:
            peers: Mapping[str, Mapping[str, Any]] = raw.get("peers") or {}
            seen = raw.get("peers_seen", len(peers))
            own = [
                str(swarm["peer_id"])
                for stream in raw.get("streams") or ()
                for swarm in stream.get("swarms") or ()
                if "peer_id" in swarm
            ]
            segments: dict[str, dict[str, str]] = {}
            for playlist, held in (raw.get("segments") or {}).items():
                if isinstance(held, Mapping):
                    segments[str(playlist)] = {str(k): str(v) for k, v in held.items()}
                else:  # a flat {segment: sha256} map
                    segments.setdefault("", {})[str(playlist)] = str(held)
            stalls = raw.get("stalls")
            return cls(
                http_bytes=int(raw["http_bytes"]),
                p2p_bytes=int(raw["p2p_bytes"]),
                uploaded_bytes=int(raw["uploaded_bytes"]),
                stalls=None if stalls is None else int(stalls),
                peers_seen=len(seen) if isinstance(seen, list | dict) else int(seen),
                uploaded_by_peer={
                    str(k): int(_first(v, "uploaded", "uploaded_bytes")) for k, v in peers.items()
                },
                downloaded_by_peer={
                    str(k): int(_first(v, "downloaded", "downloaded_bytes"))
                    for k, v in peers.items()
                },
                segments=segments,
                own_peer_ids=tuple(str(p) for p in own),
                raw=raw,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise HarnessError(f"unexpected p2pml-py JSON ({exc}): {raw!r:.500}") from exc


def _first(values: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        if key in values:
            return values[key]
    return 0


class PythonPeer(Service):
    """A running ``p2pml-py`` process; :meth:`result` waits for it to finish its ``--duration``."""

    def __init__(self, config: PythonPeerConfig, label: str) -> None:
        self.config = config
        self.label = label
        self.log: list[str] = []
        #: This peer's own peer ids, one per swarm it joined so far (read from its log).
        self.peer_ids: list[str] = []
        #: The peers it has downloaded at least one segment from so far (read from its log).
        self.got_from: list[str] = []
        self._log_changed = asyncio.Event()  # set when peer_ids or got_from grow
        self._proc: asyncio.subprocess.Process | None = None
        self._stderr_task: asyncio.Task[None] | None = None
        self._stdout = b""
        self._result: PeerResult | None = None
        self._closed = False

    async def start(self) -> None:
        if self._proc is not None or self._closed:
            raise LocalProtocolError("Python peer already started or closed")
        argv = self.config.argv()
        logger.info("%s: %s", self.label, " ".join(argv))
        self._proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        self._stderr_task = asyncio.create_task(self._read_stderr(), name=f"{self.label}-stderr")

    async def _read_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        while line := await self._proc.stderr.readline():
            text = line.decode(errors="replace").rstrip()
            record = _json_record(text)
            if record is not None:
                self._on_event(record)
                text = f"{record.get('level', '?').upper()} {record.get('logger')}: {record['msg']}"
                if "exc" in record:
                    text += "\n" + str(record["exc"])
            self.log.append(text)
            del self.log[:-_STDERR_TAIL]

    def _on_event(self, record: dict[str, Any]) -> None:
        """Steps the peer logs with an ``event`` field (``--log-format json``)."""
        event = record.get("event")
        if event == "swarm_joined" and record.get("peer_id") not in self.peer_ids:
            self.peer_ids.append(str(record["peer_id"]))
            self._log_changed.set()
        elif event == "first_segment_from" and record.get("remote_peer_id") not in self.got_from:
            self.got_from.append(str(record["remote_peer_id"]))
            self._log_changed.set()

    async def wait_joined(self, timeout: float) -> bool:
        """Wait until this peer has joined a swarm (:attr:`peer_ids` is not empty); False if it
        has not within ``timeout`` seconds."""
        return await self._wait_until(lambda: bool(self.peer_ids), timeout)

    async def wait_got_from(self, peer_ids: Iterable[str], timeout: float) -> bool:
        """Wait until this peer has downloaded a segment from one of ``peer_ids``; False if it
        has not within ``timeout`` seconds."""
        wanted = set(peer_ids)
        return await self._wait_until(lambda: bool(wanted.intersection(self.got_from)), timeout)

    async def _wait_until(self, condition: Callable[[], bool], timeout: float) -> bool:
        try:
            async with asyncio.timeout(timeout):
                while not condition():
                    self._log_changed.clear()
                    await self._log_changed.wait()
        except TimeoutError:
            return False
        return True

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log[-lines:])

    async def result(self, timeout: float | None = None) -> PeerResult:
        """Wait for the process to exit (``duration`` + ``timeout`` grace) and parse its JSON."""
        if self._result is not None:
            return self._result
        if self._proc is None:
            raise LocalProtocolError("Python peer not started")
        assert self._proc.stdout is not None
        limit = timeout if timeout is not None else self.config.duration + 30.0
        try:
            async with asyncio.timeout(limit):
                self._stdout = await self._proc.stdout.read()
                await self._proc.wait()
        except TimeoutError as exc:
            raise HarnessError(
                f"{self.label} did not exit within {limit:.0f} s\n{self.log_tail()}"
            ) from exc
        if self._stderr_task is not None:
            await self._stderr_task
        if self._proc.returncode != 0:
            raise HarnessError(
                f"{self.label} exited with {self._proc.returncode}\n{self.log_tail()}"
            )
        text = self._stdout.decode(errors="replace").strip()
        last = text.splitlines()[-1] if text else ""
        try:
            raw = json.loads(last)
        except ValueError as exc:
            raise HarnessError(
                f"{self.label}: no JSON on stdout: {text[-500:]!r}\n{self.log_tail()}"
            ) from exc
        if not isinstance(raw, dict):
            raise HarnessError(f"{self.label}: JSON output is not an object: {last[:200]!r}")
        self._result = PeerResult.from_json(raw)
        return self._result

    async def stop(self, timeout: float = 20.0) -> PeerResult:
        """Ask the peer to leave now (SIGTERM: it leaves its swarms cleanly) and parse its JSON."""
        if self._proc is not None and self._proc.returncode is None:
            self._proc.terminate()
        return await self.result(timeout)

    async def aclose(self) -> None:
        """Stop the process if it still runs (SIGTERM, then SIGKILL). Idempotent."""
        if self._closed:
            return
        self._closed = True
        proc = self._proc
        if proc is not None and proc.returncode is None:
            proc.terminate()
            try:
                async with asyncio.timeout(10):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self._stderr_task is not None and not self._stderr_task.done():
            await cancel_and_wait([self._stderr_task])
