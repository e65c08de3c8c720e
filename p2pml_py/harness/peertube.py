"""The emulated PeerTube instance (:mod:`p2pml_py.testing.peertube`) with the harness's files, and
the PeerTube watch page (``web/pages/peertube-2.2.html``).

* :func:`ensure_peertube_media` -- the ffmpeg-made video, once, in ``<cache>/peertube-media``;
* :func:`emulated_peertube` -- :func:`~p2pml_py.testing.peertube.run_peertube` with the node
  script ``web/node/peertube-tracker.mjs`` and the harness's ``node_modules``;
* :class:`PeerTubePageConfig` / :func:`open_peertube_page` -- a page that plays a video from its
  API URL as PeerTube's player does; :func:`peertube_stats` reads what its SHA-256 validator did.

The page is served by the harness origin (:class:`~p2pml_py.harness.origin.InteropOrigin`, with
the npm packages); the instance answers it cross-origin (``Access-Control-Allow-Origin: *``).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from p2pml_py.base.errors import HarnessError
from p2pml_py.harness.browser import Chromium, JSONValue, PlayerConfig, PlayerPage
from p2pml_py.harness.pages import peertube_page_name
from p2pml_py.harness.paths import cache_dir, node_root, node_scripts_dir
from p2pml_py.testing.peertube import (
    EmulatedPeerTube,
    EmulatedVideo,
    PeerTubeTracker,
    run_peertube,
)
from p2pml_py.testing.peertube_media import PeerTubeMedia, cached_peertube_media

__all__ = [
    "PeerTubePageConfig",
    "PeerTubeValidation",
    "emulated_peertube",
    "ensure_peertube_media",
    "open_peertube_page",
    "peertube_stats",
    "peertube_tracker_script",
]


def peertube_tracker_script() -> Path:
    return node_scripts_dir() / "peertube-tracker.mjs"


def ensure_peertube_media(cache: Path | None = None, *, duration: int = 30) -> PeerTubeMedia:
    """The emulated instance's video, made once into ``<cache>/peertube-media``."""
    return cached_peertube_media((cache or cache_dir()) / "peertube-media", duration=duration)


@contextlib.asynccontextmanager
async def emulated_peertube(
    videos: Sequence[EmulatedVideo],
    *,
    media: PeerTubeMedia | None = None,
    interval_ms: int | None = None,
    **instance: Any,
) -> AsyncIterator[tuple[EmulatedPeerTube, PeerTubeTracker]]:
    """The instance and its tracker on 127.0.0.1 (``instance``: :class:`EmulatedPeerTube`
    keywords: ``server_version``, ``api_window``, ``api_max``, ``tokens`` ...)."""
    async with run_peertube(
        media or ensure_peertube_media(),
        videos,
        tracker_script=peertube_tracker_script(),
        node_root=node_root(),
        interval_ms=interval_ms,
        **instance,
    ) as running:
        yield running


@dataclass(frozen=True, slots=True)
class PeerTubePageConfig(PlayerConfig):
    """A PeerTube page: ``manifest_url`` is the video's **API URL** (the page reads the playlist,
    the SHA-256 list and the trackers from it); ``trackers``, ``swarm_id`` and ``sha`` are unused
    (the page takes them from the API object, as PeerTube's player does). Build one with
    :meth:`for_video`."""

    password: str | None = None
    validate_http: bool = True
    p2p: bool = True

    @classmethod
    def for_video(
        cls,
        api_url: str,
        *,
        level: int | None = 0,
        password: str | None = None,
        validate_http: bool = True,
        p2p: bool = True,
        core: Mapping[str, JSONValue] | None = None,
        hls: Mapping[str, JSONValue] | None = None,
    ) -> PeerTubePageConfig:
        return cls(
            version="2.2",
            manifest_url=api_url,
            trackers=(),
            level=level,
            sha=False,
            core=dict(core or {}),
            hls=dict(hls or {}),
            password=password,
            validate_http=validate_http,
            p2p=p2p,
        )

    def query(self) -> str:
        items: list[tuple[str, str]] = [("video", self.manifest_url)]
        if self.password is not None:
            items.append(("password", self.password))
        if self.level is not None:
            items.append(("level", str(self.level)))
        if not self.validate_http:
            items.append(("validateHttp", "0"))
        if not self.p2p:
            items.append(("p2p", "0"))
        items += [(f"core.{k}", json.dumps(v)) for k, v in self.core.items()]
        items += [(f"hls.{k}", json.dumps(v)) for k, v in self.hls.items()]
        return urlencode(items)


async def open_peertube_page(
    chromium: Chromium, pages_base_url: str, config: PeerTubePageConfig, label: str
) -> PlayerPage:
    """Open the PeerTube page served under ``pages_base_url`` (the harness origin's base URL)."""
    url = f"{pages_base_url}/pages/{peertube_page_name(config.version)}"
    return await chromium.open_player(url, config, label)


@dataclass(frozen=True, slots=True)
class PeerTubeValidation:
    """``window.p2pmlStats.peertube``: the page's PeerTube settings and its validator's counts."""

    swarm_id: str | None
    playlist_url: str | None
    segments_sha256_url: str | None
    announce_trackers: tuple[str, ...]
    list_fetches: int
    refetches: int
    validated_p2p: int
    validated_http: int
    failed_p2p: int
    failed_http: int
    failures: tuple[str, ...] = field(default=())

    @classmethod
    def from_js(cls, raw: Mapping[str, Any]) -> PeerTubeValidation:
        return cls(
            swarm_id=raw.get("swarmId"),
            playlist_url=raw.get("playlistUrl"),
            segments_sha256_url=raw.get("segmentsSha256Url"),
            announce_trackers=tuple(raw.get("announceTrackers") or ()),
            list_fetches=int(raw.get("listFetches", 0)),
            refetches=int(raw.get("refetches", 0)),
            validated_p2p=int(raw.get("validatedP2P", 0)),
            validated_http=int(raw.get("validatedHttp", 0)),
            failed_p2p=int(raw.get("failedP2P", 0)),
            failed_http=int(raw.get("failedHttp", 0)),
            failures=tuple(
                f"{f.get('source')} {f.get('file')} {f.get('range')}: {f.get('reason')}"
                for f in raw.get("failures") or ()
            ),
        )


async def peertube_stats(page: PlayerPage) -> PeerTubeValidation:
    raw = await page.page.evaluate(
        "() => JSON.parse(JSON.stringify(window.p2pmlStats.peertube || null))"
    )
    if not isinstance(raw, dict):
        raise HarnessError(f"{page.label}: not a PeerTube page (no window.p2pmlStats.peertube)")
    return PeerTubeValidation.from_js(raw)
