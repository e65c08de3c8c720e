"""A fleet of three super-peer processes on loopback, sharing one config of six live streams with
``replicas = 2`` and a membership file the test rewrites the way Kubernetes updates a headless
Service's ready endpoints. Who announces what is read from the tracker's registry.

* every stream is announced by exactly its two rendezvous-ranked members;
* one member is killed (SIGKILL to its process group: parent and workers, like a lost pod) and
  dropped from the file: its streams are announced by the others within 10 s, and the seats
  that did not involve it keep their peer ids (no re-join);
* it comes back (restarted, then listed again): it takes back exactly its own seats, each from
  the member ranked just below it, and nothing else moves;
* ``p2pml-py watch`` viewers on two streams (one the killed member served, one it did not) see
  no stall throughout, and no stream is ever left without a member once it was announced.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

import aiohttp

from p2pml_py.apps.superpeer.fleet import assign
from p2pml_py.testing.origin import SyntheticOrigin
from p2pml_py.testing.processes import SuperPeerProcess
from p2pml_py.tracker.server import TrackerServer
from tests.superpeer.test_superpeer import LIVE_ARGS, RENDITION, summary_of, watch

STREAMS = [f"s{i}" for i in range(6)]
REPLICAS = 2
Owners = dict[str, frozenset[str]]


def new_member(name: str, config: Path) -> SuperPeerProcess:
    """One super-peer process of the fleet, in its own process group (so SIGKILL takes its
    workers too, as when a pod dies). Its id is ``HOSTNAME``, as in a StatefulSet pod."""
    return SuperPeerProcess(config, env={"HOSTNAME": name}, new_session=True)


class Fleet:
    """What the tracker says about the fleet: per stream, the members announcing it.

    A peer id is mapped to the member whose ``/status`` reported it; the map only grows, so the
    peer id of a member that left is still recognised (and counted) while the tracker holds it.
    """

    def __init__(self, tracker: TrackerServer, members: dict[str, SuperPeerProcess]) -> None:
        self.tracker = tracker
        self.members = members
        self.owner_of: dict[str, str] = {}  # peer id -> member
        self.info_hash: dict[str, str] = {}  # stream -> its one swarm's info hash
        self.viewers: dict[str, int] = dict.fromkeys(STREAMS, 0)
        #: The fewest members seen announcing each stream since ``watch_floor``.
        self.floor: dict[str, int] = {}

    async def learn(self, http: aiohttp.ClientSession) -> None:
        for name, member in self.members.items():
            if not member.running or not member.url:
                continue
            with contextlib.suppress(aiohttp.ClientError):
                status = await member.status(http)
                for stream in status["streams"]:
                    for rendition in stream["renditions"]:
                        for swarm in rendition["swarms"]:
                            self.owner_of[swarm["peer_id"]] = name
                            self.info_hash[stream["name"]] = swarm["info_hash"]

    def holders(self) -> dict[str, dict[str, str]]:
        """stream -> {member: its peer id at the tracker}."""
        out: dict[str, dict[str, str]] = {}
        for stream in STREAMS:
            peers = self.tracker.registry.peers_of(self.info_hash.get(stream, ""))
            out[stream] = {self.owner_of[p]: p for p in peers if p in self.owner_of}
        return out

    def exact(self, expected: Owners) -> bool:
        """Each stream announced by exactly its expected members, nothing stale at the tracker
        (its peers are those members and its viewers)."""
        holders = self.holders()
        for stream in STREAMS:
            peers = self.tracker.registry.peers_of(self.info_hash.get(stream, ""))
            if set(holders[stream]) != expected[stream]:
                return False
            if len(peers) != len(expected[stream]) + self.viewers[stream]:
                return False
        return True

    async def wait_for(self, expected: Owners, timeout: float) -> dict[str, dict[str, str]]:
        """Poll ``/status`` and the tracker until :meth:`exact` holds (bounded)."""
        async with aiohttp.ClientSession() as http, asyncio.timeout(timeout):
            while True:
                await self.learn(http)
                self.note_floor()
                if len(self.info_hash) == len(STREAMS) and self.exact(expected):
                    return self.holders()
                await asyncio.sleep(0.2)  # the next look at the statuses and the tracker

    def note_floor(self) -> None:
        for stream, held in self.holders().items():
            if stream in self.floor:
                self.floor[stream] = min(self.floor[stream], len(held))


async def uploaded(
    http: aiohttp.ClientSession, members: list[SuperPeerProcess], stream: str
) -> int:
    """Bytes the members uploaded to peers of ``stream``."""
    total = 0
    for member in members:
        status = await member.status(http)
        total += sum(s["uploaded_bytes"] for s in status["streams"] if s["name"] == stream)
    return total


def owners_of(members: str) -> Owners:
    return {s: frozenset(o) for s, o in assign(dict.fromkeys(STREAMS, REPLICAS), members).items()}


def publish(path: Path, members: str) -> None:
    """Replace the membership file at once (a kubelet swaps a projected volume atomically)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(f"{m}\n" for m in members))
    tmp.replace(path)


