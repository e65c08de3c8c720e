"""The two trackers the harness can put between peers, both on 127.0.0.1.

* ``embedded``: p2pml_py's own :class:`~p2pml_py.tracker.server.TrackerServer`, in process;
* ``npm``: the real npm ``bittorrent-tracker`` 11.2.3 server, through the helper script
  ``web/node/tracker-server.mjs`` (package data; prints ``{"port": N}`` once listening, exits when
  its stdin closes), run in the directory of the harness's ``node_modules``.

:func:`run_tracker` yields an object with a ``url`` for either kind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal, Protocol

from p2pml_py.base.aio import cancel_and_wait
from p2pml_py.base.errors import HarnessError
from p2pml_py.harness.paths import node_root, node_scripts_dir
from p2pml_py.tracker.server import TrackerServer

__all__ = ["NodeTracker", "Tracker", "TrackerKind", "run_tracker"]

logger = logging.getLogger(__name__)

TrackerKind = Literal["embedded", "npm"]


class Tracker(Protocol):
    @property
    def url(self) -> str: ...


@dataclass(frozen=True, slots=True)
class NodeTracker:
    """A running npm bittorrent-tracker server."""

    url: str
    pid: int


@contextlib.asynccontextmanager
async def _node_tracker(start_timeout: float = 20.0) -> AsyncIterator[NodeTracker]:
    node = shutil.which("node")
    script = node_scripts_dir() / "tracker-server.mjs"
    root = node_root()  # the script loads bittorrent-tracker from <cwd>/node_modules
    if node is None:
        raise HarnessError("node is needed for the npm bittorrent-tracker: apt-get install nodejs")
    if not (root / "node_modules" / "bittorrent-tracker").is_dir():
        raise HarnessError(
            f"npm bittorrent-tracker is not installed in {root / 'node_modules'}: run "
            "`p2pml-py harness setup` (in a git checkout: interop/setup.sh)"
        )
    proc = await asyncio.create_subprocess_exec(
        node,
        str(script),
        cwd=root,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    drain: asyncio.Task[None] | None = None
    try:
        assert proc.stdout is not None
        try:
            async with asyncio.timeout(start_timeout):
                line = await proc.stdout.readline()
        except TimeoutError as exc:
            raise HarnessError("bittorrent-tracker did not report its port") from exc
        try:
            port = int(json.loads(line)["port"])
        except (ValueError, KeyError, TypeError) as exc:
            assert proc.stderr is not None
            err = b""
            if proc.returncode is not None:
                err = await proc.stderr.read()
            raise HarnessError(f"bittorrent-tracker: unexpected output {line!r} {err!r}") from exc
        # Keep reading its event lines so a full pipe never blocks the server.
        drain = asyncio.create_task(_discard(proc.stdout), name="npm-tracker-stdout")
        logger.info("npm bittorrent-tracker on port %d (pid %d)", port, proc.pid)
        yield NodeTracker(url=f"ws://127.0.0.1:{port}", pid=proc.pid)
    finally:
        if proc.returncode is None:
            assert proc.stdin is not None
            proc.stdin.close()  # the script exits when stdin closes
            try:
                async with asyncio.timeout(5):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if drain is not None:
            await cancel_and_wait([drain])


async def _discard(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass


@contextlib.asynccontextmanager
async def run_tracker(kind: TrackerKind) -> AsyncIterator[Tracker]:
    """Start a tracker of ``kind`` on 127.0.0.1 for the duration of the block."""
    if kind == "embedded":
        async with TrackerServer() as server:
            yield server
    elif kind == "npm":
        async with _node_tracker() as tracker:
            yield tracker
    else:
        raise HarnessError(f"unknown tracker kind {kind!r}")
