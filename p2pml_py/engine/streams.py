"""What every role builds on: network options, and one stream served in one or more swarms.

A stream (an hls.js level or audio track) is one swarm per protocol version: 2.2.x and 2.3.x
peers hash swarm ids differently and never meet (SPEC f), but they speak the same wire protocol
and number segments the same way, so :class:`StreamSwarms` backs both swarms with one
:class:`~p2pml_py.engine.store.SegmentStore`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from p2pml_py.base.errors import LocalProtocolError
from p2pml_py.engine.session import DownloadError
from p2pml_py.engine.store import DEFAULT_MAX_BYTES, SegmentStore
from p2pml_py.engine.swarm import Swarm, SwarmConfig
from p2pml_py.hls.playlist import Stream
from p2pml_py.identity import ProtocolVersion, info_hash, stream_swarm_id
from p2pml_py.rtc.config import RtcConfig
from p2pml_py.rtc.transport import Transport
from p2pml_py.tracker.client import TrackerClient

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PeerOptions:
    """Network settings common to seeders and viewers."""

    trackers: tuple[str, ...]
    versions: tuple[ProtocolVersion, ...] = (ProtocolVersion.V2_3,)
    rtc: RtcConfig = field(default_factory=RtcConfig)
    swarm: SwarmConfig = field(default_factory=SwarmConfig)
    #: The page's ``swarmId`` if it sets one; else the manifest URL (after redirects, no query).
    swarm_id: str | None = None
    #: Memory for held segments, per stream.
    store_bytes: int = DEFAULT_MAX_BYTES
    #: The only info hashes this peer may announce (``None``: any). A tracker that blocks
    #: unknown hashes (PeerTube's, :mod:`p2pml_py.apps.peertube.model`) is never sent another:
    #: :class:`StreamSwarms` refuses to build such a swarm, and roles skip such streams.
    only_info_hashes: frozenset[str] | None = None

    def allows(self, swarm_id: str, stream: Stream) -> bool:
        """Whether every swarm of ``stream`` (one per version) may be announced."""
        if self.only_info_hashes is None:
            return True
        return all(
            info_hash(stream_swarm_id(swarm_id, stream.type, stream.index(v)), v)
            in self.only_info_hashes
            for v in self.versions
        )

    def __post_init__(self) -> None:
        if not self.trackers:
            raise ValueError("trackers: at least one tracker URL is needed")
        if not self.versions:
            raise ValueError("versions: at least one protocol version is needed")


@dataclass(frozen=True, slots=True)
class PeerSummary:
    """Bytes exchanged with one remote peer (both protocol versions' swarms merged)."""

    uploaded: int
    downloaded: int
    version: str
    connected: bool
    #: Why the connection ended (:class:`~p2pml_py.engine.outcomes.Closed` as text).
    close_reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        if self.close_reason is None:
            del out["close_reason"]
        return out


class StreamSwarms:
    """One stream's segment store and its swarm in each protocol version."""

    def __init__(
        self,
        stream: Stream,
        swarm_id: str,
        options: PeerOptions,
        tracker: TrackerClient,
        rtc: Transport,
        store: SegmentStore | None = None,
    ) -> None:
        self.stream = stream
        self.store = store or SegmentStore(options.store_bytes)
        self.swarms: list[Swarm] = []
        for version in options.versions:
            swarm_name = stream_swarm_id(swarm_id, stream.type, stream.index(version))
            digest = info_hash(swarm_name, version)
            if options.only_info_hashes is not None and digest not in options.only_info_hashes:
                raise LocalProtocolError(
                    f"not joining swarm {swarm_name!r}: its info hash is not in the allowed set"
                )
            self.swarms.append(
                Swarm(
                    digest,
                    tracker,
                    rtc,
                    self.store,
                    version=version,
                    config=options.swarm,
                    name=f"{version.value}:{stream.label}",
                )
            )

    @property
    def label(self) -> str:
        return self.stream.label

    async def start(self) -> None:
        for swarm in self.swarms:
            await swarm.start()

    async def aclose(self) -> None:
        await asyncio.gather(*(s.aclose() for s in self.swarms), return_exceptions=True)

    # -- peers ----------------------------------------------------------------------------------

    @property
    def peer_count(self) -> int:
        return sum(len(s.peers) for s in self.swarms)

    def peer_has(self, segment_id: int) -> bool:
        return any(s.has_peer_with(segment_id) for s in self.swarms)

    def peer_can_serve(self, segment_id: int) -> bool:
        """An idle peer (no download from it running) announces the segment."""
        return any(not p.busy for s in self.swarms for p in s.peers_with(segment_id))

    def peer_http_loading(self, segment_id: int) -> bool:
        return any(
            segment_id in p.remote_http_loading for s in self.swarms for p in s.peers.values()
        )

    # -- demand signals (a seeder's, p2pml_py.roles.demand) -------------------------------------

    def tracker_others(self, known_seeders: int = 0) -> int | None:
        """Other peers the trackers count in this stream's swarms (summed over the protocol
        versions, ``known_seeders`` discounted in each); ``None`` before any count."""
        counts = [s.tracker_others() for s in self.swarms]
        known = [max(0, c - known_seeders) for c in counts if c is not None]
        return sum(known) if known else None

    @property
    def offers_received(self) -> int:
        """Offers from peers we were not connected to, so far, in every version's swarm."""
        return sum(s.stats.offers_received for s in self.swarms)

    def connected_uploads(self) -> dict[str, int]:
        """Connected peers: peer id -> bytes uploaded to it so far."""
        return {
            peer_id: counters.uploaded
            for swarm in self.swarms
            for peer_id, counters in swarm.stats.peers.items()
            if counters.connected
        }

    def set_http_loading(self, segment_ids: Sequence[int]) -> None:
        ids = tuple(segment_ids)
        for swarm in self.swarms:
            swarm.set_http_loading(ids)

    async def download(self, segment_id: int, *, total_size: int | None = None) -> bytes:
        """From any swarm with a peer that has it; :class:`DownloadError` if none delivers."""
        last: DownloadError | None = None
        for swarm in self.swarms:
            if not swarm.has_peer_with(segment_id):
                continue
            try:
                return await swarm.download(segment_id, total_size=total_size)
            except DownloadError as exc:
                last = exc
        raise last or DownloadError(segment_id, "no-peer")

    # -- reporting ------------------------------------------------------------------------------

    @property
    def uploaded(self) -> int:
        return sum(s.stats.uploaded for s in self.swarms)

    @property
    def downloaded(self) -> int:
        return sum(s.stats.downloaded for s in self.swarms)

    def peer_counters(self) -> dict[str, PeerSummary]:
        """Per remote peer id, both versions' swarms merged (a peer id lives in one of them)."""
        out: dict[str, PeerSummary] = {}
        for swarm in self.swarms:
            for peer_id, counters in swarm.stats.peers.items():
                before = out.get(peer_id)
                out[peer_id] = PeerSummary(
                    uploaded=counters.uploaded + (before.uploaded if before else 0),
                    downloaded=counters.downloaded + (before.downloaded if before else 0),
                    version=before.version if before else swarm.version.value,
                    connected=counters.connected,
                    close_reason=str(counters.close_reason) if counters.close_reason else None,
                )
        return out

    def drops(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for swarm in self.swarms:
            for reason, count in swarm.stats.drops.items():
                out[reason] = out.get(reason, 0) + count
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "type": self.stream.type,
            "playlist_url": self.stream.url,
            "swarms": [
                {"version": s.version.value, "info_hash": s.info_hash, "peer_id": s.peer_id}
                for s in self.swarms
            ],
        }
