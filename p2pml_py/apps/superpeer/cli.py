"""``p2pml-py superpeer --config FILE.toml``: run the super-peer until SIGTERM/SIGINT.

SIGHUP reloads the file (an invalid file is logged and the running configuration kept). With a
``[fleet]`` section the process serves only the streams the fleet assigns to it
(:mod:`p2pml_py.apps.superpeer.fleet`); ``--check`` then also says who this member is.
:func:`add_parser` plugs the command into ``p2pml-py``; :func:`main` runs it on its own
(``python -m p2pml_py.apps.superpeer``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from p2pml_py.apps.logs import setup_logging
from p2pml_py.apps.superpeer.config import SuperPeerConfig, load_config
from p2pml_py.base.errors import ConfigError, P2PMLError

logger = logging.getLogger(__name__)

__all__ = ["add_parser", "cmd_superpeer", "main", "run_superpeer"]


def add_parser(subparsers: Any) -> None:
    """Add the ``superpeer`` command to ``p2pml-py``'s subparsers."""
    parser = subparsers.add_parser(
        "superpeer",
        help="seed many streams from a TOML config on every core, with metrics and a status page",
        description=(
            "Seed every stream of a TOML configuration to the browsers' swarms, spread over "
            "worker processes (one per core by default). Serves Prometheus /metrics, /status "
            "(JSON) and a status page. SIGHUP reloads the configuration, adding and removing "
            "streams without touching the others; SIGTERM or Ctrl-C leaves every swarm cleanly. "
            "With a [fleet] section, several super-peers share the streams: each serves those "
            "whose rendezvous hash ranks it among the stream's replicas."
        ),
    )
    _add_arguments(parser)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, type=Path, metavar="FILE.toml")
    parser.add_argument(
        "--log-level",
        dest="superpeer_log_level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="logging level of the super-peer and its workers (default: info)",
    )
    parser.add_argument(
        "--log-format",
        default="text",
        choices=["text", "json"],
        help="text lines or one JSON object per line (default: text)",
    )
    parser.add_argument(
        "--check", action="store_true", help="validate the configuration and exit (status 0/2)"
    )
    parser.set_defaults(handler=cmd_superpeer)


async def run_superpeer(
    config: SuperPeerConfig, path: Path, *, log_level: str, log_format: str
) -> None:
    from p2pml_py.apps.superpeer.peertube import expand_peertube
    from p2pml_py.apps.superpeer.supervisor import SuperPeer
    from p2pml_py.apps.superpeer.web import StatusServer

    stop = asyncio.Event()
    reload_wanted = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload_wanted.set)
    config = await expand_peertube(config)
    superpeer = SuperPeer(config, log_level=log_level, log_format=log_format)
    try:
        async with superpeer, StatusServer(superpeer, config.listen_host, config.listen_port):
            while not stop.is_set():
                waits = [asyncio.ensure_future(e.wait()) for e in (stop, reload_wanted)]
                try:
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for task in waits:
                        task.cancel()
                if reload_wanted.is_set() and not stop.is_set():
                    reload_wanted.clear()
                    logger.info("SIGHUP: reloading %s", path, extra={"event": "reload_requested"})
                    try:
                        new = await expand_peertube(load_config(path))
                    except ConfigError as exc:
                        logger.error(
                            "reload refused, keeping the running configuration: %s",
                            exc,
                            extra={"event": "reload_failed"},
                        )
                        continue
                    await superpeer.reload(new)
            logger.info("stopping: leaving every swarm", extra={"event": "stopping"})
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)


def cmd_superpeer(args: argparse.Namespace) -> int:
    setup_logging(args.superpeer_log_level, args.log_format, "superpeer")
    config = load_config(args.config)  # ConfigError: one line on stderr, status 2
    if args.check:
        fleet = config.fleet
        logger.info(
            "%s: valid, %d stream(s), %d worker(s)%s",
            args.config,
            len(config.streams),
            config.workers,
            f"; fleet member {fleet.self_id}, members from the {fleet.describe()}" if fleet else "",
        )
        return 0
    try:
        asyncio.run(
            run_superpeer(
                config,
                args.config,
                log_level=args.superpeer_log_level,
                log_format=args.log_format,
            )
        )
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {config.listen_host}:{config.listen_port}: {exc.strerror or exc}"
        ) from exc
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="p2pml-py superpeer")
    _add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return cmd_superpeer(args)
    except P2PMLError as exc:
        sys.stderr.write(f"p2pml-py superpeer: {exc}\n")
        return 2
