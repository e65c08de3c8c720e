"""From PeerTube URLs to what a seeder needs: the videos, their swarms, trackers and integrity list.

For every instance named: its version (``GET /api/v1/config``) picks the protocol or refuses the
instance (:func:`~p2pml_py.apps.peertube.model.protocol_for_server`); every video named or listed
is fetched (``GET /api/v1/videos/{id}``) and kept or skipped with a reason
(:func:`~p2pml_py.apps.peertube.model.skip_reason`). A kept video's swarms are the ones its
instance's server computed (:func:`~p2pml_py.apps.peertube.model.known_info_hashes`), minus any
the instance's HTTP tracker says it does not know (:func:`~p2pml_py.apps.peertube.client.
probe_info_hashes`): the seeder is then built with ``only_info_hashes`` set to what is left, so
no other swarm can ever be announced to the WebSocket tracker, which would block our IP.

A live video's API object lists no files (the server computes its hashes from the resolutions
it transcodes, ``server/core/lib/live/live-manager.ts``): its candidates are ``main-0`` to
``main-<n-1>`` for the ``n`` variants of its master playlist, and only those the HTTP tracker
confirms are kept (without a tracker to ask, a live video is skipped: no guessing).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp

from p2pml_py.apps.peertube.client import (
    API_RATE,
    Credentials,
    PeerTubeClient,
    probe_info_hashes,
    read_capped,
)
from p2pml_py.apps.peertube.model import (
    InstanceTarget,
    PeerTubeError,
    TargetKind,
    UnsupportedInstanceError,
    Video,
    hex_info_hash,
    known_info_hashes,
    parse_target,
    protocol_for_server,
    skip_reason,
)
from p2pml_py.base.version import USER_AGENT
from p2pml_py.engine.store import DEFAULT_MAX_BYTES
from p2pml_py.engine.streams import PeerOptions
from p2pml_py.engine.swarm import SwarmConfig
from p2pml_py.hls.source import SourceConfig
from p2pml_py.identity import ProtocolVersion
from p2pml_py.roles.demand import FetchMode
from p2pml_py.roles.seeder import Seeder
from p2pml_py.rtc.config import RtcConfig

__all__ = ["DEFAULT_LIMIT", "Plan", "PlannedVideo", "Skipped", "build_seeder", "plan_videos"]

logger = logging.getLogger(__name__)

#: Videos taken from a channel, an account or an instance when no ``--limit`` is given.
DEFAULT_LIMIT = 10
#: Variants counted in a live master playlist at most (PeerTube transcodes up to 9 resolutions).
MAX_LIVE_VARIANTS = 16


@dataclass(frozen=True, slots=True)
class PlannedVideo:
    """A video to seed, and exactly the swarms it may join."""

    video: Video
    instance: str
    version: ProtocolVersion
    #: Info hashes (20-character tracker strings) the seeder may announce.
    info_hashes: frozenset[str]
    #: Whether the instance's HTTP tracker confirmed them (else PeerTube's recipe alone).
    confirmed: bool

    @property
    def manifest_url(self) -> str:
        assert self.video.playlist_url is not None
        return self.video.playlist_url

    @property
    def integrity_url(self) -> str:
        assert self.video.segments_sha256_url is not None
        return self.video.segments_sha256_url

    @property
    def trackers(self) -> tuple[str, ...]:
        return self.video.ws_trackers


def build_seeder(
    planned: PlannedVideo,
    *,
    rtc: RtcConfig | None = None,
    swarm: SwarmConfig | None = None,
    store_bytes: int = DEFAULT_MAX_BYTES,
    fetch: FetchMode | str = FetchMode.AUTO,
    session: aiohttp.ClientSession | None = None,
    source_config: SourceConfig | None = None,
) -> Seeder:
    """The seeder of one planned video: its instance's tracker(s), the player's swarm id,
    p2p-media-loader 2.2, every segment checked against ``segments-sha256.json`` (on top of the
    container checks), and no swarm outside ``planned.info_hashes``."""
    config = dataclasses.replace(source_config or SourceConfig(), integrity=planned.integrity_url)
    return Seeder(
        planned.manifest_url,
        PeerOptions(
            trackers=planned.trackers,
            versions=(planned.version,),
            rtc=rtc or RtcConfig(),
            swarm=swarm or SwarmConfig(),
            swarm_id=planned.manifest_url,
            store_bytes=store_bytes,
            only_info_hashes=planned.info_hashes,
        ),
        source_config=config,
        fetch=fetch,
        session=session,
    )


@dataclass(frozen=True, slots=True)
class Skipped:
    what: str
    reason: str

    def __str__(self) -> str:
        return f"skipping {self.what}: {self.reason}"


@dataclass(slots=True)
class Plan:
    videos: list[PlannedVideo] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    #: API requests made, per instance (tests check we stay polite).
    requests: dict[str, int] = field(default_factory=dict)


async def plan_videos(
    session: aiohttp.ClientSession,
    urls: Sequence[str],
    *,
    limit: int = DEFAULT_LIMIT,
    credentials: Credentials | None = None,
    probe: bool = True,
    api_rate: float | None = None,
) -> Plan:
    """Resolve ``urls`` (module doc). Bad URLs raise :class:`ValueError` before any request;
    an instance that cannot be used is skipped with its reason."""
    targets = [parse_target(url) for url in urls]
    credentials = credentials or Credentials()
    plan = Plan()
    seen: set[str] = set()
    by_instance: dict[str, list[InstanceTarget]] = {}
    for target in targets:
        by_instance.setdefault(target.base_url, []).append(target)
    for base_url, instance_targets in by_instance.items():
        client = PeerTubeClient(
            session, base_url, credentials=credentials, rate=api_rate or API_RATE
        )
        try:
            await _plan_instance(client, instance_targets, limit, probe, plan, seen, session)
        except UnsupportedInstanceError as exc:
            plan.skipped.append(Skipped(f"instance {base_url}", str(exc)))
        finally:
            plan.requests[base_url] = client.requests
    return plan


async def _plan_instance(
    client: PeerTubeClient,
    targets: list[InstanceTarget],
    limit: int,
    probe: bool,
    plan: Plan,
    seen: set[str],
    session: aiohttp.ClientSession,
) -> None:
    server = await client.server_version()
    version = protocol_for_server(server)
    logger.info("%s runs PeerTube %s: p2p-media-loader %s", client.base_url, server, version.value)
    for target in targets:
        named = target.kind is TargetKind.VIDEO
        if named:
            idents = [target.ident]
        else:
            refs = await client.listing(target, limit)
            logger.info("%s: %d video(s)", target, len(refs))
            idents = [ref.uuid for ref in refs]
        for ident in idents:
            try:
                video = await client.video(ident)
            except PeerTubeError as exc:
                plan.skipped.append(Skipped(f"video {ident} on {client.base_url}", str(exc)))
                continue
            if video.uuid in seen:
                continue
            seen.add(video.uuid)
            reason = skip_reason(video, named=named, credentials=bool(client.credentials))
            if reason is None:
                planned, reason = await _swarms(session, client, video, version, probe)
                if planned is not None:
                    plan.videos.append(planned)
                    continue
            assert reason is not None
            plan.skipped.append(Skipped(f"video {video.label} on {client.base_url}", reason))


async def _swarms(
    session: aiohttp.ClientSession,
    client: PeerTubeClient,
    video: Video,
    version: ProtocolVersion,
    probe: bool,
) -> tuple[PlannedVideo | None, str | None]:
    candidates = set(known_info_hashes(video, version))
    if video.is_live and not video.files:
        count = await _live_variants(session, video)
        candidates = set(known_info_hashes(video, version, files=count))
        if not probe:
            return None, "is live: its swarms can only be confirmed by the tracker (no --no-probe)"
    if not probe:
        return PlannedVideo(video, client.base_url, version, frozenset(candidates), False), None
    verdict = await probe_info_hashes(session, video.http_trackers, candidates, version)
    if verdict.unavailable is not None:
        if video.is_live:
            return None, f"is live and its tracker cannot be asked ({verdict.unavailable})"
        logger.info(
            "%s: could not ask the HTTP tracker (%s): announcing the %d swarm(s) PeerTube "
            "computes for it",
            video.label,
            verdict.unavailable,
            len(candidates),
        )
        return PlannedVideo(video, client.base_url, version, frozenset(candidates), False), None
    if verdict.unknown:
        logger.warning(
            "%s: the instance's tracker does not know %d of the %d swarm(s) PeerTube computes "
            "(%s): they will not be announced",
            video.label,
            len(verdict.unknown),
            len(candidates),
            ", ".join(sorted(hex_info_hash(h) for h in verdict.unknown)),
        )
    if not verdict.known:
        return None, "the instance's tracker knows none of its swarms"
    return PlannedVideo(video, client.base_url, version, verdict.known, True), None


async def _live_variants(session: aiohttp.ClientSession, video: Video) -> int:
    assert video.playlist_url is not None
    headers = {"User-Agent": USER_AGENT}
    try:
        async with session.get(video.playlist_url, headers=headers) as response:
            if response.status != 200:
                raise PeerTubeError(f"{video.playlist_url}: HTTP {response.status}")
            body = await read_capped(response, 1024 * 1024, video.playlist_url)
            text = body.decode("utf-8", "replace")
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise PeerTubeError(f"{video.playlist_url}: {exc!r}") from None
    count = sum(1 for line in text.splitlines() if line.startswith("#EXT-X-STREAM-INF"))
    return min(max(count, 1), MAX_LIVE_VARIANTS)
