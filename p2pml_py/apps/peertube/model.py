"""What a PeerTube instance tells us, and which swarms its players build (sans-I/O).

PeerTube's web player (``client/src/assets/player/shared/player-options-builder/
hls-options-builder.ts``) configures p2p-media-loader with exactly three things from the video's
API object (``GET /api/v1/videos/{id}``, ``VideoDetails``):

* ``swarmId`` = the HLS streaming playlist's ``playlistUrl`` (the master playlist);
* ``announceTrackers`` = ``trackerUrls`` that start with ``ws`` (the instance's own
  ``wss://<host>/tracker/socket`` for its local videos, ``server/core/models/video/video.ts
  getTrackerUrls``);
* ``validateP2PSegment`` = a check of every P2P segment against ``segmentsSha256Url``
  (``.../p2p-media-loader/segment-validator.ts``); without that URL the player disables P2P.

The instance's tracker (``server/core/controllers/tracker.ts``) knows, per streaming playlist, the
info hashes its server computed (``p2pMediaLoaderInfohashes``); an announce of any other hash over
the WebSocket closes the socket and **blocks the IP for 3 minutes** (``TRACKER_RATE_LIMITS.
BLOCK_IP_LIFETIME``). PeerTube 7.1 to 8.x run upstream p2p-media-loader 2.2 (``P2P_MEDIA_LOADER_
PEER_VERSION = 2``), and the server's set is the 2.2 recipe on the playlist URL, as PeerTube's own
test computes it (``packages/tests/src/shared/streaming-playlists.ts checkPlaylistInfohash``):
``v2-<playlistUrl>-main-<i>`` for every HLS file ``i``, ``v2-<playlistUrl>-secondary-0`` when
an audio-only file (resolution 0) exists; digest ``generateP2PMediaLoaderHash`` = hex of the
20 base64 characters of MD5 bytes 1..15, i.e. :func:`p2pml_py.identity.info_hash` for 2.2.
The player's own swarms (hls.js level positions, audio track positions) are a subset of that set;
:func:`known_info_hashes` gives the set, and a seeder announces only the streams whose hash is in
it (:attr:`p2pml_py.engine.streams.PeerOptions.only_info_hashes`).

PeerTube 7.0 and older use a fork of p2p-media-loader 0.6 (JSON commands, SHA-1 info hashes,
``-WW0006-`` peer ids): another protocol, refused by :func:`protocol_for_server`. A version we have
not checked (9 and later) is refused too: a wrong guess gets the seeder's IP blocked.

Parsing is strict and names the field: an instance that answers something else than PeerTube's
schema (``support/doc/api/openapi.yaml``) is an error, not a guess.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from p2pml_py.base.errors import SourceError
from p2pml_py.identity import ProtocolVersion, info_hash, stream_swarm_id

__all__ = [
    "LISTING_PAGE",
    "HlsFile",
    "InstanceTarget",
    "PeerTubeError",
    "Privacy",
    "TargetKind",
    "UnsupportedInstanceError",
    "Video",
    "VideoRef",
    "known_info_hashes",
    "parse_config",
    "parse_target",
    "parse_video",
    "parse_video_list",
    "protocol_for_server",
    "skip_reason",
]

#: PeerTube's API caps ``count`` at 100 per page (``server/core/middlewares/validators/
#: pagination.ts``: ``PAGINATION.GLOBAL.COUNT.MAX``).
LISTING_PAGE = 100
#: ``VideoState.PUBLISHED`` (``packages/models/src/videos/video-state.enum.ts``).
STATE_PUBLISHED = 1
#: First and first-unsupported server versions that run upstream p2p-media-loader 2.2.
FIRST_V2 = (7, 1, 0)
FIRST_UNCHECKED = (9, 0, 0)

_VERSION_RE = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+))?(?:[-+].*)?$")
#: A video id in a URL: numeric id, UUID, or short UUID (base58, 22 characters in practice).
_ID_RE = re.compile(r"[0-9A-Za-z-]{1,64}$")
#: A channel or account handle: ``name`` or ``name@host``.
_HANDLE_RE = re.compile(r"[0-9A-Za-z_.:-]{1,100}(?:@[0-9A-Za-z.:-]{1,255})?$")


class PeerTubeError(SourceError):
    """The instance answered something we cannot use (the message names the field)."""


class UnsupportedInstanceError(PeerTubeError):
    """The instance runs a PeerTube whose players speak another protocol than ours."""


class Privacy(enum.IntEnum):
    """``VideoPrivacy`` (``packages/models/src/videos/video-privacy.enum.ts``)."""

    PUBLIC = 1
    UNLISTED = 2
    PRIVATE = 3
    INTERNAL = 4
    PASSWORD_PROTECTED = 5


class TargetKind(enum.Enum):
    VIDEO = "video"
    CHANNEL = "channel"
    ACCOUNT = "account"
    INSTANCE = "instance"


@dataclass(frozen=True, slots=True)
class InstanceTarget:
    """What a URL on the command line names: one video, a channel, an account or an instance."""

    kind: TargetKind
    #: ``scheme://host[:port]`` of the instance.
    base_url: str
    #: Video id (numeric, UUID or short UUID) or channel/account handle; ``""`` for an instance.
    ident: str = ""

    @property
    def api_path(self) -> str:
        """The API path that resolves this target (a video, or a listing page without query)."""
        ident = quote(self.ident, safe="@")
        if self.kind is TargetKind.VIDEO:
            return f"/api/v1/videos/{ident}"
        if self.kind is TargetKind.CHANNEL:
            return f"/api/v1/video-channels/{ident}/videos"
        if self.kind is TargetKind.ACCOUNT:
            return f"/api/v1/accounts/{ident}/videos"
        return "/api/v1/videos"

    def __str__(self) -> str:
        return f"{self.kind.value} {self.ident or self.base_url} on {self.base_url}"


def parse_target(url: str) -> InstanceTarget:
    """Classify a URL a user copies from a PeerTube instance.

    Videos: ``/w/<shortUUID>``, ``/videos/watch/<id>``, ``/videos/embed/<id>``,
    ``/api/v1/videos/<id>``. Channels: ``/c/<handle>``, ``/video-channels/<handle>``. Accounts:
    ``/a/<handle>``, ``/accounts/<handle>``. The instance itself: ``/`` (its local videos).
    Playlists (``/w/p/...``) and anything else raise :class:`ValueError` naming the URL.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL of a PeerTube instance: {url!r}")
    base = urlunsplit((parts.scheme, parts.netloc.lower(), "", "", ""))
    segments = [s for s in parts.path.split("/") if s]
    if segments and segments[0] == "api" and segments[1:3] == ["v1", "videos"]:
        segments = ["videos", "watch", *segments[3:]]
    kind: TargetKind | None = None
    ident = ""
    match segments:
        case []:
            kind = TargetKind.INSTANCE
        case ["w", "p", *_] | ["videos", "watch", "playlist", *_]:
            raise ValueError(f"{url!r} is a playlist: give its videos', channel's or account's URL")
        case ["w", ident] | ["videos", ("watch" | "embed"), ident]:
            kind = TargetKind.VIDEO
        case ["c" | "video-channels", ident, *_]:
            kind = TargetKind.CHANNEL
        case ["a" | "accounts", ident, *_]:
            kind = TargetKind.ACCOUNT
    if kind is None:
        raise ValueError(
            f"{url!r}: not a PeerTube video, channel, account or instance URL "
            "(expected /w/<id>, /videos/watch/<id>, /api/v1/videos/<id>, /c/<channel>, "
            "/a/<account> or the instance's root)"
        )
    pattern = _ID_RE if kind is TargetKind.VIDEO else _HANDLE_RE
    if kind is not TargetKind.INSTANCE and not pattern.match(ident):
        raise ValueError(f"{url!r}: {ident!r} is not a valid {kind.value} id")
    return InstanceTarget(kind, base, ident)


