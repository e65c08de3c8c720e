"""Run the page demo: the stream and the page (:class:`~p2pml_py.apps.demo.server.DemoServer`),
our tracker, one Python seeder and optionally Python viewers, until stopped.

Every tab and every Python peer plays hls.js level 0 of the ffmpeg test stream
(:mod:`p2pml_py.testing.stream`) under one explicit swarm id, so they all meet in one swarm: the
tabs share among themselves and with the seeder.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import threading
import webbrowser
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from p2pml_py.apps.demo.server import DemoServer, PageConfig, cache_dir
from p2pml_py.base.errors import P2PMLError
from p2pml_py.engine.streams import PeerOptions, StreamSwarms
from p2pml_py.identity import ProtocolVersion
from p2pml_py.roles.scheduler import SchedulerConfig
from p2pml_py.roles.seeder import Seeder
from p2pml_py.roles.summary import DemoSummary
from p2pml_py.roles.viewer import Viewer
from p2pml_py.rtc.config import RtcConfig
from p2pml_py.testing.stream import TestStream, cached_stream
from p2pml_py.tracker.server import TrackerServer

__all__ = [
    "DemoError",
    "DemoPageOptions",
    "load_demo_stream",
    "open_in_browser",
    "run_demo_page",
]

logger = logging.getLogger(__name__)

#: The swarm id every tab and Python peer uses (see :class:`PageConfig` for why it is explicit).
SWARM_ID = "p2pml-py-demo"
#: hls.js level everyone plays: 0 is the lowest bitrate (hls.js sorts levels by bitrate), the
#: cheapest to decode in many tabs; tabs on different levels would be in different swarms.
LEVEL = 0
#: Live settings without which a browser loads every fresh live segment over HTTP: a new segment
#: lies inside the default 15 s ``highDemandTimeWindow`` (``core/core.ts``), and high-demand
#: segments go to HTTP first (INTEROP-NOTES "Measured on loopback"; the harness's ``LIVE_CORE``).
LIVE_CORE: Mapping[str, Any] = {"highDemandTimeWindow": 4}
LIVE_HLS: Mapping[str, Any] = {"liveSyncDurationCount": 6}


class DemoError(P2PMLError):
    """The page demo could not start (the message names the option to change)."""


@dataclass(frozen=True, slots=True)
class DemoPageOptions:
    host: str = "127.0.0.1"
    port: int = 8080
    live: bool = False
    viewers: int = 0
    stagger: float = 0.5
    #: Seconds to run; ``None``: until ``stop`` is set (Ctrl-C).
    duration: float | None = None
    channel: str = "demo"


def load_demo_stream() -> TestStream:
    """The harness's stream (``P2PML_INTEROP_STREAM``, else the one ffmpeg makes once into
    ``<interop cache>/stream``, as ``interop/setup.sh`` does). Blocking: ffmpeg may run."""
    own = os.environ.get("P2PML_INTEROP_STREAM")
    if own:
        return TestStream.load(Path(own))
    return cached_stream(cache_dir() / "stream")


def open_in_browser(url: str) -> bool:
    """Ask the desktop's browser to open ``url``, in a thread; never fails.

    ``False`` without a graphical session (Linux without ``DISPLAY``/``WAYLAND_DISPLAY``): there
    :mod:`webbrowser` falls back to console browsers, which would take over this terminal.
    """
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return False
    threading.Thread(target=_open, args=(url,), name="demo-browser", daemon=True).start()
    return True


def _open(url: str) -> None:
    try:
        browser = webbrowser.get()
        # A plain GenericBrowser, or one that runs in the foreground, is a console browser.
        if (
            type(browser) is webbrowser.GenericBrowser
            or getattr(browser, "background", True) is False
        ):
            return
        browser.open(url, new=2)
    except Exception as exc:  # opening a browser is a courtesy, never an error
        logger.info("could not open a browser: %s", exc)


def _peer_ids(swarms: StreamSwarms | None) -> list[str]:
    if swarms is None:
        return []
    return [str(s["peer_id"]) for s in swarms.describe()["swarms"]]


async def run_demo_page(
    stream: TestStream,
    options: DemoPageOptions,
    *,
    stop: asyncio.Event,
    ready: Callable[[str], None],
    node_modules: Path | None = None,
) -> DemoSummary:
    """Serve the page until ``stop`` is set or ``options.duration`` passed; ``ready(url)`` is
    called once the page can be opened. Returns the Python peers' summary."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    server = DemoServer(stream, host=options.host, port=options.port, node_modules=node_modules)
    try:
        await server.start()
    except OSError as exc:
        raise DemoError(
            f"--port {options.port}: cannot listen on {options.host}:{options.port}: "
            f"{exc.strerror or exc} (--port 0 picks a free port)"
        ) from exc
    level = stream.by_level(LEVEL)
    rendition = stream.renditions.index(level)
    manifest = server.manifest_url(options.live, options.channel)
    try:
        async with TrackerServer(options.host) as tracker:
            peer = PeerOptions(
                trackers=(tracker.url,),
                versions=(ProtocolVersion.V2_3,),
                rtc=RtcConfig(ice_addresses=(options.host,)),
                swarm_id=SWARM_ID,
            )
            server.page_config = PageConfig(
                manifest_url=manifest,
                tracker_url=tracker.url,
                swarm_id=SWARM_ID,
                level=LEVEL,
                live=options.live,
                core=LIVE_CORE if options.live else {},
                hls=LIVE_HLS if options.live else {},
            )
            scheduler = (
                SchedulerConfig(high_demand_time_window=float(LIVE_CORE["highDemandTimeWindow"]))
                if options.live
                else SchedulerConfig()
            )
            async with Seeder(manifest, peer, renditions=[rendition]) as seeder:
                viewers: list[Viewer] = []

                def status() -> dict[str, Any]:
                    return {
                        "uptime": round(loop.time() - started, 1),
                        "seeder": {
                            "peerIds": [p for s in seeder.streams for p in _peer_ids(s)],
                            "peers": seeder.peer_count,
                            "httpBytes": seeder.http_bytes,
                            "uploadedBytes": seeder.uploaded,
                            "segmentsHeld": seeder.segments_held,
                        },
                        "viewers": [
                            {
                                "peerIds": _peer_ids(v.swarms),
                                "peers": 0 if v.swarms is None else v.swarms.peer_count,
                                "httpBytes": v.http_bytes,
                                "p2pBytes": v.p2p_bytes,
                                "uploadedBytes": v.uploaded,
                            }
                            for v in viewers
                        ],
                        "origin": {"segmentBytes": server.stats.segment_bytes()},
                    }

                server.status = status
                ready(server.page_url)
                try:
                    for _ in range(options.viewers):
                        if stop.is_set():
                            break
                        viewer = Viewer(
                            manifest,
                            peer,
                            rendition=rendition,
                            scheduler=scheduler,
                            live_sync_segments=int(LIVE_HLS["liveSyncDurationCount"]),
                        )
                        viewers.append(viewer)
                        await viewer.start()
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(options.stagger):
                                await stop.wait()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(
                            None
                            if options.duration is None
                            else max(0.0, options.duration - (loop.time() - started))
                        ):
                            await stop.wait()
                finally:
                    summaries = [v.summary() for v in viewers]
                    await asyncio.gather(*(v.aclose() for v in viewers))
                seeder_summary = seeder.summary()
    finally:
        segment_bytes = server.stats.segment_bytes()
        await server.aclose()
    return DemoSummary(
        stream=(
            f"{'live' if options.live else 'VOD'} ffmpeg test stream, "
            f"{level.width}x{level.height}, {level.target_duration} s segments"
        ),
        duration=loop.time() - started,
        seeder=seeder_summary,
        viewers=summaries,
        origin_segment_bytes=segment_bytes,
        # One copy = what the seeder fetched; the tabs' and viewers' own HTTP comes on top.
        origin_copies=segment_bytes / max(seeder_summary.http_bytes, 1),
    )
