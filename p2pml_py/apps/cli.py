"""Command-line interface: ``p2pml-py <command>`` (each command package -- superpeer, collector,
peertube -- prints through its own ``cli`` module; nothing below ``apps`` prints)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from p2pml_py import __version__
from p2pml_py.base.errors import P2PMLError, SourceError
from p2pml_py.base.limits import DEFAULT_MAX_PEERS, SERVER_MAX_CONNECTIONS, SERVER_MAX_PEERS
from p2pml_py.identity import ProtocolVersion
from p2pml_py.rtc.aiortc_backend.tuning import NO_TUNING_ENV, tune_process_unless_disabled

if TYPE_CHECKING:
    from p2pml_py.hls.source import SourceConfig
    from p2pml_py.roles.seeder import Seeder
    from p2pml_py.roles.summary import DemoSummary, SeederSummary, ViewerSummary
    from p2pml_py.roles.viewer import Viewer

logger = logging.getLogger("p2pml_py")


class CliError(P2PMLError):
    """A bad argument or an unusable source: one line on stderr, exit status 2."""


def _versions(text: str) -> list[ProtocolVersion]:
    if text == "all":
        return [ProtocolVersion.V2_3, ProtocolVersion.V2_2]
    try:
        return [ProtocolVersion.parse(text)]
    except (P2PMLError, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"expected 2.3, 2.2 or all, got {text!r}") from exc


# -- swarm-id ---------------------------------------------------------------------------------


def _load_source(source: str, url: str | None) -> tuple[str, str]:
    """``(playlist text, manifest URL browsers see)`` for a URL or a local file."""
    if source.startswith(("http://", "https://")):
        from p2pml_py.hls.fetcher import fetch_text

        text, final_url = asyncio.run(fetch_text(source))
        return text, url or final_url
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise CliError(f"cannot read {source}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise CliError(f"{source} is not a UTF-8 playlist") from exc
    if url is None:
        raise CliError(
            f"{source} is a local file: give --url, the manifest URL browsers load it from "
            "(the swarm id is derived from it)"
        )
    return text, url


def cmd_swarm_id(args: argparse.Namespace) -> int:
    from p2pml_py.hls.playlist import parse_master_playlist, stream_identities
    from p2pml_py.hls.select import SELECTOR_HELP, describe_rendition

    text, manifest_url = _load_source(args.source, args.url)
    versions = [v for group in args.version for v in group] or _versions("all")
    identities = stream_identities(text, manifest_url, list(dict.fromkeys(versions)), args.swarm_id)
    # The number --rendition takes is the stream's place in the manifest; hls.js's level number
    # (what a page pins) follows its own sort (p2pml_py.hls.playlist, Stream.hlsjs_levels).
    streams = parse_master_playlist(text, manifest_url).streams
    numbers = {stream.url: n for n, stream in enumerate(streams)}
    if args.json:
        rows = [
            {
                "version": ident.version.value,
                "type": ident.type,
                "index": ident.index,
                "rendition": numbers[ident.playlist_url],
                "hlsjs_level": ident.stream.hlsjs_levels[0] if ident.stream.hlsjs_levels else None,
                "hlsjs_levels": list(ident.stream.hlsjs_levels),
                "stream_swarm_id": ident.stream_swarm_id,
                "info_hash": ident.info_hash,
                "playlist_url": ident.playlist_url,
                "label": ident.label,
            }
            for ident in identities
        ]
        print(json.dumps(rows, indent=2))
        return 0
    print(f"manifest URL: {manifest_url}")
    for ident in identities:
        described = describe_rendition(streams, numbers[ident.playlist_url])
        print(
            f"{ident.version.value}  {ident.type:<9}  {ident.info_hash}  rendition {described}\n"
            f"     stream swarm id: {ident.stream_swarm_id}"
        )
    print(f"seed/watch --rendition: {SELECTOR_HELP}")
    return 0


# -- hashes -----------------------------------------------------------------------------------


def cmd_hashes(args: argparse.Namespace) -> int:
    document, count, total = asyncio.run(_hashes(args))
    if args.output == "-":
        print(document)
    else:
        tmp = f"{args.output}.tmp"
        with open(tmp, "w", encoding="utf-8") as file:  # whole or nothing: a reader never
            file.write(document + "\n")  # sees half a list
        os.replace(tmp, args.output)
        print(
            f"{count} segments, {total / 1e6:.1f} MB hashed: wrote {args.output}", file=sys.stderr
        )
    return 0


async def _hashes(args: argparse.Namespace) -> tuple[str, int, int]:
    """Every segment of every media playlist of a VOD, checked like ``seed`` checks them (a
    list of a truncated segment would make peers reject the good copy), into one list."""
    from p2pml_py.hls.hashes import (
        IntegrityListBuilder,
        IntegrityListError,
        segment_file_name,
        segment_path,
        sha256_hex,
    )
    from p2pml_py.hls.source import HlsSource

    found: list[tuple[str, tuple[int, int] | None, str]] = []
    total = 0
    async with HlsSource(args.url, config=_source_config(args)) as source:
        streams = [s for s in source.streams if s.has_playlist]
        for stream in streams:
            playlist = await source.fetch_playlist(stream.url)
            if playlist.is_live:
                raise CliError(
                    f"{stream.url}: a live playlist (no EXT-X-ENDLIST): its segments change; "
                    "hashes lists VOD only"
                )
            for segment in playlist.segments:
                data = await source.fetch_segment(segment)
                found.append((segment.url, segment.byte_range, sha256_hex(data)))
                total += len(data)
        base = source.final_url
    # PeerTube's keys are file names; where renditions repeat one (ffmpeg's v0/seg0.ts and
    # v1/seg0.ts), every key becomes the path under the master's directory instead.
    urls_by_name: dict[str, set[str]] = {}
    for url, _, _ in found:
        urls_by_name.setdefault(segment_file_name(url), set()).add(url.split("?")[0])
    by_path = any(len(urls) > 1 for urls in urls_by_name.values())
    builder = IntegrityListBuilder()
    for url, byte_range, digest in found:
        name = segment_path(url, base) if by_path else segment_file_name(url)
        if name is None:
            raise CliError(f"{url}: not under the master playlist's directory {base}")
        try:
            builder.add_digest(name, byte_range, digest)
        except IntegrityListError as exc:
            raise CliError(f"{url}: {exc}") from exc
    return builder.build().to_json(), len(found), total


# -- tracker ----------------------------------------------------------------------------------


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range 0-65535: {value}")
    return value


def _stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM (a clean stop either way)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    return stop


def cmd_tracker(args: argparse.Namespace) -> int:
    from p2pml_py.tracker.server import TrackerServer

    async def run() -> None:
        try:
            server = TrackerServer(args.host, args.port, full_scrape=args.full_scrape)
            await server.start()
        except OSError as exc:
            raise CliError(
                f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}"
            ) from exc
        try:
            print(f"WebTorrent tracker listening on {server.url}", flush=True)
            print(f"HTTP announce/scrape: http://{args.host}:{server.port}/announce", flush=True)
            await _stop_on_signals().wait()
            stats = server.stats()
            print(f"stopping: {stats}", flush=True)
        finally:
            await server.aclose()

    asyncio.run(run())
    return 0


# -- seed / watch / demo -----------------------------------------------------------------------


def _positive(kind: type[int] | type[float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    return parse


def _fetch_mode(text: str) -> str:
    if text not in ("auto", "all", "demand"):
        raise argparse.ArgumentTypeError(f"expected auto, all or demand, got {text!r}")
    return text


def _non_negative_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds >= 0, got {text}")
    return value


def _tracker_url(text: str) -> str:
    if not text.startswith(("ws://", "wss://")):
        raise argparse.ArgumentTypeError(f"a WebSocket tracker URL (ws:// or wss://), got {text!r}")
    return text


def _resolve_trackers(given: Sequence[str], versions: Sequence[ProtocolVersion]) -> tuple[str, ...]:
    """``--tracker`` URLs, or the ones pages announce to when they set no ``announceTrackers``
    (``p2pml_py.identity.DEFAULT_TRACKERS``) -- said once in the log, since they are public
    servers and only pages using them too share the swarm."""
    if given:
        return tuple(given)
    from p2pml_py.identity import default_trackers

    trackers = default_trackers(versions)
    names = "'s and ".join(v.value for v in versions)
    logger.warning(
        "no --tracker given: using p2p-media-loader %s's default trackers: %s "
        "(your pages must use them too)",
        names,
        ", ".join(trackers),
        extra={"event": "default_trackers", "trackers": ",".join(trackers)},
    )
    return trackers


def _peer_options(args: argparse.Namespace, versions: tuple[ProtocolVersion, ...]) -> Any:
    from p2pml_py.engine.streams import PeerOptions
    from p2pml_py.engine.swarm import ConnectionBudget, SwarmConfig
    from p2pml_py.rtc.config import RtcConfig

    try:
        rtc = RtcConfig(ice_servers=tuple(args.ice_server), ice_addresses=tuple(args.ice_address))
    except (TypeError, ValueError) as exc:
        raise CliError(f"--ice-address/--ice-server: {exc}") from exc
    return PeerOptions(
        trackers=_resolve_trackers(args.tracker, versions),
        versions=versions,
        rtc=rtc,
        swarm=SwarmConfig(
            max_peers=args.max_peers,
            connections=(
                ConnectionBudget(args.max_connections)
                if getattr(args, "max_connections", None)
                else None
            ),
        ),
        swarm_id=args.swarm_id,
        store_bytes=int(args.store_mb * 1024 * 1024),
    )


def _protocol(text: str) -> tuple[ProtocolVersion, ...]:
    if text == "both":
        return (ProtocolVersion.V2_3, ProtocolVersion.V2_2)
    try:
        return (ProtocolVersion.parse(text),)
    except (P2PMLError, ValueError):
        raise argparse.ArgumentTypeError(f"expected 2.3, 2.2 or both, got {text!r}") from None


def _mb(count: float) -> str:
    return f"{count / 1e6:.1f} MB"


class _StatusLine:
    """One status line a second on stderr: peers, rates, P2P share, segments held."""

    def __init__(self, role: Seeder | Viewer, enabled: bool) -> None:
        self.role = role
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self._last: tuple[float, int, int, int] | None = None

    def render(self, now: float) -> str:
        role = self.role
        up = role.uploaded
        http = role.http_bytes
        from p2pml_py.roles.viewer import Viewer

        viewer = role if isinstance(role, Viewer) else None
        p2p = viewer.p2p_bytes if viewer is not None else 0
        if self._last is None:
            rates = (0.0, 0.0, 0.0)
        else:
            then, up0, http0, p2p0 = self._last
            dt = max(now - then, 1e-6)
            rates = ((up - up0) / dt, (http - http0) / dt, (p2p - p2p0) / dt)
        self._last = (now, up, http, p2p)
        text = (
            f"peers {role.peer_count} | up {rates[0] / 1e6:.2f} MB/s | "
            f"http {rates[1] / 1e6:.2f} MB/s | p2p {rates[2] / 1e6:.2f} MB/s"
        )
        if viewer is not None:
            text += f" | P2P {viewer.p2p_share:.0%} | stalls {viewer.stalls}"
            held = 0 if viewer.swarms is None else len(viewer.swarms.store)
        else:
            held = role.segments_held  # type: ignore[union-attr]
            reports = role.fetch_reports()  # type: ignore[union-attr]
            following = sum(1 for r in reports if r.state == "following")
            text += f" | following {following}/{len(reports)}"
        return text + f" | held {held}"

    async def run(self) -> None:
        if not self.enabled:
            return
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(1.0)
            line = self.render(loop.time())
            if self.tty:
                print("\r" + line.ljust(100), end="", file=sys.stderr, flush=True)
            else:
                print(line, file=sys.stderr, flush=True)

    def finish(self) -> None:
        if self.enabled and self.tty:
            print(file=sys.stderr)


async def _run_role(
    role: Seeder | Viewer, args: argparse.Namespace
) -> SeederSummary | ViewerSummary:
    """Run a seeder or viewer until Ctrl-C/SIGTERM, ``--duration``, or the end of a VOD."""
    stop = _stop_on_signals()
    status = _StatusLine(role, args.status)
    try:
        await role.start()
    except BaseException:
        await role.aclose()
        raise
    # A viewer logs which rendition it joined (hls.js level included) at INFO; below that
    # level the user still needs to know.
    joined = getattr(role, "joined", None)
    if joined and not logging.getLogger("p2pml_py.roles.viewer").isEnabledFor(logging.INFO):
        print(f"watching {joined}", file=sys.stderr, flush=True)
    # Either ends the run: a signal, or the role's end (a viewer at the end of a VOD).
    ends: list[asyncio.Task[Any]] = [
        asyncio.create_task(stop.wait()),
        asyncio.create_task(role.wait_ended()),
    ]
    tasks = [*ends, asyncio.create_task(status.run())]
    try:
        await asyncio.wait(ends, timeout=args.duration, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        status.finish()
        summary = role.summary()
        await role.aclose()
    return summary


def _print_summary(summary: SeederSummary | ViewerSummary, as_json: bool) -> None:
    from p2pml_py.roles.summary import ViewerSummary

    if as_json:
        print(json.dumps(summary.to_json()))
        return
    print(f"{summary.role}: {summary.manifest_url} ({summary.duration:.0f} s)")
    print(
        f"  HTTP {_mb(summary.http_bytes)}, P2P {_mb(summary.p2p_bytes)}, "
        f"uploaded {_mb(summary.uploaded_bytes)}, peers seen {summary.peers_seen}"
    )
    if isinstance(summary, ViewerSummary):
        print(
            f"  P2P share {summary.p2p_share:.0%}, stalls {summary.stalls}, "
            f"start-up {summary.startup_time} s"
        )
    for peer_id, counters in summary.peers.items():
        print(f"  peer {peer_id}: up {_mb(counters.uploaded)}, down {_mb(counters.downloaded)}")


def _selector(text: str) -> Any:
    """``--rendition``: parsed now (a typo fails before anything starts), resolved against the
    manifest once it is loaded (``p2pml_py.hls.select``)."""
    from p2pml_py.hls.select import parse_selector

    try:
        return parse_selector(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _renditions(values: list[Any]) -> list[Any] | None:
    if not values or any(v.kind == "all" for v in values):
        return None
    return values


def _source_config(args: argparse.Namespace) -> SourceConfig:
    from p2pml_py.hls.source import SourceConfig
    from p2pml_py.hls.validate import Level, ValidationPolicy

    return SourceConfig(
        validation=ValidationPolicy(level=Level(args.validate)), integrity=args.integrity
    )


def _seed_source(args: argparse.Namespace) -> tuple[str, SourceConfig]:
    """``(manifest URL pages load, source config)`` of ``seed``: over HTTP, or ``--from`` files
    on disk (p2pml_py.hls.files) with ``--url`` naming them."""
    import dataclasses

    from p2pml_py.hls.files import LocalFiles

    config = _source_config(args)
    if args.from_path is None:
        if args.public_url is not None:
            raise CliError(
                "--url goes with --from PATH (seeding files on disk); to seed over HTTP give "
                "the manifest URL as the first argument"
            )
        if args.url is None:
            raise CliError("give the manifest URL (or --from PATH --url URL to seed files)")
        return args.url, config
    if args.url is not None:
        raise CliError(
            "with --from, give the manifest URL as --url, not as the first argument: it is "
            "never fetched, it names what the pages load"
        )
    if args.public_url is None:
        raise CliError(
            f"--from {args.from_path} needs --url, the manifest URL the pages load: the swarm "
            "id and every segment URL are made of it, so it must be exactly theirs"
        )
    files = LocalFiles(args.from_path, args.public_url)  # SourceError names what is wrong
    return args.public_url, dataclasses.replace(config, local_path=str(files.master))


def cmd_seed(args: argparse.Namespace) -> int:
    from p2pml_py.roles.demand import DemandConfig
    from p2pml_py.roles.seeder import Seeder

    options = _peer_options(args, args.protocol)
    url, source_config = _seed_source(args)
    seeder = Seeder(
        url,
        options,
        renditions=_renditions(args.rendition),
        source_config=source_config,
        fetch=args.fetch,
        demand=DemandConfig(grace=args.demand_grace),
    )
    _print_summary(asyncio.run(_run_role(seeder, args)), args.json)
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    viewer = watch_viewer(args)
    _print_summary(asyncio.run(_run_role(viewer, args)), args.json)
    return 0


def watch_viewer(args: argparse.Namespace) -> Viewer:
    """The viewer ``watch`` runs, from its parsed arguments; :class:`CliError` names a bad one.
    Also what each Locust virtual viewer runs (``p2pml_py.loadtest.host``)."""
    from p2pml_py.roles.scheduler import SchedulerConfig
    from p2pml_py.roles.viewer import Viewer

    if len(args.protocol) != 1:
        raise CliError("--protocol: a viewer plays in one swarm: 2.3 or 2.2")
    if args.rendition is not None and args.rendition.kind == "all":
        raise CliError("--rendition: a viewer plays one rendition, not 'all'")
    options = _peer_options(args, args.protocol)
    try:
        scheduler = SchedulerConfig(
            high_demand_time_window=args.high_demand_window, playback_rate=args.playback_rate
        )
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    return Viewer(
        args.url,
        options,
        rendition=args.rendition,
        source_config=_source_config(args),
        scheduler=scheduler,
        live_sync_segments=args.live_sync_segments,
    )


def _demo_host(text: str) -> str:
    """An IPv4 address of this machine: the page's URLs and the seeder's ICE candidates name it,
    so a wildcard (0.0.0.0) cannot do."""
    import ipaddress

    try:
        address = ipaddress.IPv4Address(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"an IPv4 address, got {text!r}") from None
    if address.is_unspecified:
        raise argparse.ArgumentTypeError("an address of this machine, not 0.0.0.0")
    return text


def cmd_demo(args: argparse.Namespace) -> int:
    if args.open:
        return _cmd_demo_open(args)
    given = [
        ("--host", args.host),
        ("--port", args.port),
        ("--no-browser", args.no_browser or None),
    ]
    for flag, value in given:
        if value is not None:
            raise CliError(f"{flag}: only with --open")
    args.viewers = 4 if args.viewers is None else args.viewers
    args.duration = 60.0 if args.duration is None else args.duration
    summary = asyncio.run(_demo(args))
    if args.json:
        print(json.dumps(summary.to_json()))
        return 0
    print(
        f"p2pml-py demo: {summary.stream}, 1 seeder + {len(summary.viewers)} viewers, "
        f"{summary.duration:.0f} s"
    )
    _print_demo_table(summary)
    viewers = len(summary.viewers)
    print(
        f"origin egress: {summary.origin_segment_bytes / 1e6:.2f} MB = "
        f"{summary.origin_copies:.2f} copies of the stream, the seeder's included (without P2P "
        f"the {viewers} viewers alone would take {viewers}); viewers' P2P share "
        f"{summary.p2p_share:.0%}, stalls {summary.stalls}"
    )
    return 0


def _print_demo_table(summary: DemoSummary) -> None:
    header = f"{'peer':<10} {'HTTP MB':>8} {'P2P MB':>8} {'P2P %':>6} {'up MB':>8} {'stalls':>6} {'start-up s':>10}"
    print(header)
    print("-" * len(header))
    seeder = summary.seeder
    print(
        f"{'seeder':<10} {seeder.http_bytes / 1e6:>8.2f} {0:>8.2f} {'-':>6} "
        f"{seeder.uploaded_bytes / 1e6:>8.2f} {'-':>6} {'-':>10}"
    )
    for index, viewer in enumerate(summary.viewers):
        startup = viewer.startup_time
        print(
            f"{f'viewer {index + 1}':<10} {viewer.http_bytes / 1e6:>8.2f} "
            f"{viewer.p2p_bytes / 1e6:>8.2f} {round(viewer.p2p_share, 4) * 100:>5.0f}% "
            f"{viewer.uploaded_bytes / 1e6:>8.2f} {viewer.stalls:>6} "
            f"{'-' if startup is None else f'{startup:.2f}':>10}"
        )


def _cmd_demo_open(args: argparse.Namespace) -> int:
    """``demo --open``: the page demo (:mod:`p2pml_py.apps.demo`) until Ctrl-C or --duration."""
    from p2pml_py.apps.demo import (
        DemoPageOptions,
        load_demo_stream,
        open_in_browser,
        run_demo_page,
    )
    from p2pml_py.apps.demo.server import check_packages, node_modules_dir
    from p2pml_py.base.errors import HarnessError

    try:
        check_packages(node_modules_dir())  # before ffmpeg may spend seconds on the stream
        stream = load_demo_stream()
    except HarnessError as exc:
        raise CliError(f"--open: {exc}") from exc
    options = DemoPageOptions(
        host=args.host or "127.0.0.1",
        port=8080 if args.port is None else args.port,
        live=args.live,
        viewers=args.viewers or 0,
        stagger=args.stagger,
        duration=args.duration,
    )

    def ready(url: str) -> None:
        print(f"open {url} in a browser; open it in several tabs to see them share", flush=True)
        if not args.no_browser and open_in_browser(url):
            print("(asking your desktop's browser to open it)", flush=True)
        until = "Ctrl-C" if args.duration is None else f"Ctrl-C or {args.duration:g} s"
        print(f"serving until {until}", flush=True)

    async def run() -> DemoSummary:
        return await run_demo_page(stream, options, stop=_stop_on_signals(), ready=ready)

    summary = asyncio.run(run())
    if args.json:
        print(json.dumps(summary.to_json()))
        return 0
    print(
        f"p2pml-py demo --open: {summary.stream}, 1 seeder + {len(summary.viewers)} Python "
        f"viewers, {summary.duration:.0f} s"
    )
    _print_demo_table(summary)
    print(
        f"origin egress: {summary.origin_segment_bytes / 1e6:.2f} MB = "
        f"{summary.origin_copies:.2f} times what the seeder fetched (the tabs' and viewers' own "
        f"HTTP on top); the seeder uploaded {summary.seeder.uploaded_bytes / 1e6:.2f} MB to "
        f"{len(summary.seeder.peers)} peers"
    )
    return 0


async def _demo(args: argparse.Namespace) -> DemoSummary:
    from p2pml_py.engine.streams import PeerOptions
    from p2pml_py.roles.scheduler import SchedulerConfig
    from p2pml_py.roles.seeder import Seeder
    from p2pml_py.roles.summary import DemoSummary
    from p2pml_py.roles.viewer import Viewer
    from p2pml_py.rtc.config import RtcConfig
    from p2pml_py.testing.origin import Rendition, SyntheticOrigin
    from p2pml_py.tracker.server import TrackerServer

    rendition = Rendition("360p", bandwidth=800_000, width=640, height=360)
    segment_size = 200_000  # 2 s at 800 kbit/s
    origin = SyntheticOrigin(
        renditions=(rendition,),
        segment_size=segment_size,
        live=args.live,
        window=8,
        vod_segments=args.segments,
    )
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with origin, TrackerServer() as tracker:
        options = PeerOptions(trackers=(tracker.url,), rtc=RtcConfig(ice_addresses=("127.0.0.1",)))
        # Browsers' windows are wall-clock seconds times the playback rate; keep the 15 s
        # high-demand window in content time when the demo plays faster than real time.
        rate = 1.0 if args.live else args.playback_rate  # nobody plays live faster than it is made
        scheduler = SchedulerConfig(
            playback_rate=rate,
            high_demand_time_window=(4.0 if args.live else 15.0) / rate,
        )
        # The demo's segments are not media: checked by length (SyntheticOrigin.source_config).
        async with Seeder(origin.url, options, source_config=origin.source_config()) as seeder:
            viewers = [
                Viewer(
                    origin.url,
                    options,
                    scheduler=scheduler,
                    live_sync_segments=6,
                    source_config=origin.source_config(),
                )
                for _ in range(args.viewers)
            ]
            try:
                for viewer in viewers:
                    await viewer.start()
                    await asyncio.sleep(args.stagger)
                waits = [asyncio.create_task(v.wait_ended()) for v in viewers]
                await asyncio.wait(waits, timeout=args.duration)
                for task in waits:
                    task.cancel()
            finally:
                summaries = [v.summary() for v in viewers]
                await asyncio.gather(*(v.aclose() for v in viewers))
            seeder_summary = seeder.summary()
        segment_bytes = origin.stats.segment_bytes()
    # One copy of the stream = every segment published during the run, which the seeder
    # fetched exactly once.
    stream_bytes = max(seeder_summary.http_bytes, 1)
    return DemoSummary(
        stream=f"{'live' if args.live else 'VOD'} synthetic 800 kbit/s, 2 s segments",
        duration=loop.time() - started,
        seeder=seeder_summary,
        viewers=summaries,
        origin_segment_bytes=segment_bytes,
        origin_copies=segment_bytes / stream_bytes,
    )


def _add_peer_arguments(
    parser: argparse.ArgumentParser, *, protocol_help: str, server: bool
) -> None:
    parser.add_argument(
        "url",
        nargs="?" if server else None,  # seed --from PATH names it with --url instead
        help="HLS manifest URL (master or media playlist)"
        + ("; with --from, give it as --url instead" if server else ""),
    )
    parser.add_argument(
        "--tracker",
        action="append",
        default=[],
        type=_tracker_url,
        metavar="WS_URL",
        help=(
            "WebTorrent tracker URL, the same as the pages' announceTrackers (repeatable). "
            "Default: p2p-media-loader's own defaults for --protocol, which pages that set no "
            "announceTrackers use: 2.3: "
            + ", ".join(ProtocolVersion.V2_3.default_trackers)
            + "; 2.2: "
            + ", ".join(ProtocolVersion.V2_2.default_trackers)
            + "; both: all of them (public servers: the log says when they are used)"
        ),
    )
    parser.add_argument(
        "--protocol", type=_protocol, default=(ProtocolVersion.V2_3,), help=protocol_help
    )
    parser.add_argument(
        "--ice-address",
        action="append",
        default=[],
        metavar="ADDR",
        help="local address ICE gathers candidates on (repeatable; 127.0.0.1 allowed; "
        "default: every non-loopback interface address)",
    )
    parser.add_argument(
        "--ice-server",
        action="append",
        default=[],
        metavar="URL",
        help="STUN/TURN server, e.g. stun:stun.example.org:3478 (repeatable; default: none)",
    )
    parser.add_argument(
        "--swarm-id", help="the swarmId your pages configure, if any (replaces the manifest URL)"
    )
    if server:
        parser.add_argument(
            "--max-peers",
            type=_positive(int),
            default=SERVER_MAX_PEERS,
            help=f"peers per swarm (one swarm per rendition and protocol version; default: "
            f"{SERVER_MAX_PEERS}); at the limit new peers' offers go unanswered, no peer is "
            "dropped",
        )
        parser.add_argument(
            "--max-connections",
            type=_positive(int),
            default=SERVER_MAX_CONNECTIONS,
            help=f"peer connections of the whole process, every swarm together (default: "
            f"{SERVER_MAX_CONNECTIONS}, about what one core serves in real time); at the limit "
            "new peers' offers go unanswered, no peer is dropped",
        )
    else:
        parser.add_argument(
            "--max-peers",
            type=_positive(int),
            default=DEFAULT_MAX_PEERS,
            help=f"peers per swarm, like a browser page (default: {DEFAULT_MAX_PEERS})",
        )
    parser.add_argument(
        "--store-mb",
        type=_positive(float),
        default=256.0,
        help="memory for held segments per stream, MB (default: 256)",
    )
    parser.add_argument(
        "--validate",
        choices=("container", "length"),
        default="container",
        help=(
            "how every segment is checked before it is stored, played or uploaded: 'container' "
            "(default) = MPEG-TS packets and timestamps, fMP4 boxes and sample durations against "
            "EXTINF, byte-range lengths; 'length' = byte-range lengths only (for streams that "
            "are not real media, like the demo's). A failed segment is logged, counted, refetched "
            "with back-off, never served"
        ),
    )
    parser.add_argument(
        "--integrity",
        metavar="URL_OR_FILE",
        help=(
            "the site's integrity list, PeerTube's segments-sha256.json format (e.g. made by "
            "'p2pml-py hashes'): every segment, from the origin or a peer, must have the listed "
            "SHA-256; a live list is reloaded when it lags behind the playlist"
        ),
    )
    parser.add_argument(
        "--duration", type=_positive(float), help="leave cleanly after this many seconds"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON summary object at exit")
    parser.add_argument(
        "--status",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a status line every second on stderr (default: when stderr is a terminal)",
    )


# -- parser -----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from p2pml_py.hls.select import SELECTOR_HELP as selector_help

    parser = argparse.ArgumentParser(
        prog="p2pml-py",
        description="A Python peer for P2P Media Loader swarms (hls.js + p2p-media-loader).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=["debug", "info", "warning", "error"],
        help="logging level (default: warning)",
    )
    parser.add_argument(
        "--log-format",
        default="text",
        choices=["text", "json"],
        help=(
            "text lines, or one JSON object per line with the record's fields; records that "
            "mark a step carry an 'event' field (swarm_joined, first_segment_from, ...) for "
            "tools to read instead of parsing messages (default: text)"
        ),
    )
    parser.add_argument(
        "--no-tuning",
        action="store_true",
        help=(
            "run seed/watch/demo/superpeer on the default asyncio loop and unpatched aiortc "
            "(by default they use uvloop, 4 MiB UDP socket buffers and p2pml_py.rtc.aiortc_backend.speedups; "
            "the environment variable P2PML_NO_TUNING=1 does the same)"
        ),
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    swarm = commands.add_parser(
        "swarm-id",
        help="print the swarm ids and tracker info hashes browsers use for a manifest",
        description=(
            "For every stream of an HLS manifest (each video level and audio track), print the "
            "stream swarm id and the info hash browsers announce to the tracker, per "
            "p2p-media-loader version."
        ),
    )
    swarm.add_argument("source", help="manifest URL (http/https) or local playlist file")
    swarm.add_argument(
        "--url",
        help="the manifest URL browsers load (required for a local file; overrides a fetched URL)",
    )
    swarm.add_argument(
        "--version",
        dest="version",
        action="append",
        type=_versions,
        default=[],
        metavar="2.3|2.2|all",
        help="p2p-media-loader version (repeatable; default: all)",
    )
    swarm.add_argument(
        "--swarm-id", help="the swarmId configured on the page, if any (replaces the URL)"
    )
    swarm.add_argument("--json", action="store_true", help="print a JSON list")
    swarm.set_defaults(handler=cmd_swarm_id)

    tracker = commands.add_parser(
        "tracker",
        help="run the embedded WebTorrent tracker (WebSocket signalling + HTTP announce/scrape)",
        description=(
            "Run a WebTorrent tracker that browsers (p2p-media-loader's announceTrackers) and "
            "p2pml-py peers can use: WebSocket announce/offer/answer relay, and bencoded HTTP "
            "/announce and /scrape. Stops cleanly on Ctrl-C or SIGTERM."
        ),
    )
    tracker.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"
    )
    tracker.add_argument(
        "--port", type=_port, default=8000, help="port (default: 8000; 0 = any free)"
    )
    tracker.add_argument(
        "--full-scrape",
        action="store_true",
        help=(
            "answer a scrape that names no info hash with every swarm (off by default: it would "
            "publish the info hashes of every site using this tracker)"
        ),
    )
    tracker.set_defaults(handler=cmd_tracker)

    hashes = commands.add_parser(
        "hashes",
        help="write the integrity list (SHA-256 per segment) of a VOD for seed/watch --integrity",
        description=(
            "Download every segment of every media playlist of a VOD (byte ranges honoured), "
            "check each as 'seed' does (--validate), and write their SHA-256 in PeerTube's "
            "segments-sha256.json format: byte-range segments as {file: {'start-end': digest}}, "
            "others as {file: digest}. Publish it next to the playlists and give its URL to "
            "'seed --integrity', 'watch --integrity' or a super-peer stream's 'integrity'."
        ),
    )
    hashes.add_argument("url", help="HLS manifest URL of a VOD (master or media playlist)")
    hashes.add_argument(
        "-o", "--output", default="-", help="file to write (default: - = standard output)"
    )
    hashes.add_argument(
        "--validate",
        choices=("container", "length"),
        default="container",
        help="how each segment is checked before it is listed (default: container)",
    )
    hashes.set_defaults(handler=cmd_hashes, integrity=None)

    seed = commands.add_parser(
        "seed",
        help="join browser swarms as a seeder: follow a stream over HTTP and serve it to peers",
        description=(
            "Follow an HLS stream from its origin (every rendition by default: video levels and "
            "audio tracks) and serve its segments to the p2p-media-loader swarms browsers join "
            "for it. Ctrl-C or SIGTERM leaves cleanly (trackers get 'stopped')."
        ),
        epilog=(
            "Limits. Connections: --max-peers per swarm and --max-connections for the whole "
            "process; at either, new peers' offers go unanswered and no offers are made -- a "
            "connected peer is never dropped to make room. Per peer, as a browser peer would "
            "legitimately behave: any number of segment requests, one served at a time (a new "
            "request replaces the one being served, as in browsers); a peer is dropped only "
            "when it breaks the protocol (sizes, ids, unknown commands, 8 undecodable commands "
            "in a row), keeps asking while 256 KiB of our replies wait unread, or takes none "
            "of our bytes for 10 s."
        ),
    )
    _add_peer_arguments(seed, protocol_help="2.3, 2.2 or both (default: 2.3)", server=True)
    seed.add_argument(
        "--rendition",
        action="append",
        default=[],
        type=_selector,
        metavar="SELECTOR",
        help=(
            "which renditions to seed (repeatable; default: all): 'all' or "
            + selector_help
            + "; a resolution or bandwidth selects every video level that has it"
        ),
    )
    seed.add_argument(
        "--fetch",
        type=_fetch_mode,
        default="auto",
        metavar="auto|all|demand",
        help=(
            "which segments to fetch from the origin: 'demand' = a rendition only while its "
            "swarm has other peers (the tracker's counts, new peers' offers, peers taking "
            "segments), live from the live edge, VOD once first wanted; 'all' = every segment "
            "of every rendition; 'auto' (default) = demand for live, all for VOD"
        ),
    )
    seed.add_argument(
        "--demand-grace",
        type=_non_negative_seconds,
        default=30.0,
        metavar="SECONDS",
        help=(
            "with --fetch demand: keep following a rendition this long after its last other "
            "peer (default: 30, p2p-media-loader's p2pInactiveLoaderDestroyTimeoutMs)"
        ),
    )
    seed.add_argument(
        "--from",
        dest="from_path",
        metavar="PATH",
        help=(
            "read the stream from disk instead of HTTP: its master playlist, or a directory "
            "holding master.m3u8, index.m3u8 or a single *.m3u8; needs --url. Segments, byte "
            "ranges and EXT-X-MAP are read from the files under the master's directory, never "
            "fetched; a live playlist rewritten on disk is followed"
        ),
    )
    seed.add_argument(
        "--url",
        dest="public_url",
        metavar="URL",
        help=(
            "with --from: the manifest URL the pages load (in place of the first argument, "
            "because nothing is fetched from it). The swarm id and every segment URL are made "
            "of it; a URL under its directory is read from the same path under the master's "
            "directory, anything else is refused"
        ),
    )
    seed.set_defaults(handler=cmd_seed)

    watch = commands.add_parser(
        "watch",
        help="play a stream like a browser: HTTP first for urgent segments, peers for the rest",
        description=(
            "A player model running at real-time rate: urgent segments over HTTP, later ones from "
            "peers, random peers fetch new segments over HTTP and seed them -- the policies of "
            "p2p-media-loader in a browser. Reports stalls, start-up time and bytes by source."
        ),
    )
    _add_peer_arguments(watch, protocol_help="2.3 or 2.2 (default: 2.3)", server=False)
    watch.add_argument(
        "--rendition",
        type=_selector,
        default=None,
        metavar="SELECTOR",
        help=(
            "the one rendition to play: "
            + selector_help
            + " (default: the first video level listed, where hls.js starts); "
            "the log says which one was joined"
        ),
    )
    watch.add_argument(
        "--high-demand-window",
        type=_positive(float),
        default=15.0,
        help="seconds ahead of the playhead loaded over HTTP first (browsers: 15)",
    )
    watch.add_argument(
        "--live-sync-segments",
        type=_positive(int),
        default=3,
        help="live: start this many segments behind the live edge (hls.js: 3)",
    )
    watch.add_argument(
        "--playback-rate", type=_positive(float), default=1.0, help="playback speed (default: 1)"
    )
    watch.set_defaults(handler=cmd_watch)

    demo = commands.add_parser(
        "demo",
        help="run a local origin, tracker, seeder and viewers on loopback and print a table",
        description=(
            "Everything on 127.0.0.1, no internet: a synthetic HLS origin, the embedded tracker, "
            "one seeder and N viewers. Prints P2P share per viewer, origin egress in copies of "
            "the stream, and stalls."
        ),
    )
    demo.add_argument(
        "--viewers",
        type=_positive(int),
        default=None,
        help="Python viewers (default: 4; with --open: none, the browser tabs are the viewers)",
    )
    demo.add_argument(
        "--segments",
        type=_positive(int),
        default=30,
        help="VOD length in 2 s segments (default: 30)",
    )
    demo.add_argument("--live", action="store_true", help="a live sliding-window stream instead")
    demo.add_argument(
        "--playback-rate",
        type=_positive(float),
        default=2.0,
        help="VOD playback speed of the viewers (default: 2, to keep the demo short)",
    )
    demo.add_argument(
        "--duration",
        type=_positive(float),
        default=None,
        help="upper bound in seconds (default: 60; with --open: until Ctrl-C)",
    )
    demo.add_argument(
        "--stagger", type=float, default=0.5, help="seconds between viewer starts (default: 0.5)"
    )
    demo.add_argument("--json", action="store_true", help="print the summary as JSON")
    demo.add_argument(
        "--open",
        action="store_true",
        help=(
            "serve a page instead that plays a real stream with hls.js + p2p-media-loader 2.3 and "
            "charts its HTTP and P2P bytes and its peers; print its URL and run until Ctrl-C. "
            "Needs ffmpeg and the pinned npm packages (interop/setup.sh)"
        ),
    )
    demo.add_argument(
        "--host",
        type=_demo_host,
        default=None,
        help="--open: the IPv4 address to serve on, also the seeder's ICE address "
        "(default: 127.0.0.1)",
    )
    demo.add_argument(
        "--port",
        type=_port,
        default=None,
        help="--open: the page's port (default: 8080; 0 picks a free one)",
    )
    demo.add_argument(
        "--no-browser",
        action="store_true",
        help="--open: only print the URL (by default a desktop browser is asked to open it)",
    )
    demo.set_defaults(handler=cmd_demo)

    harness = commands.add_parser(
        "harness",
        help="set up the browser interop harness: `p2pml-py harness setup [--cache DIR]`",
        description=(
            "`setup [--cache DIR]` installs the harness's pinned npm packages (hls.js, Shaka "
            "Player, p2p-media-loader) from the lock file shipped with p2pml-py into a cache and "
            "checks Chromium, Playwright, node and ffmpeg (python -m p2pml_py.harness)."
        ),
    )
    harness.add_argument("harness_args", nargs=argparse.REMAINDER, metavar="setup [--cache DIR]")
    harness.set_defaults(handler=cmd_harness)

    from p2pml_py.apps.collector.cli import add_parser as add_collector
    from p2pml_py.apps.superpeer.cli import add_parser as add_superpeer

    add_superpeer(commands)
    add_collector(commands)

    from p2pml_py.apps.peertube.cli import add_parser as add_peertube

    add_peertube(commands)
    return parser


def cmd_harness(args: argparse.Namespace) -> int:
    """Runs ``python -m p2pml_py.harness``: the harness is a layer above this one (it drives
    this CLI as subprocesses), so it is started, not imported."""
    import subprocess

    return subprocess.run([sys.executable, "-m", "p2pml_py.harness", *args.harness_args]).returncode


#: Commands that move segment bytes over WebRTC, and so run tuned (see ``--no-tuning``).
_TUNED_COMMANDS = frozenset({"seed", "watch", "demo", "superpeer", "peertube"})


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.log_format == "json":
        from p2pml_py.apps.logs import JsonFormatter

        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter(args.command or "p2pml-py"))
        logging.basicConfig(level=getattr(logging, args.log_level.upper()), handlers=[handler])
    else:
        logging.basicConfig(
            level=getattr(logging, args.log_level.upper()),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
    if getattr(args, "status", False) is None:
        args.status = sys.stderr.isatty()
    if args.no_tuning:
        os.environ[NO_TUNING_ENV] = "1"  # superpeer worker processes inherit it
    if args.command in _TUNED_COMMANDS:
        tune_process_unless_disabled()
    try:
        return int(args.handler(args))
    except (CliError, SourceError, P2PMLError) as exc:
        print(f"p2pml-py {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