def parse_version(text: str) -> tuple[int, int, int]:
    m = _VERSION_RE.match(text.strip())
    if m is None:
        raise PeerTubeError(f"config: serverVersion {text!r} is not a version")
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def parse_config(obj: Any) -> str:
    """``GET /api/v1/config`` → the ``serverVersion`` string."""
    if not isinstance(obj, Mapping):
        raise PeerTubeError("config: not a JSON object")
    version = obj.get("serverVersion")
    if not isinstance(version, str) or not version:
        raise PeerTubeError("config: serverVersion missing or not a string")
    parse_version(version)
    return version


def protocol_for_server(version: str) -> ProtocolVersion:
    """The p2p-media-loader generation PeerTube ``version``'s players run (module doc)."""
    number = parse_version(version)
    if number < FIRST_V2:
        raise UnsupportedInstanceError(
            f"PeerTube {version} uses its fork of p2p-media-loader 0.6 (JSON messages, SHA-1 "
            "info hashes), which p2pml-py does not speak: PeerTube 7.1 and later are supported"
        )
    if number >= FIRST_UNCHECKED:
        raise UnsupportedInstanceError(
            f"PeerTube {version} is newer than the releases p2pml-py was checked against "
            "(7.1 to 8.x): its swarms may differ, and announcing a swarm the instance does not "
            "know gets this host's IP blocked by its tracker"
        )
    return ProtocolVersion.V2_2


