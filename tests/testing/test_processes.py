"""The super-peer process driver (:mod:`p2pml_py.testing.processes`) on a real super-peer: one
worker, one VOD stream from a synthetic origin, the embedded tracker, all on 127.0.0.1."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from p2pml_py.testing.origin import Rendition, SyntheticOrigin
from p2pml_py.testing.processes import Record, SuperPeerProcess
from p2pml_py.tracker.server import TrackerServer

RENDITION = (Rendition("360p", bandwidth=800_000, width=640, height=360),)


def write_config(path: Path, tracker: str, origin: str, *extra: str) -> Path:
    lines = [
        "[superpeer]",
        "workers = 1",
        'listen = "127.0.0.1:0"',
        "stats_interval = 0.25",
        "[[stream]]",
        'name = "vod"',
        f'url = "{origin}"',
        f'trackers = ["{tracker}"]',
        'ice_addresses = ["127.0.0.1"]',
        "store_mb = 16",
        'validate = "length"',  # synthetic segments are not media
        *extra,
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


async def test_url_records_wait_and_terminate(tmp_path: Path) -> None:
    async with (
        SyntheticOrigin(renditions=RENDITION, vod_segments=4) as origin,
        TrackerServer() as tracker,
    ):
        config = write_config(tmp_path / "superpeer.toml", tracker.url, origin.url)
        async with SuperPeerProcess(config) as sp:
            assert sp.url.startswith("http://127.0.0.1:") and sp.running
            status = await sp.status()
            assert [s["name"] for s in status["streams"]] == ["vod"]

            def serving(r: Record) -> bool:
                return r.get("event") == "stream_serving"

            found = await sp.wait_log(serving, 30)
            assert found["stream"] == "vod"
            # From the oldest kept record: one logged before the wait is found at once.
            listening = await sp.wait_log(lambda r: r.get("event") == "http_listening", 1)
            assert listening["url"] == sp.url
            assert await sp.terminate(30) == 0
            assert not sp.running and sp.ended and not sp.killed
            # terminate returned once the log was read to its end: the worker's last line too.
            events = [r.get("event") for r in sp.records]
            assert events[0] == "superpeer_started" and events[-1] == "superpeer_stopped"
            assert "worker_stopped" in events and sp.dropped == 0
            # The log is over: a wait for a record that never came fails at once.
            with pytest.raises(RuntimeError, match="log ended"):
                await sp.wait_log(lambda r: r.get("event") == "no such event", 30)
            assert sp.errors() == [] and sp.problems_dropped == 0
        assert sp.proc is not None and sp.proc.returncode == 0  # the exit left it as it was


async def test_kill_takes_the_process_group_and_env_reaches_it(tmp_path: Path) -> None:
    async with (
        SyntheticOrigin(renditions=RENDITION, vod_segments=4) as origin,
        TrackerServer() as tracker,
    ):
        fleet = ["[fleet]", 'members = ["member-7"]']  # its own id comes from HOSTNAME
        config = write_config(tmp_path / "superpeer.toml", tracker.url, origin.url, *fleet)
        async with SuperPeerProcess(
            config, env={"HOSTNAME": "member-7"}, new_session=True, keep_records=1
        ) as sp:
            status = await sp.status()
            assert status["fleet"]["self"] == "member-7"
            assert status["workers"][0]["pid"] > 0
            sp.kill()
            # The worker shares the parent's stderr: the log ends only once it is gone too.
            with pytest.raises(RuntimeError, match="log ended"):
                await sp.wait_log(lambda r: False, 30)
            assert sp.ended
        assert sp.proc is not None and sp.proc.returncode == -signal.SIGKILL
        # Bounded: the last record kept, the others (at least superpeer_started and
        # http_listening, logged before start returned) counted.
        assert len(sp.records) == 1 and sp.dropped >= 2


async def test_a_process_that_exits_at_start_fails_start_with_its_message(tmp_path: Path) -> None:
    config = tmp_path / "superpeer.toml"
    config.write_text("[superpeer]\nworkers = 1\n")
    sp = SuperPeerProcess(config)
    with pytest.raises(
        RuntimeError, match=r"at least one \[\[stream\]\] \(or \[\[peertube\]\]\) table is needed"
    ):
        async with sp:
            pass
    assert sp.proc is not None and sp.proc.returncode == 2
    assert sp.errors() and sp.errors()[0]["level"] == "raw"