def write_config(path: Path, tracker: str, origin: str) -> None:
    lines = [
        "[superpeer]",
        "workers = 1",
        'listen = "127.0.0.1:0"',
        "stats_interval = 0.25",
        "[defaults]",
        f'trackers = ["{tracker}"]',
        'ice_addresses = ["127.0.0.1"]',
        "store_mb = 16",
        'validate = "length"',  # synthetic segments are not media
        f"replicas = {REPLICAS}",
        "[fleet]",
        'members_file = "members"',  # relative to this file
        "refresh = 0.5",
    ]
    for stream in STREAMS:  # one origin; the swarm ids keep the six swarms apart
        lines += ["[[stream]]", f'name = "{stream}"', f'url = "{origin}"', f'swarm_id = "{stream}"']
    path.write_text("\n".join(lines) + "\n")


async def test_fleet_shares_streams_survives_a_lost_member_and_rebalances(
    tmp_path: Path,
) -> None:
    loop = asyncio.get_running_loop()
    full, without_b = owners_of("abc"), owners_of("ac")
    mine_b = {s for s in STREAMS if "b" in full[s]}
    # One viewer on a stream b serves, one on a stream it does not.
    watched = (sorted(mine_b)[0], sorted(set(STREAMS) - mine_b)[0])

    async with (
        SyntheticOrigin(
            renditions=RENDITION, live=True, window=10, segment_duration=2.0, segment_size=64 * 1024
        ) as origin,
        TrackerServer() as tracker,
    ):
        config = tmp_path / "superpeer.toml"
        write_config(config, tracker.url, origin.url)
        membership = tmp_path / "members"
        publish(membership, "abc")
        members = {name: new_member(name, config) for name in "abc"}
        fleet = Fleet(tracker, members)
        viewers: list[asyncio.subprocess.Process] = []
        try:
            await asyncio.gather(*(m.start() for m in members.values()))
            first = await fleet.wait_for(full, 45)
            fleet.floor = dict.fromkeys(STREAMS, REPLICAS)  # from now on no stream goes dark

            for stream in watched:
                viewers.append(
                    await watch(origin.url, tracker.url, *LIVE_ARGS, "--swarm-id", stream)
                )
                fleet.viewers[stream] = 1
            await fleet.wait_for(full, 30)  # the viewers announced too
            # ... and play: each takes segments from the members serving its stream. (Replicas
            # of one stream also connect to each other, so a peer count does not tell.)
            async with aiohttp.ClientSession() as http, asyncio.timeout(30):
                while True:
                    got = [await uploaded(http, [members[m] for m in full[s]], s) for s in watched]
                    if all(got):
                        break
                    await asyncio.sleep(0.25)  # the next worker report

            # b is lost: killed with its workers, then dropped from the ready endpoints.
            killed_at = loop.time()
            members["b"].kill()
            publish(membership, "ac")
            second = await fleet.wait_for(without_b, 10)
            took = loop.time() - killed_at
            assert took < 10
            for stream in STREAMS:  # a and c kept the seats they had: same peer ids
                for name in full[stream] - {"b"}:
                    assert second[stream][name] == first[stream][name], (stream, name)

            # b comes back: it serves its share at once (it counts itself in), and the others
            # let go of exactly those seats once the file lists it again.
            await members["b"].aclose()
            members["b"] = new_member("b", config)
            await members["b"].start()
            # Before the file lists it (Kubernetes: before its readiness probe passes), b
            # already serves its share next to the others: the handover overlaps.
            overlap = {s: full[s] | without_b[s] for s in STREAMS}
            await fleet.wait_for(overlap, 30)
            listed_at = loop.time()
            publish(membership, "abc")
            third = await fleet.wait_for(full, 20)
            rebalanced = loop.time() - listed_at
            moved = {s for s in STREAMS if set(third[s]) != set(second[s])}
            assert moved == mine_b
            for stream in STREAMS:
                kept = set(second[stream]) & set(third[stream])
                assert kept == full[stream] - {"b"}, stream  # one seat handed back, if any
                for name in kept:
                    assert third[stream][name] == second[stream][name], (stream, name)
            assert min(fleet.floor.values()) >= 1, fleet.floor

            async with aiohttp.ClientSession() as http:
                status = await members["b"].status(http)
            assert status["fleet"]["self"] == "b" and status["fleet"]["members"] == ["a", "b", "c"]
            assert status["fleet"]["assigned"] == sorted(mine_b)

            for proc in viewers:
                proc.send_signal(signal.SIGINT)
            summaries = [await summary_of(proc, 30) for proc in viewers]
            for name in "abc":
                assert await members[name].terminate(30) == 0
                assert not members[name].errors(), members[name].errors()
        finally:
            for proc in viewers:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
            for each in members.values():
                await each.aclose()
    print(
        f"\nlost member's streams announced by the others after {took:.1f} s; "
        f"{len(mine_b)} seat(s) handed back {rebalanced:.1f} s after it was listed again"
    )
    for stream, summary in zip(watched, summaries, strict=True):
        assert summary["stalls"] == 0, (stream, summary)
        assert summary["p2p_bytes"] > 0, (stream, summary)
