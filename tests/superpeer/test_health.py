"""``/healthz`` and ``/readyz`` of a real super-peer process on 127.0.0.1, and the readiness rules
on the supervisor's own objects."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from pathlib import Path
from typing import Any

import aiohttp

from p2pml_py.apps.superpeer.config import parse_config
from p2pml_py.apps.superpeer.health import MAX_REASONS, readiness, stale_after
from p2pml_py.apps.superpeer.snapshot import StreamSnapshot, TrackerSnapshot
from p2pml_py.apps.superpeer.supervisor import StreamState, SuperPeer
from p2pml_py.testing.origin import SyntheticOrigin
from p2pml_py.tracker.server import TrackerServer
from tests.superpeer.test_superpeer import (
    RENDITION,
    SuperPeerProcess,
    seeder_ids,
    serving,
    stream,
    tracker_holds,
    write_config,
)


async def probe(url: str, path: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(url + path) as response:
        assert response.headers["Cache-Control"] == "no-store"
        body: dict[str, Any] = await response.json()
        return response.status, body


async def wait_probe(url: str, path: str, status: int, timeout: float) -> dict[str, Any]:
    """Poll until ``path`` answers ``status``: readiness follows the workers' reports, which
    arrive every ``stats_interval`` (0.25 s here)."""
    async with asyncio.timeout(timeout):
        while True:
            got, body = await probe(url, path)
            if got == status:
                return body
            await asyncio.sleep(0.25)


def refused_port() -> socket.socket:
    """A bound, not listening TCP socket: connections to its port are refused until it is
    closed and a server takes the port (in the test's own network namespace nobody else does)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


async def test_probes_follow_trackers_and_workers(tmp_path: Path) -> None:
    placeholder = refused_port()
    port = placeholder.getsockname()[1]
    tracker_url = f"ws://127.0.0.1:{port}"
    async with SyntheticOrigin(
        renditions=RENDITION, live=True, window=10, segment_duration=2.0
    ) as origin:
        config = tmp_path / "superpeer.toml"
        write_config(config, tracker_url, {"live": origin.url})
        async with SuperPeerProcess(config) as sp:
            status, body = await probe(sp.url, "/healthz")
            assert status == 200 and body["alive"] is True

            # Serving, but its only tracker refuses connections: alive, not ready.
            await sp.wait_log(serving("live"), 30)
            await sp.wait_status(lambda s: stream(s, "live")["trackers"] != {}, 10)
            status, body = await probe(sp.url, "/readyz")
            assert status == 503, body
            assert body["ready"] is False
            assert body["reasons"] == ["stream live: no tracker connected"], body
            assert (body["workers"], body["streams"]) == (2, 1)
            assert (await probe(sp.url, "/healthz"))[0] == 200

            # The tracker comes up on that port: the seeder reconnects and the member is ready.
            placeholder.close()
            async with TrackerServer(port=port) as tracker:
                body = await wait_probe(sp.url, "/readyz", 200, 30)
                assert body == {
                    "ready": True,
                    "reasons": [],
                    "degraded": [],
                    "workers": 2,
                    "streams": 1,
                    "config": str(config),
                }
                # Ready means announced: the tracker lists the member in every swarm.
                await tracker_holds(tracker, seeder_ids(await sp.status(), "live"), present=True)

                # A worker that stops reporting (stopped, not dead: the supervisor does not
                # restart it) makes the member not ready after stale_after(0.25) = 2 s ...
                pid = (await sp.status())["workers"][1]["pid"]
                os.kill(pid, signal.SIGSTOP)
                try:
                    body = await wait_probe(sp.url, "/readyz", 503, 15)
                    assert len(body["reasons"]) == 1, body
                    assert body["reasons"][0].startswith("worker 1: no report for "), body
                    assert (await probe(sp.url, "/healthz"))[0] == 200  # the parent is fine
                finally:
                    os.kill(pid, signal.SIGCONT)
                # ... and ready again once it reports.
                await wait_probe(sp.url, "/readyz", 200, 15)

                sp.signal(signal.SIGTERM)
                assert sp.proc is not None
                async with asyncio.timeout(30):
                    assert await sp.proc.wait() == 0
            assert not sp.errors(), sp.errors()


def _superpeer(streams: int) -> SuperPeer:
    lines = ["[superpeer]", "workers = 2", "[defaults]", 'trackers = ["ws://127.0.0.1:1"]']
    for i in range(streams):
        lines += ["[[stream]]", f'name = "s{i:02d}"', f'url = "http://127.0.0.1:1/{i}.m3u8"']
    return SuperPeer(parse_config("\n".join(lines)))


def test_readiness_rules_on_supervisor_state() -> None:
    sp = _superpeer(3)
    specs = {s.name: s for s in sp.config.streams}
    sp.streams = {name: StreamState(spec, 0, None) for name, spec in specs.items()}
    # No worker process has been started: not ready, one reason per worker and per stream.
    result = readiness(sp, now=100.0)
    assert not result.ready
    assert result.reasons == (
        "worker 0: not running (being restarted)",
        "worker 1: not running (being restarted)",
        "stream s00: starting",
        "stream s01: starting",
        "stream s02: starting",
    )
    connected = {"ws://127.0.0.1:1": TrackerSnapshot(True, {})}
    lost = {"ws://127.0.0.1:1": TrackerSnapshot(False, {})}
    sp.streams["s00"].snapshot = StreamSnapshot("s00", "u", "serving", trackers=connected)
    sp.streams["s01"].snapshot = StreamSnapshot("s01", "u", "retrying", error="HTTP 404")
    sp.streams["s02"].snapshot = StreamSnapshot("s02", "u", "serving", trackers=lost)
    result = readiness(sp, now=100.0)
    assert result.reasons[2:] == ("stream s02: no tracker connected",)
    # A stream whose origin fails is not this member's fault: listed, not blocking.
    assert result.degraded == ("stream s01: retrying (HTTP 404)",)
    assert stale_after(0.25) == 2.0 and stale_after(1.0) == 5.0


def test_readiness_reasons_are_capped() -> None:
    sp = _superpeer(MAX_REASONS + 5)
    sp.streams = {s.name: StreamState(s, 0, None) for s in sp.config.streams}
    body = readiness(sp, now=0.0).to_json()
    assert len(body["reasons"]) == MAX_REASONS + 1
    assert body["reasons"][-1] == f"... and {2 + MAX_REASONS + 5 - MAX_REASONS} more"
    assert body["streams"] == MAX_REASONS + 5
