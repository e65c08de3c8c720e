"""``p2pml-py peertube URL...``: seed PeerTube videos to the browsers that watch them.

Resolves the URLs (:mod:`p2pml_py.apps.peertube.plan`), prints one line per video it seeds and
per video it skips (with the reason), then runs one seeder per video in this process until
Ctrl-C/SIGTERM or ``--duration``: the instance's own tracker(s), the player's swarm id (the
master playlist URL), p2p-media-loader 2.2, every segment checked against the video's
``segments-sha256.json`` before it is stored or served, and no swarm the instance does not know.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiohttp

from p2pml_py.apps.peertube.client import Credentials, credentials_middleware
from p2pml_py.apps.peertube.model import hex_info_hash
from p2pml_py.apps.peertube.plan import (
    DEFAULT_LIMIT,
    Plan,
    PlannedVideo,
    build_seeder,
    plan_videos,
)
from p2pml_py.base.limits import SERVER_MAX_CONNECTIONS, SERVER_MAX_PEERS
from p2pml_py.base.version import USER_AGENT

__all__ = ["add_parser", "cmd_peertube"]

EPILOG = (
    "What is announced: for each video, only the swarms PeerTube's player builds (swarm id = "
    "the master playlistUrl, p2p-media-loader 2.2: PeerTube 7.1 to 8.x) and only those the "
    "instance's tracker knows (asked over its HTTP announce endpoint first, which never blocks): "
    "a WebSocket announce of an unknown swarm makes PeerTube's tracker block the IP for 3 "
    "minutes. Segments are checked against the video's segments-sha256.json before they are "
    "stored or uploaded; a mismatch is logged, counted and refetched, never served. Skipped with "
    "a line saying why: remote videos (seed them on their own instance), videos without HLS or "
    "without a segments-sha256 file, unpublished ones, unlisted ones found in listings, and "
    "private/internal/password-protected ones unless --token or --video-password is given. "
    "The API is asked at most 2 requests/s, 429 answers wait their Retry-After."
)


def add_parser(commands: Any) -> None:
    from p2pml_py.apps.cli import _fetch_mode, _positive

    parser = commands.add_parser(
        "peertube",
        help="seed PeerTube videos (a video, channel, account or instance URL)",
        description=(
            "Seed the HLS videos of a PeerTube instance (7.1 or later) to the browsers watching "
            "them: give video URLs (/w/<id>, /videos/watch/<id>, /api/v1/videos/<id>), channel "
            "(/c/<name>) or account (/a/<name>) URLs, or the instance's root URL (its local "
            "videos, newest first). Ctrl-C or SIGTERM leaves cleanly."
        ),
        epilog=EPILOG,
    )
    parser.add_argument("urls", nargs="+", metavar="URL", help="PeerTube URLs (see above)")
    parser.add_argument(
        "--limit",
        type=_positive(int),
        default=DEFAULT_LIMIT,
        help=f"videos taken from each channel/account/instance URL (default: {DEFAULT_LIMIT})",
    )
    parser.add_argument(
        "--token",
        metavar="TOKEN",
        help="an OAuth access token of the instance, to seed private and internal videos "
        "(sent to the instance's own origin only)",
    )
    parser.add_argument(
        "--video-password", metavar="PASSWORD", help="the password of password-protected videos"
    )
    parser.add_argument(
        "--no-probe",
        dest="probe",
        action="store_false",
        help="do not ask the instance's HTTP tracker which swarms it knows (PeerTube's recipe "
        "alone decides; live videos are then skipped)",
    )
    parser.add_argument(
        "--ice-address",
        action="append",
        default=[],
        metavar="ADDR",
        help="local address ICE gathers candidates on (repeatable; default: every non-loopback "
        "interface address)",
    )
    parser.add_argument(
        "--ice-server",
        action="append",
        default=[],
        metavar="URL",
        help="STUN/TURN server (repeatable; default: none)",
    )
    parser.add_argument(
        "--max-peers",
        type=_positive(int),
        default=SERVER_MAX_PEERS,
        help=f"peers per swarm (default: {SERVER_MAX_PEERS})",
    )
    parser.add_argument(
        "--max-connections",
        type=_positive(int),
        default=SERVER_MAX_CONNECTIONS,
        help=f"peer connections of the whole process, all videos together (default: "
        f"{SERVER_MAX_CONNECTIONS}); at a limit new offers go unanswered, no peer is dropped",
    )
    parser.add_argument(
        "--store-mb",
        type=_positive(float),
        default=256.0,
        help="memory for held segments per rendition, MB (default: 256)",
    )
    parser.add_argument(
        "--fetch",
        type=_fetch_mode,
        default="auto",
        metavar="auto|all|demand",
        help="which segments to fetch from the instance: as 'seed --fetch' (default: auto = "
        "demand for live, all for VOD)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="resolve and print what would be seeded (and its info hashes), then exit",
    )
    parser.add_argument(
        "--duration", type=_positive(float), help="leave cleanly after this many seconds"
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON summary object per video at exit"
    )
    parser.add_argument(
        "--status",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a status line every second on stderr (default: when stderr is a terminal)",
    )
    parser.set_defaults(handler=cmd_peertube)


def _credentials(args: argparse.Namespace) -> Credentials:
    return Credentials(token=args.token, video_password=args.video_password)


@contextlib.asynccontextmanager
async def _session(base_url: str | None, credentials: Credentials) -> AsyncIterator[Any]:
    middlewares = (
        (credentials_middleware(base_url, credentials),) if credentials and base_url else ()
    )
    async with aiohttp.ClientSession(
        headers={"User-Agent": USER_AGENT}, middlewares=middlewares
    ) as session:
        yield session


def print_plan(plan: Plan) -> None:
    for skipped in plan.skipped:
        print(f"peertube: {skipped}", file=sys.stderr, flush=True)
    for planned in plan.videos:
        how = "confirmed by its tracker" if planned.confirmed else "PeerTube's recipe"
        print(
            f"peertube: seeding {planned.video.label} on {planned.instance}: "
            f"{len(planned.info_hashes)} swarm(s) ({how}), tracker "
            f"{', '.join(planned.trackers)}",
            file=sys.stderr,
            flush=True,
        )


def cmd_peertube(args: argparse.Namespace) -> int:
    from p2pml_py.apps.cli import CliError

    try:
        return asyncio.run(_peertube(args))
    except ValueError as exc:  # a URL that names nothing PeerTube serves
        raise CliError(str(exc)) from None


async def _peertube(args: argparse.Namespace) -> int:
    from p2pml_py.apps.cli import CliError

    credentials = _credentials(args)
    bases = {_base(url) for url in args.urls}
    async with _session(next(iter(bases)) if len(bases) == 1 else None, credentials) as session:
        if credentials and len(bases) > 1:
            raise CliError("--token/--video-password go with URLs of one instance only")
        plan = await plan_videos(
            session, args.urls, limit=args.limit, credentials=credentials, probe=args.probe
        )
        print_plan(plan)
        if args.dry_run:
            for planned in plan.videos:
                hashes = sorted(hex_info_hash(h) for h in planned.info_hashes)
                print(
                    json.dumps(
                        {
                            "video": planned.video.uuid,
                            "manifest": planned.manifest_url,
                            "integrity": planned.integrity_url,
                            "trackers": list(planned.trackers),
                            "protocol": planned.version.value,
                            "info_hashes": hashes,
                        }
                    )
                )
            return 0
        if not plan.videos:
            raise CliError("nothing to seed (see the lines above)")
        return await _seed(plan.videos, args, session)


def _base(url: str) -> str:
    from p2pml_py.apps.peertube.model import parse_target

    return parse_target(url).base_url


async def _seed(videos: Sequence[PlannedVideo], args: argparse.Namespace, session: Any) -> int:
    from p2pml_py.apps.cli import _print_summary, _stop_on_signals
    from p2pml_py.engine.swarm import ConnectionBudget, SwarmConfig
    from p2pml_py.rtc.config import RtcConfig

    rtc = RtcConfig(ice_servers=tuple(args.ice_server), ice_addresses=tuple(args.ice_address))
    swarm = SwarmConfig(
        max_peers=args.max_peers, connections=ConnectionBudget(args.max_connections)
    )
    seeders = [
        build_seeder(
            planned,
            rtc=rtc,
            swarm=swarm,
            store_bytes=int(args.store_mb * 1024 * 1024),
            fetch=args.fetch,
            session=session,
        )
        for planned in videos
    ]
    stop = _stop_on_signals()
    started = []
    try:
        for seeder in seeders:
            await seeder.start()
            started.append(seeder)
        status = asyncio.create_task(_status(seeders, args.status))
        try:
            await asyncio.wait_for(stop.wait(), timeout=args.duration)
        except TimeoutError:
            pass
        finally:
            status.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await status
    finally:
        summaries = [seeder.summary() for seeder in started]
        await asyncio.gather(*(seeder.aclose() for seeder in seeders), return_exceptions=True)
    for summary in summaries:
        _print_summary(summary, args.json)
    return 0


async def _status(seeders: Sequence[Any], enabled: bool) -> None:
    if not enabled:
        return
    last = sum(s.uploaded for s in seeders)
    while True:
        await asyncio.sleep(1.0)
        up = sum(s.uploaded for s in seeders)
        print(
            f"videos {len(seeders)} | peers {sum(s.peer_count for s in seeders)} | "
            f"up {(up - last) / 1e6:.2f} MB/s | held {sum(s.segments_held for s in seeders)}",
            file=sys.stderr,
            flush=True,
        )
        last = up
