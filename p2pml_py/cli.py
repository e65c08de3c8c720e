"""Command-line interface: ``p2pml-py <command>``. The only module that prints."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from p2pml_py import __version__
from p2pml_py.errors import P2PMLError, SourceError
from p2pml_py.identity import ProtocolVersion

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
    from p2pml_py.hls.playlist import stream_identities

    text, manifest_url = _load_source(args.source, args.url)
    versions = [v for group in args.version for v in group] or _versions("all")
    identities = stream_identities(text, manifest_url, list(dict.fromkeys(versions)), args.swarm_id)
    if args.json:
        rows = [
            {
                "version": ident.version.value,
                "type": ident.type,
                "index": ident.index,
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
        print(
            f"{ident.version.value}  {ident.type:<9}  {ident.info_hash}  {ident.label}\n"
            f"     stream swarm id: {ident.stream_swarm_id}"
        )
    return 0


# -- tracker ----------------------------------------------------------------------------------


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range 0-65535: {value}")
    return value


async def _run_until_signal(started: Callable[[], Awaitable[None]] | None = None) -> None:
    """Wait for SIGINT/SIGTERM (a clean stop either way)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    if started is not None:
        await started()
    await stop.wait()


def cmd_tracker(args: argparse.Namespace) -> int:
    from p2pml_py.tracker.server import TrackerServer

    async def run() -> None:
        try:
            server = TrackerServer(args.host, args.port)
            await server.start()
        except OSError as exc:
            raise CliError(
                f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}"
            ) from exc
        try:
            print(f"WebTorrent tracker listening on {server.url}", flush=True)
            print(f"HTTP announce/scrape: http://{args.host}:{server.port}/announce", flush=True)
            await _run_until_signal()
            stats = server.stats()
            print(f"stopping: {stats}", flush=True)
        finally:
            await server.aclose()

    asyncio.run(run())
    return 0


# -- parser -----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
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
    tracker.set_defaults(handler=cmd_tracker)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.handler(args))
    except (CliError, SourceError, P2PMLError) as exc:
        print(f"p2pml-py {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
