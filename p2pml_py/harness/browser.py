"""Chromium pages playing the test stream through hls.js or Shaka Player + p2p-media-loader,
driven by Playwright.

:class:`Chromium` launches Debian's ``/usr/bin/chromium`` (``playwright install`` cannot download
browsers here) with the flags INTEROP-NOTES lists as necessary for WebRTC on loopback inside a
network namespace. Playwright gives the browser a fresh temporary profile (user-data-dir) and
every :meth:`Chromium.open_player` call a fresh context of its own, so pages share nothing but
the swarm.

A page is configured entirely by its URL query (see ``web/pages/player.mjs`` and ``shaka.mjs``),
built here from a :class:`PlayerConfig`; its counters come back as :class:`PageStats`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

try:
    from playwright.async_api import Browser, BrowserContext, Page, Playwright, async_playwright
    from playwright.async_api import Error as PlaywrightError
except ImportError as exc:  # one line that names the fix, not a bare "No module named ..."
    raise ImportError(
        "the browser interop harness needs Playwright for Python: "
        "pip install 'p2pml-py[interop]' (or pip install playwright; never `playwright install`)"
    ) from exc

from p2pml_py.base.aio import Service
from p2pml_py.base.errors import HarnessError, LocalProtocolError
from p2pml_py.harness.pages import FULL_VERSIONS, Player, Version, page_name
from p2pml_py.harness.paths import DEFAULT_CHROMIUM, chromium_executable, missing_chromium
from p2pml_py.harness.remote import browser_endpoints, connect_browsers

__all__ = [
    "CHROMIUM_FLAGS",
    "Chromium",
    "PageStats",
    "PlayerConfig",
    "PlayerPage",
    "Version",
]

logger = logging.getLogger(__name__)

JSONValue = str | int | float | bool | None

#: INTEROP-NOTES "Chromium flags": each one is needed for peers to find each other on loopback.
CHROMIUM_FLAGS: tuple[str, ...] = (
    "--no-sandbox",  # Chromium refuses to start as root otherwise
    "--allow-loopback-in-peer-connection",  # 127.0.0.1 ICE candidates
    "--use-fake-ui-for-media-stream",  # candidates at all inside a loopback-only netns
    "--disable-features=WebRtcHideLocalIpsWithMdns",  # IPs, not .local names, in the SDP
    "--autoplay-policy=no-user-gesture-required",
    "--mute-audio",
    "--disable-background-networking",
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--no-first-run",
    "--metrics-recording-only",
    "--password-store=basic",
)

DEFAULT_EXECUTABLE = DEFAULT_CHROMIUM


@dataclass(frozen=True, slots=True)
class PlayerConfig:
    """What one page plays and how (turned into the page URL query).

    ``player``: ``"hlsjs"`` (p2p-media-loader 2.3 or 2.2) or ``"shaka"`` (2.2 only); ``hls`` are
    hls.js options, ``shaka`` are ``player.configure(key, value)`` calls (dotted keys).
    """

    version: Version
    manifest_url: str
    trackers: tuple[str, ...]
    level: int | None = 0
    swarm_id: str | None = None
    sha: bool = True
    core: Mapping[str, JSONValue] = field(default_factory=dict)
    hls: Mapping[str, JSONValue] = field(default_factory=dict)
    player: Player = "hlsjs"
    shaka: Mapping[str, JSONValue] = field(default_factory=dict)
    #: A viewer-stats collector's report URL: the page attaches ``pingback.js`` from it.
    pingback: str | None = None

    def __post_init__(self) -> None:
        if self.version not in FULL_VERSIONS:
            raise LocalProtocolError(f"unknown p2p-media-loader version {self.version!r}")
        page_name(self.player, self.version)  # a clear error for shaka + 2.3
        if self.hls and self.player != "hlsjs":
            raise LocalProtocolError(f"hls options given for a {self.player} page")
        if self.shaka and self.player != "shaka":
            raise LocalProtocolError(f"shaka options given for a {self.player} page")

    @property
    def full_version(self) -> str:
        return FULL_VERSIONS[self.version]

    @property
    def label(self) -> str:
        """``2.3.1`` for hls.js pages, ``shaka 2.2.2`` for Shaka pages (report tables)."""
        return self.full_version if self.player == "hlsjs" else f"{self.player} {self.full_version}"

    def query(self) -> str:
        items: list[tuple[str, str]] = [("manifest", self.manifest_url)]
        items += [("tracker", url) for url in self.trackers]
        if self.level is not None:
            items.append(("level", str(self.level)))
        if self.swarm_id is not None:
            items.append(("swarmId", self.swarm_id))
        if self.sha:
            items.append(("sha", "1"))
        items += [(f"core.{k}", json.dumps(v)) for k, v in self.core.items()]
        items += [(f"hls.{k}", json.dumps(v)) for k, v in self.hls.items()]
        items += [(f"shaka.{k}", json.dumps(v)) for k, v in self.shaka.items()]
        if self.pingback is not None:
            items.append(("pingback", self.pingback))
        return urlencode(items)


@dataclass(frozen=True, slots=True)
class PageStats:
    """A snapshot of ``window.p2pmlStats`` (see ``web/pages/stats.js``)."""

    version: str
    ready: bool
    error: str | None
    level: int | None
    http_bytes: int
    p2p_bytes: int
    uploaded_bytes: int
    downloaded_by_peer: Mapping[str, int]
    uploaded_by_peer: Mapping[str, int]
    peers_connected: tuple[str, ...]
    peers_seen: tuple[str, ...]
    peer_errors: tuple[str, ...]
    segments_http: int
    segments_p2p: int
    segment_errors: tuple[str, ...]
    p2p_segments: Mapping[str, str]
    own_peer_ids: Mapping[str, str]
    tracker_errors: tuple[str, ...]
    stalls: int
    startup_stalls: int
    waiting_after_start: int
    playing: bool
    position: float
    buffered: float
    fatal_errors: tuple[str, ...]

    @classmethod
    def from_js(cls, raw: Mapping[str, Any]) -> PageStats:
        by_peer: Mapping[str, Mapping[str, int]] = raw.get("byPeer") or {}
        return cls(
            version=str(raw.get("version")),
            ready=bool(raw.get("ready")),
            error=raw.get("error"),
            level=raw.get("level"),
            http_bytes=int(raw.get("httpBytes", 0)),
            p2p_bytes=int(raw.get("p2pBytes", 0)),
            uploaded_bytes=int(raw.get("uploadedBytes", 0)),
            downloaded_by_peer={k: int(v.get("downloaded", 0)) for k, v in by_peer.items()},
            uploaded_by_peer={k: int(v.get("uploaded", 0)) for k, v in by_peer.items()},
            peers_connected=tuple(raw.get("peersConnected") or ()),
            peers_seen=tuple(raw.get("peersSeen") or ()),
            peer_errors=tuple(raw.get("peerErrors") or ()),
            segments_http=int(raw.get("segmentsHttp", 0)),
            segments_p2p=int(raw.get("segmentsP2P", 0)),
            segment_errors=tuple(raw.get("segmentErrors") or ()),
            p2p_segments=dict(raw.get("p2pSegments") or {}),
            own_peer_ids=dict(raw.get("ownPeerIds") or {}),
            tracker_errors=tuple(raw.get("trackerErrors") or ()),
            stalls=int(raw.get("stalls", 0)),
            startup_stalls=int(raw.get("startupStalls", 0)),
            waiting_after_start=int(raw.get("waitingAfterStart", 0)),
            playing=bool(raw.get("playing")),
            position=float(raw.get("position", 0.0)),
            buffered=float(raw.get("buffered", 0.0)),
            fatal_errors=tuple(raw.get("fatalErrors") or ()),
        )

    @property
    def total_bytes(self) -> int:
        return self.http_bytes + self.p2p_bytes

    @property
    def p2p_ratio(self) -> float:
        return self.p2p_bytes / self.total_bytes if self.total_bytes else 0.0

    def bytes_from(self, peer_ids: Sequence[str] | set[str] | frozenset[str]) -> int:
        """P2P bytes this page downloaded from any of ``peer_ids``."""
        return sum(n for peer, n in self.downloaded_by_peer.items() if peer in peer_ids)


class PlayerPage:
    """One Chromium page (in its own browser context) playing a :class:`PlayerConfig`."""

    def __init__(self, label: str, config: PlayerConfig, context: BrowserContext, page: Page):
        self.label = label
        self.config = config
        self._context = context
        self.page = page
        self.console: list[str] = []
        self._closed = False
        page.on("console", lambda message: self.console.append(f"{message.type}: {message.text}"))
        page.on("pageerror", lambda error: self.console.append(f"pageerror: {error}"))

    async def stats(self) -> PageStats:
        raw = await self.page.evaluate("() => JSON.parse(JSON.stringify(window.p2pmlStats))")
        if not isinstance(raw, dict):
            raise HarnessError(f"{self.label}: window.p2pmlStats is missing")
        return PageStats.from_js(raw)

    async def wait_for(self, expression: str, timeout: float) -> None:
        """Wait until the JS ``expression`` (``s`` is ``window.p2pmlStats``) is true.

        Raises :class:`HarnessError` with the page's stats and console tail on timeout.
        """
        script = f"() => {{ const s = window.p2pmlStats; return !!(s && ({expression})); }}"
        try:
            await self.page.wait_for_function(script, timeout=timeout * 1000, polling=200)
        except PlaywrightError as exc:
            snapshot: object
            try:
                snapshot = await self.stats()
            except (PlaywrightError, HarnessError) as inner:
                snapshot = inner
            tail = "\n".join(self.console[-20:])
            raise HarnessError(
                f"{self.label}: {expression!r} not true after {timeout:.0f} s: {exc}\n"
                f"stats: {snapshot}\nconsole:\n{tail}"
            ) from exc

    async def apply_core_config(self, core: Mapping[str, JSONValue]) -> None:
        """Change core settings of the running player (``applyDynamicConfig``: 2.2 and 2.3,
        hls.js and Shaka engines)."""
        await self.page.evaluate(
            "(core) => window.p2pmlPlayer.engine.applyDynamicConfig({ core })", dict(core)
        )

    async def wait_playing(self, position: float, timeout: float) -> None:
        """Wait until playback reached ``position`` seconds."""
        await self.wait_for(f"s.position >= {float(position)}", timeout)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(PlaywrightError):
            await self._context.close()


def _require_executable(path: str) -> None:
    reason = missing_chromium(path)
    if reason is not None:
        raise HarnessError(reason)


class Chromium(Service):
    """A headless Chromium; ``async with Chromium() as chromium`` then :meth:`open_player`."""

    def __init__(
        self,
        executable: str | None = None,
        *,
        headless: bool = True,
        extra_args: Sequence[str] = (),
        endpoints: Sequence[str] | None = None,
    ) -> None:
        # Playwright servers to use instead of the local Chromium (p2pml_py.harness.remote);
        # default: $P2PML_BROWSER_ENDPOINT, unset = local.
        self.endpoints = browser_endpoints() if endpoints is None else tuple(endpoints)
        self._remote_executable = executable or os.environ.get("P2PML_CHROMIUM")
        self.executable = executable or chromium_executable()
        self.headless = headless
        self.args = (*CHROMIUM_FLAGS, *extra_args)
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._browsers: list[Browser] = []  # pages go to each in turn (one per endpoint)
        self._pages: list[PlayerPage] = []
        self._closed = False

    async def start(self) -> None:
        if self._playwright is not None or self._closed:
            raise LocalProtocolError("Chromium already started or closed")
        if not self.endpoints:
            _require_executable(self.executable)
        self._playwright = await async_playwright().start()
        try:
            if self.endpoints:
                self._browsers = await connect_browsers(
                    self._playwright,
                    self.endpoints,
                    args=self.args,
                    headless=self.headless,
                    executable=self._remote_executable,
                )
            else:
                self._browsers = [
                    await self._playwright.chromium.launch(
                        executable_path=self.executable,
                        headless=self.headless,
                        args=list(self.args),
                    )
                ]
            self._browser = self._browsers[0]
        except BaseException:
            await self._playwright.stop()
            self._playwright = None
            raise

    async def aclose(self) -> None:
        """Close every page, the browser and Playwright. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for page in self._pages:
            await page.aclose()
        for browser in self._browsers:
            with contextlib.suppress(PlaywrightError):
                await browser.close()
        if self._playwright is not None:
            await self._playwright.stop()

    @property
    def pages(self) -> tuple[PlayerPage, ...]:
        return tuple(self._pages)

    async def open_player(self, page_url: str, config: PlayerConfig, label: str) -> PlayerPage:
        """Open ``page_url`` (the origin's page for ``config.player`` and ``config.version``)
        with ``config``."""
        if self._browser is None or self._closed:
            raise LocalProtocolError("Chromium not started")
        context = await self._browsers[len(self._pages) % len(self._browsers)].new_context()
        page = await context.new_page()
        player = PlayerPage(label, config, context, page)
        self._pages.append(player)
        await page.goto(f"{page_url}?{config.query()}")
        await player.wait_for("s.version !== null || s.error !== null", timeout=15)
        stats = await player.stats()
        if stats.error:
            raise HarnessError(f"{label}: the page could not start: {stats.error}")
        return player
