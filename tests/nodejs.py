"""Node helpers for tests: the pinned npm packages in ``interop/`` and JSON-line node scripts.

The node modules are installed from ``interop/package-lock.json`` when missing
(``npm ci --ignore-scripts``); tests that need them fail, not skip, when node is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

INTEROP = Path(__file__).resolve().parents[1] / "interop"
NODE_DIR = INTEROP / "node"
WAIT = 15.0
PINNED = "11.2.3"


def ensure_node_modules() -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise RuntimeError("node and npm are needed for the bittorrent-tracker interop tests")
    manifest = INTEROP / "node_modules" / "bittorrent-tracker" / "package.json"
    if not manifest.exists() or json.loads(manifest.read_text())["version"] != PINNED:
        # --prefer-offline: works from the npm cache inside a network namespace.
        result = subprocess.run(
            [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--prefer-offline"],
            cwd=INTEROP,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if result.returncode != 0 or not manifest.exists():
            raise RuntimeError(f"npm ci failed in {INTEROP}:\n{result.stdout}\n{result.stderr}")
    assert json.loads(manifest.read_text())["version"] == PINNED
    return INTEROP / "node_modules"


class NodeScript:
    """A node helper process that reports JSON lines on stdout."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.events: list[dict[str, Any]] = []

    @classmethod
    @contextlib.asynccontextmanager
    async def run(cls, script: str, *args: str) -> AsyncIterator[NodeScript]:
        proc = await asyncio.create_subprocess_exec(
            "node",
            str(NODE_DIR / script),
            *args,
            cwd=INTEROP,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            yield cls(proc)
        finally:
            await cls(proc).aclose()

    async def aclose(self) -> None:
        if self.proc.returncode is not None:
            return
        assert self.proc.stdin is not None
        self.proc.stdin.close()  # the scripts exit when stdin closes
        try:
            async with asyncio.timeout(5):
                await self.proc.wait()
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()

    async def command(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()

    async def expect(self, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """Next (or already seen) event matching ``predicate``."""
        for event in self.events:
            if predicate(event):
                return event
        assert self.proc.stdout is not None
        async with asyncio.timeout(WAIT):
            while True:
                line = await self.proc.stdout.readline()
                if not line:
                    assert self.proc.stderr is not None
                    err = await self.proc.stderr.read()
                    raise AssertionError(f"node exited: {err.decode(errors='replace')}")
                received: dict[str, Any] = json.loads(line)
                self.events.append(received)
                if predicate(received):
                    return received
