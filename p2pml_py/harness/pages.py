"""The player pages (``web/pages``): which player and p2p-media-loader version each one runs.

* ``hlsjs``: hls.js 1.6.19 + ``p2p-media-loader-hlsjs`` 2.3.1 (``pml-2.3.html``) or 2.2.2
  (``pml-2.2.html``), module ``player.mjs``;
* ``shaka``: Shaka Player 4.16 + ``p2p-media-loader-shaka`` 2.2.2 (``shaka-2.2.html``), module
  ``shaka.mjs``. The Shaka integration is published at 2.2.2 only (npm), so there is no 2.3 page.

Every page counts the same core events into ``window.p2pmlStats`` (``common.mjs``, ``stats.js``).

``peertube-2.2.html`` (module ``peertube.mjs``) is a PeerTube watch page: hls.js +
``p2p-media-loader-hlsjs`` 2.2.2 configured from a video's API object the way PeerTube 7.1 - 8.x's
player does (:func:`peertube_page_name`; opened with :mod:`p2pml_py.harness.peertube`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from p2pml_py.base.errors import LocalProtocolError

__all__ = [
    "FULL_VERSIONS",
    "PEERTUBE_VERSIONS",
    "PLAYERS",
    "PLAYER_VERSIONS",
    "Player",
    "Version",
    "page_name",
    "peertube_page_name",
]

Player = Literal["hlsjs", "shaka"]
Version = Literal["2.3", "2.2"]
PLAYERS: tuple[Player, ...] = ("hlsjs", "shaka")
#: The p2p-media-loader versions each player's integration is pinned at (web/package.json).
PLAYER_VERSIONS: Mapping[Player, tuple[Version, ...]] = {
    "hlsjs": ("2.3", "2.2"),
    "shaka": ("2.2",),
}
FULL_VERSIONS: Mapping[Version, str] = {"2.3": "2.3.1", "2.2": "2.2.2"}
#: The p2p-media-loader versions of the PeerTube page: PeerTube 7.1 - 8.x ship 2.2.x.
PEERTUBE_VERSIONS: tuple[Version, ...] = ("2.2",)


def page_name(player: str, version: str) -> str:
    """The page file of ``player`` with p2p-media-loader ``version``; a clear error for a
    combination that does not exist."""
    if player not in PLAYER_VERSIONS:
        raise LocalProtocolError(f"unknown player {player!r} (one of {', '.join(PLAYERS)})")
    versions = PLAYER_VERSIONS[player]  # type: ignore[index]
    if version not in versions:
        raise LocalProtocolError(
            f"no {player} page for p2p-media-loader {version!r} (available: {', '.join(versions)})"
        )
    return f"pml-{version}.html" if player == "hlsjs" else f"shaka-{version}.html"


def peertube_page_name(version: str = "2.2") -> str:
    """The PeerTube page with p2p-media-loader ``version``; a clear error for another version."""
    if version not in PEERTUBE_VERSIONS:
        raise LocalProtocolError(
            f"no PeerTube page for p2p-media-loader {version!r} "
            f"(available: {', '.join(PEERTUBE_VERSIONS)})"
        )
    return f"peertube-{version}.html"
