"""One interop scenario: pages and Python peers on one origin channel, and their report rows.

:class:`Interop` is what the ``interop`` fixture yields. It names the origin channel after the test
(so no two tests share a swarm), opens pages with the right settings for VOD or live, starts
Python peers (:mod:`p2pml_py.harness.peers`), checks P2P bytes against the origin and turns
everything into :class:`~p2pml_py.harness.report.PeerRow`\\ s.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Iterable, Mapping, Sequence

from p2pml_py.base.aio import Service
from p2pml_py.harness.browser import Chromium, JSONValue, PageStats, PlayerConfig, PlayerPage
from p2pml_py.harness.origin import InteropOrigin
from p2pml_py.harness.pages import Player
from p2pml_py.harness.peers import PeerResult, PythonPeer, PythonPeerConfig
from p2pml_py.harness.report import InteropReport, PeerRow

__all__ = ["LIVE_CORE", "LIVE_HLS", "LIVE_SHAKA", "Interop"]

logger = logging.getLogger(__name__)

#: Live settings that let P2P happen at all (INTEROP-NOTES "Measured on loopback"): with the
#: default 15 s high-demand window every fresh live segment goes to HTTP first.
LIVE_CORE: Mapping[str, JSONValue] = {"highDemandTimeWindow": 4}
LIVE_HLS: Mapping[str, JSONValue] = {"liveSyncDurationCount": 6}
#: The same 6 segments (12 s) behind the live edge for Shaka pages. p2p-media-loader-shaka sets
#: ``manifest.defaultPresentationDelay`` to 25 s (``engine.ts LIVE_EDGE_DELAY``), more than the
#: origin's 20 s live window, which would start playback at the oldest segment.
LIVE_SHAKA: Mapping[str, JSONValue] = {"manifest.defaultPresentationDelay": 12}


def _channel_for(name: str) -> str:
    clean = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")[:48]
    return f"{clean}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"


class Interop(Service):
    """Pages and Python peers of one test; ``aclose()`` stops the Python peers."""

    def __init__(
        self, *, origin: InteropOrigin, chromium: Chromium, report: InteropReport, name: str
    ) -> None:
        self.origin = origin
        self.chromium = chromium
        self.report = report
        self.name = name
        self.channel = _channel_for(name)
        self.pages: list[PlayerPage] = []
        self._pages_opened = 0  # numbers page labels when several pages open at once
        self.python_peers: list[PythonPeer] = []
        self._closed = False

    def manifest_url(self, live: bool) -> str:
        return self.origin.manifest_url(live, self.channel)

    async def open_page(
        self,
        version: str,
        trackers: Sequence[str],
        *,
        live: bool = False,
        level: int | None = 0,
        label: str | None = None,
        core: Mapping[str, JSONValue] | None = None,
        hls: Mapping[str, JSONValue] | None = None,
        swarm_id: str | None = None,
        player: Player = "hlsjs",
        shaka: Mapping[str, JSONValue] | None = None,
        pingback: str | None = None,
    ) -> PlayerPage:
        """Open a page of p2p-media-loader ``version`` ("2.3" or "2.2") on this test's channel,
        with hls.js (``player="hlsjs"``) or Shaka Player (``player="shaka"``, 2.2 only);
        ``pingback``: a collector's report URL, the page attaches ``pingback.js`` to its player."""
        core_config = {**(LIVE_CORE if live else {}), **(core or {})}
        hls_config: dict[str, JSONValue] = {}
        shaka_config: dict[str, JSONValue] = {}
        if player == "shaka":
            shaka_config = {**(LIVE_SHAKA if live else {}), **(shaka or {})}
        else:
            hls_config = {**(LIVE_HLS if live else {}), **(hls or {})}
        config = PlayerConfig(
            version="2.3" if version == "2.3" else "2.2",
            manifest_url=self.manifest_url(live),
            trackers=tuple(trackers),
            level=level,
            swarm_id=swarm_id,
            core=core_config,
            hls=hls_config,
            player=player,
            shaka=shaka_config,
            pingback=pingback,
        )
        self._pages_opened += 1
        page = await self.chromium.open_player(
            self.origin.page_url(config.version, config.player),
            config,
            label or f"page{self._pages_opened}",
        )
        self.pages.append(page)
        return page

    async def start_python(self, config: PythonPeerConfig, label: str | None = None) -> PythonPeer:
        peer = PythonPeer(config, label or f"py{len(self.python_peers) + 1}")
        await peer.start()
        self.python_peers.append(peer)
        return peer

    def python_config(
        self,
        command: str,
        trackers: Sequence[str],
        *,
        protocol: str,
        live: bool = False,
        duration: float = 30.0,
        rendition: Sequence[str] = (),
        live_sync_segments: int | None = None,
    ) -> PythonPeerConfig:
        """A ``p2pml-py`` command line for this test's channel.

        Live viewers get the pages' live tuning (:data:`LIVE_CORE`, :data:`LIVE_HLS`), unless
        ``live_sync_segments`` says how far behind the live edge to play.
        """
        extra: tuple[str, ...] = ()
        if command == "watch" and live:
            sync = live_sync_segments or int(str(LIVE_HLS["liveSyncDurationCount"]))
            window = str(LIVE_CORE["highDemandTimeWindow"])
            extra = ("--high-demand-window", window, "--live-sync-segments", str(sync))
        return PythonPeerConfig(
            command=command,
            manifest_url=self.manifest_url(live),
            trackers=tuple(trackers),
            protocol=protocol,
            duration=duration,
            rendition=tuple(rendition),
            extra_args=extra,
        )

    async def wait_origin_segments(self, live: bool, count: int, timeout: float) -> None:
        """Wait until the origin served ``count`` distinct segments of this test's channel."""
        prefix = self.origin.channel_prefix(live, self.channel)
        async with asyncio.timeout(timeout):
            await self.origin.wait_segment_requests(prefix, count)

    def check_p2p_bytes(self, stats: PageStats) -> list[str]:
        """Segments a page received over P2P whose SHA-256 differs from the origin's file."""
        bad = []
        for url, digest in stats.p2p_segments.items():
            expected = self.origin.expected_sha256(url)
            if expected != digest:
                bad.append(f"{url}: got {digest}, origin has {expected}")
        return bad

    def check_peer_segments(self, result: PeerResult) -> list[str]:
        """Segments a Python peer holds whose SHA-256 differs from the origin's file."""
        bad = []
        for playlist, held in result.segments.items():
            for segment_id, digest in held.items():
                expected = self.origin.segment_sha256(playlist, segment_id)
                if expected != digest:
                    bad.append(f"{playlist} {segment_id}: got {digest}, origin has {expected}")
        return bad

    def page_row(
        self, page: PlayerPage, stats: PageStats, python_ids: Iterable[str] = ()
    ) -> PeerRow:
        ids = set(python_ids)
        return PeerRow(
            scenario=self.name,
            peer=page.label,
            version=page.config.label,
            mode="live" if "/live/" in page.config.manifest_url else "VOD",
            http_bytes=stats.http_bytes,
            p2p_bytes=stats.p2p_bytes,
            from_python=stats.bytes_from(ids) if ids else None,
            uploaded=stats.uploaded_bytes,
            stalls=stats.stalls,
        )

    def peer_row(self, peer: PythonPeer, result: PeerResult) -> PeerRow:
        return PeerRow(
            scenario=self.name,
            peer=f"{peer.label} ({peer.config.command})",
            version=f"py {peer.config.protocol}",
            mode="live" if "/live/" in peer.config.manifest_url else "VOD",
            http_bytes=result.http_bytes,
            p2p_bytes=result.p2p_bytes,
            from_python=None,
            uploaded=result.uploaded_bytes,
            stalls=result.stalls,
        )

    def record(self, rows: Iterable[PeerRow]) -> list[PeerRow]:
        listed = list(rows)
        self.report.add(listed)
        return listed

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        for peer in self.python_peers:
            await peer.aclose()