@dataclass(frozen=True, slots=True)
class HlsFile:
    """One file of the HLS streaming playlist: a resolution (0 = audio only)."""

    resolution: int
    playlist_url: str | None


@dataclass(frozen=True, slots=True)
class VideoRef:
    """A video as listings show it: enough to fetch its details."""

    uuid: str
    name: str
    is_local: bool


@dataclass(frozen=True, slots=True)
class Video:
    """The part of ``VideoDetails`` a seeder needs."""

    uuid: str
    short_uuid: str
    name: str
    privacy: int
    state: int
    is_live: bool
    is_local: bool
    #: ``account.host``: the instance that owns the video.
    host: str
    #: The HLS playlist's master ``playlistUrl`` (``None``: the video has no HLS playlist).
    playlist_url: str | None
    segments_sha256_url: str | None
    files: tuple[HlsFile, ...]
    tracker_urls: tuple[str, ...]

    @property
    def ws_trackers(self) -> tuple[str, ...]:
        """The trackers the player announces to (``trackerAnnounce.filter(t => t.startsWith('ws'))``)."""
        return tuple(url for url in self.tracker_urls if url.startswith("ws"))

    @property
    def http_trackers(self) -> tuple[str, ...]:
        return tuple(url for url in self.tracker_urls if url.startswith("http"))

    @property
    def label(self) -> str:
        return f"{self.name!r} ({self.short_uuid or self.uuid})"


