"""The player pages (``web/pages``): which player and p2p-media-loader version each one runs.

* ``hlsjs``: hls.js 1.6.19 + ``p2p-media-loader-hlsjs`` 2.3.1 (``pml-2.3.html``) or 2.2.2
  (``pml-2.2.html``), module ``player.mjs``;
* ``shaka``: Shaka Player 4.16 + ``p2p-media-loader-shaka`` 2.2.2 (``shaka-2.2.html``), module
  ``shaka.mjs``. The Shaka integration is published at 2.2.2 only (npm), so there is no 2.3 page.

Every page counts the same core events into ``window.p2pmlStats`` (``common.mjs``, ``stats.js``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from p2pml_py.base.errors import LocalProtocolError

__all__ = ["FULL_VERSIONS", "PLAYERS", "PLAYER_VERSIONS", "Player", "Version", "page_name"]

Player = Literal["hlsjs", "shaka"]
Version = Literal["2.3", "2.2"]
PLAYERS: tuple[Player, ...] = ("hlsjs", "shaka")
#: The p2p-media-loader versions each player's integration is pinned at (web/package.json).
PLAYER_VERSIONS: Mapping[Player, tuple[Version, ...]] = {
    "hlsjs": ("2.3", "2.2"),
    "shaka": ("2.2",),
}
FULL_VERSIONS: Mapping[Version, str] = {"2.3": "2.3.1", "2.2": "2.2.2"}


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
