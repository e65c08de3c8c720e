"""An emulated PeerTube instance on 127.0.0.1: REST API, HLS static files and its tracker.

Built from PeerTube's documented behaviour (its OpenAPI schema) and its source
(Chocobozzz/PeerTube), with real parts: ffmpeg-made media (:mod:`p2pml_py.testing.peertube_media`)
and the npm bittorrent-tracker behind PeerTube's filter (``harness/web/node/peertube-tracker.mjs``).
It needs no network beyond loopback.

**API** (:class:`EmulatedPeerTube`, an :class:`~p2pml_py.testing.origin.Origin`):

* ``GET /api/v1/config``: ``serverVersion`` (the player generation a client must pick), ``tracker:
  {enabled}``, ``defaults.p2p``;
* ``GET /api/v1/videos/{id}`` (numeric id, UUID or short UUID): ``VideoDetails`` -- ``files: []``
  (HLS only) and one ``streamingPlaylists`` entry (``type: 1``, ``playlistUrl``,
  ``segmentsSha256Url``, per-resolution ``files``), ``trackerUrls``. Private and internal videos
  answer 401 to an anonymous client (``Authorization: Bearer <token>`` with a token given to the
  instance opens them); password-protected ones 403 unless ``x-peertube-video-password`` matches.
  Their static files live under ``/static/streaming-playlists/hls/private/<uuid>/`` and need a
  video file token (``POST /api/v1/videos/{id}/token`` -> ``?videoFileToken=``), the bearer token
  or the password header;
* ``GET /api/v1/videos`` and ``GET /api/v1/video-channels/{handle}/videos`` (also
  ``/accounts/{handle}/videos``): ``{total, data}`` of public videos (``start``, ``count`` <= 100,
  ``sort``), the list shape without files;
* the API rate limit: over ``api_max`` requests from one IP in ``api_window`` seconds (PeerTube's
  ``rates_limit.api``: 50 per 10 s, ``config/default.yaml``) answer 429 with ``Retry-After``
  (express-rate-limit, mounted on ``/api/``). Every API request is recorded
  (:attr:`EmulatedPeerTube.api_requests`: path, query, ``User-Agent``, status).

**Static files**: ``/static/streaming-playlists/hls/<uuid>/<file>`` -- the media's files as they
are, with ``Range`` (206), ``ETag`` and ``Access-Control-Allow-Origin: *`` (PeerTube's ``cors()``),
OPTIONS preflights answered. :meth:`EmulatedPeerTube.corrupt` makes one segment's byte range
differ from ``segments-sha256.json`` (for every client or one ``User-Agent``): the
"mismatching byte range" fault. The :class:`~p2pml_py.testing.origin.Origin` switches (``outage``,
``faults``, ``override`` ...) apply too.

**Tracker** (:class:`~p2pml_py.testing.peertube_tracker.PeerTubeTracker`, re-exported here): the
node script on its own port (PeerTube uses one host; only ``trackerUrls`` matter to clients):
``ws://127.0.0.1:<port>/tracker/socket`` and ``http://127.0.0.1:<port>/tracker/announce``. It
knows the info hashes PeerTube stores for each playlist (:func:`peertube_info_hashes`); an
unknown hash over a WebSocket closes the socket and blocks the IP for 3 minutes (later upgrades:
403).

:func:`run_peertube` starts the three and registers the hashes; ``harness/peertube.py`` fills in
where the node script and packages are.
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
import hashlib
import html
import logging
import math
import re
import time
import uuid as uuid_module
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

from aiohttp import web

from p2pml_py.identity import ProtocolVersion, info_hash, stream_swarm_id
from p2pml_py.testing.origin import Origin
from p2pml_py.testing.peertube_media import PeerTubeMedia
from p2pml_py.testing.peertube_tracker import PeerTubeTracker, TrackerEvent

__all__ = [
    "API_MAX",
    "API_WINDOW",
    "ApiRequest",
    "EmulatedPeerTube",
    "EmulatedVideo",
    "PeerTubeTracker",
    "Privacy",
    "RateLimiter",
    "TrackerEvent",
    "peertube_info_hashes",
    "run_peertube",
    "short_uuid",
]

logger = logging.getLogger(__name__)

#: PeerTube's default API rate limit (``config/default.yaml`` ``rates_limit.api``).
API_WINDOW = 10.0
API_MAX = 50
#: ``count`` above this is refused (``server/core/middlewares/validators/pagination.ts``).
MAX_COUNT = 100

_FLICKR_BASE58 = "123456789abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ"
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_STATIC = "/static/streaming-playlists/hls/"
#: The sorts the video lists accept (``SORTABLE_COLUMNS.VIDEOS``, the ones emulated).
_SORTS = {"publishedAt", "createdAt", "name", "id"}
_REQUEST: contextvars.ContextVar[web.Request | None] = contextvars.ContextVar(
    "peertube_request", default=None
)


class Privacy(enum.IntEnum):
    """``VideoPrivacy`` (``packages/models/src/videos/video-privacy.enum.ts``)."""

    PUBLIC = 1
    UNLISTED = 2
    PRIVATE = 3
    INTERNAL = 4
    PASSWORD_PROTECTED = 5

    @property
    def label(self) -> str:
        return {
            1: "Public",
            2: "Unlisted",
            3: "Private",
            4: "Internal",
            5: "Password protected",
        }[self.value]


def short_uuid(uuid: str) -> str:
    """PeerTube's ``shortUUID``: ``short-uuid``'s default translator (the UUID's 128 bits in
    flickr base 58, padded to 22 characters with ``1``)."""
    number = int(uuid.replace("-", ""), 16)
    digits = ""
    while number:
        number, digit = divmod(number, 58)
        digits = _FLICKR_BASE58[digit] + digits
    return digits.rjust(22, _FLICKR_BASE58[0])


def peertube_info_hashes(playlist_url: str, resolutions: Iterable[int]) -> list[str]:
    """The info hashes PeerTube stores for a playlist, hex (what the tracker filter compares).

    ``VideoStreamingPlaylistModel.buildP2PMediaLoaderInfoHashes`` (PeerTube 7.1 - 8.x): one
    ``v2-<playlistUrl>-main-<i>`` per video file ``i`` and ``v2-<playlistUrl>-secondary-0`` when
    an audio-only file (resolution 0) exists, each hashed as p2p-media-loader 2.2 does; the hex of
    the 20 ASCII characters (``generateP2PMediaLoaderHash``).
    """
    listed = list(resolutions)
    swarms = [
        stream_swarm_id(playlist_url, "main", i) for i in range(sum(1 for r in listed if r != 0))
    ]
    if 0 in listed:
        swarms.append(stream_swarm_id(playlist_url, "secondary", 0))
    return [info_hash(s, ProtocolVersion.V2_2).encode("ascii").hex() for s in swarms]


@dataclass(slots=True)
class EmulatedVideo:
    """One video of the instance; ``id`` is assigned by :class:`EmulatedPeerTube`."""

    name: str
    uuid: str = field(default_factory=lambda: str(uuid_module.uuid4()))
    privacy: Privacy = Privacy.PUBLIC
    password: str | None = None
    channel: str = "root_channel"
    account: str = "root"
    id: int = 0

    def __post_init__(self) -> None:
        if not _UUID.fullmatch(self.uuid):
            raise ValueError(f"uuid: not a lowercase UUID: {self.uuid!r}")
        if (self.privacy is Privacy.PASSWORD_PROTECTED) != (self.password is not None):
            raise ValueError("password: required exactly for a password-protected video")

    @property
    def short_uuid(self) -> str:
        return short_uuid(self.uuid)

    @property
    def is_public_file(self) -> bool:
        """Its files are under the public static directory (public and unlisted videos)."""
        return self.privacy in (Privacy.PUBLIC, Privacy.UNLISTED)


@dataclass(frozen=True, slots=True)
class ApiRequest:
    """One API request the instance answered."""

    method: str
    path: str
    query: str
    user_agent: str | None
    status: int
    ip: str | None
    at: float


class RateLimiter:
    """express-rate-limit's memory store: ``limit`` hits per client per ``window`` seconds, the
    window starting at a client's first hit. Time is passed in; clients whose window is over
    are dropped as new ones come, so the table holds at most the clients of one window."""

    def __init__(self, window: float = API_WINDOW, limit: int = API_MAX) -> None:
        if not math.isfinite(window) or window <= 0:
            raise ValueError(f"api_window: must be > 0 seconds, got {window}")
        if limit < 1:
            raise ValueError(f"api_max: must be >= 1, got {limit}")
        self.window = window
        self.limit = limit
        self._clients: dict[str, tuple[float, int]] = {}

    def hit(self, client: str, now: float) -> float | None:
        """Count a request; ``None`` if allowed, else the seconds until the window resets."""
        started, count = self._clients.get(client, (now, 0))
        if now - started >= self.window:
            started, count = now, 0
        if client not in self._clients:
            self._drop_expired(now)
        self._clients[client] = (started, count + 1)
        if count + 1 > self.limit:
            return started + self.window - now
        return None

    def _drop_expired(self, now: float) -> None:
        for client in [c for c, (s, _) in self._clients.items() if now - s >= self.window]:
            del self._clients[client]


@dataclass(frozen=True, slots=True)
class _Corruption:
    file_name: str
    start: int
    end: int  # inclusive
    user_agent: str | None
    #: Invert only the last ``tail`` bytes (``None``: all): inside the fragment's ``mdat``, so
    #: boxes and sample durations still check out and only the SHA-256 tells.
    tail: int | None = None


class EmulatedPeerTube(Origin):
    """The API and static files (module doc); ``async with`` or ``start``/``aclose``.

    ``videos`` get ids 1, 2, ... in order; all of them play ``media``. ``tracker_urls`` are set
    once the tracker runs (:meth:`set_tracker`); until then they point at this host, like a
    PeerTube whose tracker shares its port. ``tokens``: OAuth bearer tokens that may see private
    and internal videos.
    """

    def __init__(
        self,
        media: PeerTubeMedia,
        videos: Sequence[EmulatedVideo] = (),
        *,
        server_version: str = "7.2.1",
        tokens: Collection[str] = (),
        api_window: float = API_WINDOW,
        api_max: int = API_MAX,
        keep_requests: int = 10_000,
        host: str = "127.0.0.1",
        port: int = 0,
        time_source: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(host, port, time_source=time_source)
        if keep_requests < 1:
            raise ValueError(f"keep_requests: must be >= 1, got {keep_requests}")
        self.media = media
        self.server_version = server_version
        self.tokens = frozenset(tokens)
        self.limiter = RateLimiter(api_window, api_max)
        self.videos: list[EmulatedVideo] = []
        self._requests: deque[ApiRequest] = deque(maxlen=keep_requests)
        self.api_request_count = 0
        self._tracker: tuple[str, int] | None = None
        self._corruptions: list[_Corruption] = []
        self._files: dict[str, bytes] = {}
        self._secret = uuid_module.uuid4().hex
        for video in videos:
            self.add_video(video)

    # -- videos ---------------------------------------------------------------------------------

    def add_video(self, video: EmulatedVideo) -> EmulatedVideo:
        if any(v.uuid == video.uuid for v in self.videos):
            raise ValueError(f"uuid: {video.uuid} is already a video of this instance")
        video.id = len(self.videos) + 1
        self.videos.append(video)
        return video

    def video(self, key: str | int) -> EmulatedVideo | None:
        """The video with this numeric id, UUID or short UUID."""
        text = str(key)
        for video in self.videos:
            if text in (str(video.id), video.uuid, video.short_uuid):
                return video
        return None

    # -- URLs -----------------------------------------------------------------------------------

    def api_url(self, video: EmulatedVideo) -> str:
        return f"{self.base_url}/api/v1/videos/{video.uuid}"

    def watch_url(self, video: EmulatedVideo) -> str:
        """The short watch URL PeerTube shares (``/w/<shortUUID>``)."""
        return f"{self.base_url}/w/{video.short_uuid}"

    def static_url(self, video: EmulatedVideo, name: str = "") -> str:
        private = "" if video.is_public_file else "private/"
        return f"{self.base_url}{_STATIC}{private}{video.uuid}/{name}"

    def playlist_url(self, video: EmulatedVideo) -> str:
        """The master playlist: the swarm id PeerTube's player uses."""
        return self.static_url(video, self.media.master_name)

    def segments_sha256_url(self, video: EmulatedVideo) -> str:
        return self.static_url(video, self.media.sha_name)

    def set_tracker(self, host: str, port: int) -> None:
        """Point ``trackerUrls`` at a tracker listening on ``host:port``."""
        self._tracker = (host, port)

    @property
    def tracker_urls(self) -> list[str]:
        """``VideoModel.getTrackerUrls``: the HTTP announce URL and the WebSocket one."""
        host, port = self._tracker or (self.host, self.port)
        return [f"http://{host}:{port}/tracker/announce", f"ws://{host}:{port}/tracker/socket"]

    def info_hashes(self, video: EmulatedVideo) -> list[str]:
        """The hex info hashes PeerTube stores for ``video``'s playlist."""
        return peertube_info_hashes(
            self.playlist_url(video), [f.resolution for f in self.media.files]
        )

    def all_info_hashes(self) -> list[str]:
        return [h for video in self.videos for h in self.info_hashes(video)]

    def video_file_token(self, video: EmulatedVideo) -> str:
        return hashlib.sha256(f"{self._secret}|{video.uuid}".encode()).hexdigest()[:32]

    # -- faults ---------------------------------------------------------------------------------

    def corrupt(
        self,
        resolution: int,
        segment: int,
        *,
        user_agent: str | None = None,
        tail: int | None = None,
    ) -> tuple[str, int, int]:
        """Serve segment ``segment`` of the ``resolution`` file with every byte inverted (same
        length), to every client or only to those whose ``User-Agent`` contains ``user_agent``;
        ``segments-sha256.json`` keeps the true digest. ``tail``: only the last ``tail`` bytes
        (media payload: the container checks pass, the digest does not). Returns
        ``(file, start, end)``."""
        file = self.media.file(resolution)
        if not 0 <= segment < len(file.segments):
            raise ValueError(f"segment: {resolution}p has segments 0..{len(file.segments) - 1}")
        s = file.segments[segment]
        self._corruptions.append(_Corruption(file.file_name, s.start, s.end, user_agent, tail))
        return file.file_name, s.start, s.end

    def clear_corruption(self) -> None:
        self._corruptions.clear()

    # -- what clients did -----------------------------------------------------------------------

    @property
    def api_requests(self) -> list[ApiRequest]:
        """The last ``keep_requests`` API requests, oldest first (a copy)."""
        return list(self._requests)

    # -- HTTP -----------------------------------------------------------------------------------

    def _add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_route("OPTIONS", "/{path:.*}", self._preflight)
        api: list[tuple[str, str, Callable[[web.Request], Awaitable[web.StreamResponse]]]] = [
            ("GET", "/api/v1/config", self._config),
            ("GET", "/api/v1/videos", self._list_videos),
            ("GET", "/api/v1/videos/{id}", self._video),
            ("POST", "/api/v1/videos/{id}/token", self._token),
            ("GET", "/api/v1/video-channels/{handle}/videos", self._channel_videos),
            ("GET", "/api/v1/accounts/{handle}/videos", self._account_videos),
            ("*", "/api/{tail:.*}", self._api_not_found),
        ]
        for method, path, handler in api:
            router.add_route(method, path, self._api(handler))
        router.add_get("/w/{id}", self._watch_page)
        router.add_get("/videos/watch/{id}", self._watch_page)
        super()._add_routes(router)

    async def _preflight(self, request: web.Request) -> web.Response:
        # express cors(): any origin, the asked-for headers, 204.
        asked = request.headers.get("Access-Control-Request-Headers", "")
        headers = {
            "Access-Control-Allow-Origin": "*",
            "Access-Control-Allow-Methods": "GET,HEAD,PUT,PATCH,POST,DELETE",
        }
        if asked:
            headers["Access-Control-Allow-Headers"] = asked
        return web.Response(status=204, headers=headers)

    def _api(
        self, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            retry_after = self.limiter.hit(request.remote or "", self.time_source())
            if retry_after is not None:
                response: web.StreamResponse = web.json_response(
                    {"error": "Too many requests, please try again later."},
                    status=429,
                    headers={"Retry-After": str(max(1, math.ceil(retry_after)))},
                )
            else:
                response = await handler(request)
            response.headers["Access-Control-Allow-Origin"] = "*"
            self.api_request_count += 1
            self._requests.append(
                ApiRequest(
                    method=request.method,
                    path=request.path,
                    query=request.query_string,
                    user_agent=request.headers.get("User-Agent"),
                    status=response.status,
                    ip=request.remote,
                    at=self.time_source(),
                )
            )
            return response

        return wrapped

    async def _config(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(
            {
                "serverVersion": self.server_version,
                "serverCommit": None,
                "instance": {"name": "p2pml_py emulated PeerTube", "shortDescription": ""},
                "tracker": {"enabled": True},
                "defaults": {"p2p": {"webapp": {"enabled": True}, "embed": {"enabled": True}}},
                "transcoding": {"hls": {"enabled": True}, "webVideos": {"enabled": False}},
                "live": {"enabled": False},
            }
        )

    async def _video(self, request: web.Request) -> web.StreamResponse:
        video = self._visible_video(request)
        if isinstance(video, web.Response):
            return video
        return web.json_response(self._details(video))

    async def _token(self, request: web.Request) -> web.StreamResponse:
        video = self._visible_video(request)
        if isinstance(video, web.Response):
            return video
        return web.json_response(
            {"files": {"token": self.video_file_token(video), "expires": "2099-01-01T00:00:00Z"}}
        )

    def _visible_video(self, request: web.Request) -> EmulatedVideo | web.Response:
        """``checkCanSeeVideo``: the video, or the error PeerTube answers."""
        key = request.match_info["id"]
        if not (key.isdigit() or _UUID.fullmatch(key) or len(key) == 22):
            return _problem(400, "Invalid video id", "id")
        video = self.video(key)
        if video is None:
            return _problem(404, "Video not found")
        if video.privacy in (Privacy.PRIVATE, Privacy.INTERNAL) and not self._authorized(request):
            return _problem(401, "Cannot get this video regarding its privacy")
        if video.privacy is Privacy.PASSWORD_PROTECTED and not self._authorized(request):
            given = request.headers.get("x-peertube-video-password")
            if given is None:
                return _problem(
                    403,
                    "Please provide a password to access this password protected video",
                    code="video_requires_password",
                )
            if given != video.password:
                return _problem(403, "Incorrect video password", code="incorrect_video_password")
        return video

    def _authorized(self, request: web.Request) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and token in self.tokens

    async def _list_videos(self, request: web.Request) -> web.StreamResponse:
        return self._listing(request, self.videos)

    async def _channel_videos(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["handle"].split("@", 1)[0]
        videos = [v for v in self.videos if v.channel == name]
        if not videos:
            return _problem(404, "Video channel not found")
        return self._listing(request, videos)

    async def _account_videos(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["handle"].split("@", 1)[0]
        videos = [v for v in self.videos if v.account == name]
        if not videos:
            return _problem(404, "Account not found")
        return self._listing(request, videos)

    def _listing(self, request: web.Request, videos: Sequence[EmulatedVideo]) -> web.Response:
        try:
            start = int(request.query.get("start", "0"))
            count = int(request.query.get("count", "15"))
        except ValueError:
            return _problem(400, "start and count must be integers", "start")
        if start < 0:
            return _problem(400, "Should have a number start", "start")
        if not 0 <= count <= MAX_COUNT:
            return _problem(400, f"Should have a number count (max {MAX_COUNT})", "count")
        sort = request.query.get("sort", "-publishedAt")
        if sort.lstrip("-") not in _SORTS:
            return _problem(400, f"Should have correct sortable column: {sort}", "sort")
        listed = [v for v in videos if v.privacy is Privacy.PUBLIC]
        # Videos are published in id order, so date sorts are id sorts.
        key: Callable[[EmulatedVideo], Any] = (
            (lambda v: v.name) if sort.lstrip("-") == "name" else (lambda v: v.id)
        )
        listed.sort(key=key, reverse=sort.startswith("-"))
        page = listed[start : start + count]
        return web.json_response({"total": len(listed), "data": [self._summary(v) for v in page]})

    async def _api_not_found(self, request: web.Request) -> web.StreamResponse:
        return _problem(404, "Not found")

    async def _watch_page(self, request: web.Request) -> web.StreamResponse:
        video = self.video(request.match_info["id"])
        if video is None:
            return web.Response(status=404, text="not found")
        page = (
            f"<!doctype html><title>{html.escape(video.name)}</title>"
            f'<link rel="alternate" type="application/json+oembed" '
            f'href="{self.base_url}/services/oembed?url={self.watch_url(video)}">'
        )
        return web.Response(text=page, content_type="text/html")

    # -- API objects ----------------------------------------------------------------------------

    def _actor(self, name: str, display: str, ident: int, kind: str) -> dict[str, Any]:
        host = f"{self.host}:{self.port}"
        return {
            "id": ident,
            "name": name,
            "displayName": display,
            "url": f"{self.base_url}/{kind}/{name}",
            "host": host,
            "avatars": [],
        }

    def _summary(self, video: EmulatedVideo) -> dict[str, Any]:
        """The ``Video`` schema (lists): no files, no playlists."""
        published = f"2026-01-01T00:{video.id // 60 % 60:02d}:{video.id % 60:02d}.000Z"
        return {
            "id": video.id,
            "uuid": video.uuid,
            "shortUUID": video.short_uuid,
            "url": f"{self.base_url}/videos/watch/{video.uuid}",
            "name": video.name,
            "isLive": False,
            "isLocal": True,
            "privacy": {"id": int(video.privacy), "label": video.privacy.label},
            "state": {"id": 1, "label": "Published"},
            "duration": round(self.media.duration),
            "views": 0,
            "nsfw": False,
            "embedPath": f"/videos/embed/{video.uuid}",
            "createdAt": published,
            "publishedAt": published,
            "updatedAt": published,
            "channel": self._actor(video.channel, video.channel, 1, "video-channels"),
            "account": self._actor(video.account, video.account, 1, "accounts"),
        }

    def _details(self, video: EmulatedVideo) -> dict[str, Any]:
        """The ``VideoDetails`` schema: HLS only, one streaming playlist."""
        files = [
            {
                "id": video.id * 100 + i,
                "resolution": {"id": f.resolution, "label": f"{f.resolution}p"},
                "magnetUri": None,
                "size": f.size,
                "fps": f.fps,
                "width": f.width,
                "height": f.height,
                "torrentUrl": None,
                "torrentDownloadUrl": None,
                "fileUrl": self.static_url(video, f.file_name),
                "fileDownloadUrl": self.static_url(video, f.file_name),
                "playlistUrl": self.static_url(video, f.playlist_name),
                "metadataUrl": f"{self.base_url}/api/v1/videos/{video.uuid}/metadata/{i}",
                "hasAudio": True,
                "hasVideo": True,
                "storage": 0,
            }
            for i, f in enumerate(self.media.files)
        ]
        return {
            **self._summary(video),
            "description": None,
            "support": None,
            "tags": [],
            "downloadEnabled": True,
            "commentsPolicy": {"id": 1, "label": "Enabled"},
            "waitTranscoding": True,
            "trackerUrls": self.tracker_urls,
            "files": [],
            "streamingPlaylists": [
                {
                    "id": video.id,
                    "type": 1,
                    "playlistUrl": self.playlist_url(video),
                    "segmentsSha256Url": self.segments_sha256_url(video),
                    "redundancies": [],
                    "files": files,
                }
            ],
        }

    # -- static files ---------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        reset = _REQUEST.set(request)
        try:
            response = await super()._handle(request)
        finally:
            _REQUEST.reset(reset)
        if not response.prepared:  # a stalled response went out already, without it
            response.headers["Access-Control-Allow-Origin"] = "*"
        return response

    async def _respond(self, request: web.Request, path: str) -> web.StreamResponse:
        located = self._static(path)
        if located is not None and not located[0].is_public_file:
            video = located[0]
            allowed = (
                request.query.get("videoFileToken") == self.video_file_token(video)
                or self._authorized(request)
                or (
                    video.password is not None
                    and request.headers.get("x-peertube-video-password") == video.password
                )
            )
            if not allowed:
                return web.Response(status=403, text="Forbidden")
        return await super()._respond(request, path)

    def _static(self, path: str) -> tuple[EmulatedVideo, str] | None:
        if not path.startswith(_STATIC):
            return None
        parts = path[len(_STATIC) :].split("/")
        private = parts[0] == "private"
        if private:
            parts = parts[1:]
        if len(parts) != 2 or parts[1] not in self.media.names():
            return None
        video = self.video(parts[0]) if _UUID.fullmatch(parts[0]) else None
        if video is None or video.is_public_file == private:
            return None
        return video, parts[1]

    def _body(self, path: str) -> bytes | None:
        located = self._static(path)
        if located is None:
            return None
        name = located[1]
        data = self._files.get(name)
        if data is None:
            data = self._files[name] = (self.media.root / name).read_bytes()
        request = _REQUEST.get()
        agent = request.headers.get("User-Agent", "") if request is not None else ""
        hits = [
            c
            for c in self._corruptions
            if c.file_name == name and (c.user_agent is None or c.user_agent in agent)
        ]
        if not hits:
            return data
        corrupted = bytearray(data)
        for c in hits:
            start = c.start if c.tail is None else max(c.start, c.end + 1 - c.tail)
            corrupted[start : c.end + 1] = bytes(b ^ 0xFF for b in data[start : c.end + 1])
        return bytes(corrupted)


def _problem(
    status: int, detail: str, param: str | None = None, *, code: str | None = None
) -> web.Response:
    """PeerTube's error body (``res.fail``: RFC 7807 fields plus ``error``)."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "detail": detail,
        "status": status,
        "error": detail,
    }
    if code is not None:
        body["code"] = code
    if param is not None:
        body["invalid-params"] = {param: {"msg": detail, "param": param, "location": "query"}}
    return web.json_response(body, status=status)


# ------------------------------------------------------------------------------------------------
# All together


@contextlib.asynccontextmanager
async def run_peertube(
    media: PeerTubeMedia,
    videos: Sequence[EmulatedVideo],
    *,
    tracker_script: Path,
    node_root: Path,
    interval_ms: int | None = None,
    **instance: Any,
) -> AsyncIterator[tuple[EmulatedPeerTube, PeerTubeTracker]]:
    """Start the tracker, then the instance (``instance``: :class:`EmulatedPeerTube` keywords),
    and register every video's info hashes with the tracker; yields ``(instance, tracker)``."""
    async with PeerTubeTracker(tracker_script, node_root, interval_ms=interval_ms) as tracker:
        async with EmulatedPeerTube(media, videos, **instance) as peertube:
            peertube.set_tracker(tracker.host, tracker.port)
            await tracker.set_known(peertube.all_info_hashes())
            yield peertube, tracker