def _field(obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = obj.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise PeerTubeError(f"{where}: {key} missing or not a {_kind_name(kind)}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    if isinstance(kind, tuple):
        return " or ".join(k.__name__ for k in kind)
    return kind.__name__


def _optional_url(obj: Mapping[str, Any], key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or urlsplit(value).scheme not in ("http", "https"):
        raise PeerTubeError(f"{where}: {key} is not an http(s) URL")
    return value


def _id_label(obj: Mapping[str, Any], key: str, where: str) -> int:
    value = obj.get(key)
    if isinstance(value, Mapping):
        value = value.get("id")
    if not isinstance(value, int) or isinstance(value, bool):
        raise PeerTubeError(f"{where}: {key}.id missing or not an integer")
    return value


def parse_video(obj: Any) -> Video:
    """``GET /api/v1/videos/{id}`` → :class:`Video` (the HLS playlist is ``type`` 1)."""
    if not isinstance(obj, Mapping):
        raise PeerTubeError("video: not a JSON object")
    uuid = _field(obj, "uuid", str, "video")
    where = f"video {uuid}"
    name = _field(obj, "name", str, where)
    raw_short = obj.get("shortUUID")
    short_uuid = raw_short if isinstance(raw_short, str) else ""
    is_live = bool(obj.get("isLive", False))
    is_local = obj.get("isLocal", True) is not False
    account = obj.get("account")
    host = account.get("host", "") if isinstance(account, Mapping) else ""
    trackers = obj.get("trackerUrls", [])
    if not isinstance(trackers, list) or not all(isinstance(t, str) for t in trackers):
        raise PeerTubeError(f"{where}: trackerUrls is not a list of strings")
    playlists = obj.get("streamingPlaylists", [])
    if not isinstance(playlists, list):
        raise PeerTubeError(f"{where}: streamingPlaylists is not a list")
    playlist_url = sha_url = None
    files: list[HlsFile] = []
    for i, playlist in enumerate(playlists):
        pwhere = f"{where}: streamingPlaylists[{i}]"
        if not isinstance(playlist, Mapping):
            raise PeerTubeError(f"{pwhere} is not an object")
        if playlist.get("type") != 1:  # VideoStreamingPlaylistType.HLS
            continue
        playlist_url = _optional_url(playlist, "playlistUrl", pwhere)
        sha_url = _optional_url(playlist, "segmentsSha256Url", pwhere)
        raw_files = playlist.get("files", [])
        if not isinstance(raw_files, list):
            raise PeerTubeError(f"{pwhere}: files is not a list")
        for j, raw in enumerate(raw_files):
            fwhere = f"{pwhere}.files[{j}]"
            if not isinstance(raw, Mapping):
                raise PeerTubeError(f"{fwhere} is not an object")
            resolution = _id_label(raw, "resolution", fwhere)
            files.append(HlsFile(resolution, _optional_url(raw, "playlistUrl", fwhere)))
        break
    return Video(
        uuid=uuid,
        short_uuid=short_uuid,
        name=name,
        privacy=_id_label(obj, "privacy", where),
        state=_id_label(obj, "state", where) if "state" in obj else STATE_PUBLISHED,
        is_live=is_live,
        is_local=is_local,
        host=host if isinstance(host, str) else "",
        playlist_url=playlist_url,
        segments_sha256_url=sha_url,
        files=tuple(files),
        tracker_urls=tuple(trackers),
    )


def parse_video_list(obj: Any) -> tuple[int, list[VideoRef]]:
    """A listing page (``{total, data: [Video]}``) → (total, the page's videos)."""
    if not isinstance(obj, Mapping):
        raise PeerTubeError("video list: not a JSON object")
    total = _field(obj, "total", int, "video list")
    data = _field(obj, "data", list, "video list")
    refs = []
    for i, item in enumerate(data):
        if not isinstance(item, Mapping):
            raise PeerTubeError(f"video list: data[{i}] is not an object")
        refs.append(
            VideoRef(
                uuid=_field(item, "uuid", str, f"video list: data[{i}]"),
                name=str(item.get("name", "")),
                is_local=item.get("isLocal", True) is not False,
            )
        )
    return total, refs


def known_info_hashes(
    video: Video, version: ProtocolVersion = ProtocolVersion.V2_2, *, files: int | None = None
) -> frozenset[str]:
    """The info hashes the instance's tracker accepts for ``video`` (module doc), as the
    20-character strings the tracker protocol carries. ``files``: how many files to count when
    the API lists none (a live video: one per variant of its master playlist)."""
    return frozenset(info_hash(name, version) for name in stream_names(video, files=files))


def hex_info_hash(value: str) -> str:
    """The hex form PeerTube stores and logs (``generateP2PMediaLoaderHash``)."""
    return value.encode("latin-1").hex()


def skip_reason(video: Video, *, named: bool, credentials: bool) -> str | None:
    """Why ``video`` is not seeded, or ``None``.

    ``named``: the user gave this video's own URL (an unlisted video's link is how its owner
    shares it; listings never reveal one). ``credentials``: a token or video password was given.
    """
    if not video.is_local:
        origin = video.host or "its own instance"
        return f"hosted on {origin}: seed it with its URL there (its tracker knows its swarms)"
    if video.playlist_url is None or not (video.files or video.is_live):
        return "has no HLS playlist (web videos only): PeerTube's player uses P2P only with HLS"
    if video.segments_sha256_url is None:
        return "has no segments-sha256 file: PeerTube's player disables P2P without it"
    if not video.ws_trackers:
        return "lists no WebSocket tracker: PeerTube's player has no swarm to join"
    if video.state != STATE_PUBLISHED:
        return f"is not published (state {video.state})"
    if video.privacy == Privacy.UNLISTED and not (named or credentials):
        return "is unlisted: seeded only when its own URL is given"
    if video.privacy in (Privacy.PRIVATE, Privacy.INTERNAL, Privacy.PASSWORD_PROTECTED):
        if not credentials:
            label = Privacy(video.privacy).name.lower().replace("_", " ")
            return f"is {label}: give --token (or --video-password) to seed it"
    elif video.privacy not in (Privacy.PUBLIC, Privacy.UNLISTED):
        return f"has an unknown privacy {video.privacy}"
    return None


def stream_names(video: Video, *, files: int | None = None) -> list[str]:
    """The stream swarm ids behind :func:`known_info_hashes`: ``main-<i>`` per file (``files``
    of them if given), ``secondary-0`` when an audio-only file exists."""
    if video.playlist_url is None:
        return []
    count = len(video.files) if files is None else files
    names = [stream_swarm_id(video.playlist_url, "main", i) for i in range(count)]
    if any(f.resolution == 0 for f in video.files):
        names.append(stream_swarm_id(video.playlist_url, "secondary", 0))
    return names
