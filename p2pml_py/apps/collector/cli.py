"""``p2pml-py collector --listen HOST:PORT --cors-origin ORIGIN ...``: the viewer-stats collector
on its own, for sites without a super-peer (``POST /pingback``, ``/pingback.js``, ``/metrics``,
``/status``), until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from typing import Any

from p2pml_py.apps.collector.config import CollectorConfig, normalize_origin
from p2pml_py.base.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = ["add_parser", "cmd_collector", "parse_listen"]

_DEFAULTS = CollectorConfig()


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:9465`` for IPv6); ``ValueError`` otherwise."""
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f'must be "HOST:PORT", got {value!r}')
    return host, int(port)


def _listen(value: str) -> tuple[str, int]:
    try:
        return parse_listen(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _origin(value: str) -> str:
    try:
        return normalize_origin(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(kind: type[int] | type[float]) -> Any:
    def parse(value: str) -> int | float:
        try:
            number = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
        if not 0 < number < float("inf"):
            raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
        return number

    return parse


def add_parser(subparsers: Any) -> None:
    """Add the ``collector`` command to ``p2pml-py``'s subparsers."""
    parser = subparsers.add_parser(
        "collector",
        help="collect viewers' stats (P2P share, stalls, start-up) posted by pingback.js",
        description=(
            "Take the reports pages post with p2pml-py's pingback.js (served here at "
            "/pingback.js): bytes over HTTP and P2P, uploads, peers, stalls and start-up time "
            "per viewer, added up per stream. Serves POST /pingback, Prometheus /metrics and "
            "/status (JSON). Only pages of the --cors-origin origins (and of this server's own "
            "origin) may post."
        ),
    )
    parser.add_argument(
        "--listen",
        type=_listen,
        default=("127.0.0.1", 9465),
        metavar="HOST:PORT",
        help="address to serve on (default: 127.0.0.1:9465)",
    )
    parser.add_argument(
        "--cors-origin",
        dest="cors_origins",
        type=_origin,
        action="append",
        default=[],
        metavar="ORIGIN",
        help=(
            "origin of pages allowed to post, e.g. https://www.example.org; repeat for several; "
            '"*" for any (default: none, only pages served from this host)'
        ),
    )
    parser.add_argument(
        "--stream",
        dest="streams",
        action="append",
        default=[],
        metavar="ID",
        help=(
            "take reports only for this stream id (the manifest URL without its query); repeat "
            "for several (default: any, up to --max-streams)"
        ),
    )
    parser.add_argument(
        "--max-viewers",
        type=_positive(int),
        default=_DEFAULTS.max_viewers,
        help=f"live viewers kept (default {_DEFAULTS.max_viewers})",
    )
    parser.add_argument(
        "--max-streams",
        type=_positive(int),
        default=_DEFAULTS.max_streams,
        help=f"streams kept (default {_DEFAULTS.max_streams})",
    )
    parser.add_argument(
        "--viewer-ttl",
        type=_positive(float),
        default=_DEFAULTS.viewer_ttl,
        metavar="SECONDS",
        help=f"a viewer is live until this long without a report (default {_DEFAULTS.viewer_ttl:g})",
    )
    parser.add_argument(
        "--max-viewer-mbit",
        type=_positive(float),
        default=_DEFAULTS.max_viewer_mbit,
        help=(
            "fastest link a viewer may report, Mbit/s; more bytes per second are refused "
            f"(default {_DEFAULTS.max_viewer_mbit:g})"
        ),
    )
    parser.add_argument(
        "--client-rate",
        type=_positive(float),
        default=_DEFAULTS.client_rate,
        metavar="PER_S",
        help=f"reports per second per client address (default {_DEFAULTS.client_rate:g})",
    )
    parser.add_argument(
        "--client-burst",
        type=_positive(float),
        default=_DEFAULTS.client_burst,
        help=f"reports at once per client address (default {_DEFAULTS.client_burst:g})",
    )
    parser.add_argument(
        "--forwarded-for",
        action="store_true",
        help="behind a reverse proxy: the client address is X-Forwarded-For's last hop",
    )
    parser.set_defaults(handler=cmd_collector)


def config_from_args(args: argparse.Namespace) -> CollectorConfig:
    try:
        return CollectorConfig(
            cors_origins=tuple(dict.fromkeys(args.cors_origins)),
            streams="any",
            max_viewers=args.max_viewers,
            max_streams=args.max_streams,
            viewer_ttl=args.viewer_ttl,
            max_viewer_mbit=args.max_viewer_mbit,
            client_rate=args.client_rate,
            client_burst=args.client_burst,
            forwarded_for=args.forwarded_for,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


async def run_collector(args: argparse.Namespace) -> None:
    from p2pml_py.apps.collector.http import CollectorServer
    from p2pml_py.apps.collector.service import PingbackService, stream_id, stream_resolver

    config = config_from_args(args)
    known = {stream_id(s): s for s in args.streams} | {s: s for s in args.streams}
    service = PingbackService(config, resolve=stream_resolver(known, accept_any=not known))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    host, port = args.listen
    try:
        async with CollectorServer(service, host, port) as server:
            print(f"collecting viewer stats on {server.url}/pingback", flush=True)
            await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)


def cmd_collector(args: argparse.Namespace) -> int:
    config_from_args(args)  # a bad combination: one line on stderr, status 2
    host, port = args.listen
    try:
        asyncio.run(run_collector(args))
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return 0
