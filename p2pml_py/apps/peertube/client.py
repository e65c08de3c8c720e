"""A polite client of a PeerTube instance's REST API, and the tracker check before announcing.

Politeness, because an instance is someone else's server:

* a steady request rate well under PeerTube's API limit (``config/default.yaml rates_limit.api``:
  50 requests per 10 s per IP): :data:`API_RATE` per second, :data:`API_BURST` at once;
* ``429 Too Many Requests`` waits ``Retry-After`` (at most :data:`MAX_RETRY_AFTER` s), other
  server errors back off (:class:`~p2pml_py.base.backoff.Backoff`); a few tries, then a clear
  error, never a loop;
* one ``User-Agent`` naming us and our version (:data:`p2pml_py.base.version.USER_AGENT`),
  like every other client of the API;
* credentials (``--token``, ``--video-password``) only go to the instance's own origin, the same
  rule as PeerTube's player (``isSameOrigin`` in ``hls-options-builder.ts``): never to object
  storage or a CDN that serves its files.

:func:`probe_info_hashes` asks the instance's **HTTP** tracker (``/tracker/announce``) whether it
knows each info hash before the WebSocket tracker ever hears it: PeerTube's tracker filter blocks
the IP only for WebSocket announces (``server/core/controllers/tracker.ts``: ``if (params.type ===
'ws') blockedIPs.set(ip, true)``); over HTTP an unknown hash gets a bencoded ``failure reason``.
The probe announces ``event=stopped`` with ``numwant=0``, so it joins no swarm and learns no peer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_from_bytes, urlsplit

import aiohttp
import bencode

from p2pml_py.apps.peertube.model import (
    LISTING_PAGE,
    InstanceTarget,
    PeerTubeError,
    TargetKind,
    Video,
    VideoRef,
    parse_config,
    parse_video,
    parse_video_list,
)
from p2pml_py.base.backoff import Backoff
from p2pml_py.base.bucket import TokenBucket
from p2pml_py.base.version import USER_AGENT
from p2pml_py.identity import ProtocolVersion, generate_peer_id

__all__ = [
    "API_BURST",
    "API_RATE",
    "Credentials",
    "PeerTubeClient",
    "TrackerVerdict",
    "credentials_middleware",
    "probe_info_hashes",
]

logger = logging.getLogger(__name__)

#: API requests per second, and at once (PeerTube allows 5/s per IP by default: module doc).
API_RATE = 2.0
API_BURST = 5.0
#: Longest ``Retry-After`` we honour; a longer one is an error the user should see.
MAX_RETRY_AFTER = 60.0
#: Tries of one API request (429 and 5xx count; 4xx other than 429 fail at once).
MAX_TRIES = 4
#: Largest API answer read: a video's details are a few KB, a listing page of 100 a few 100 KB.
MAX_API_BYTES = 4 * 1024 * 1024
API_TIMEOUT = aiohttp.ClientTimeout(total=20.0)
_BACKOFF = Backoff(initial=1.0, cap=10.0)


@dataclass(frozen=True, slots=True)
class Credentials:
    """What PeerTube's player sends for a private or password-protected video."""

    #: An OAuth access token (``Authorization: Bearer ...``), for private and internal videos.
    token: str | None = None
    #: ``x-peertube-video-password``, for password-protected videos.
    video_password: str | None = None

    def __bool__(self) -> bool:
        return bool(self.token or self.video_password)

    def headers(self) -> dict[str, str]:
        # The player sends the password when the video needs one, else the token.
        if self.video_password:
            return {"x-peertube-video-password": self.video_password}
        if self.token:
            return {"Authorization": f"Bearer {self.token}"}
        return {}


def _origin(url: str | aiohttp.typedefs.StrOrURL) -> tuple[str, str, int | None]:
    parts = urlsplit(str(url))
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def credentials_middleware(base_url: str, credentials: Credentials) -> Any:
    """An aiohttp client middleware that adds ``credentials`` to requests for ``base_url``'s
    origin only (module doc)."""
    origin = _origin(base_url)
    headers = credentials.headers()

    async def middleware(
        request: aiohttp.ClientRequest,
        handler: Callable[[aiohttp.ClientRequest], Awaitable[aiohttp.ClientResponse]],
    ) -> aiohttp.ClientResponse:
        if _origin(request.url) == origin:
            for key, value in headers.items():
                request.headers[key] = value
        return await handler(request)

    return middleware


class PeerTubeClient:
    """``client = PeerTubeClient(session, base_url)``; the session is the caller's."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        *,
        credentials: Credentials | None = None,
        rate: float = API_RATE,
        burst: float = API_BURST,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.credentials = credentials or Credentials()
        self._clock = clock
        self._sleep = sleep
        self._bucket = TokenBucket(rate, burst, clock())
        self.requests = 0

    async def _pace(self) -> None:
        while not self._bucket.take(1.0, self._clock()):
            await self._sleep(1.0 / self._bucket.rate)

    async def get_json(self, path: str, params: dict[str, str] | None = None) -> Any:
        """GET ``path`` on the instance; JSON, or :class:`PeerTubeError` saying why not."""
        url = self.base_url + path
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        headers.update(self.credentials.headers())
        for attempt in range(1, MAX_TRIES + 1):
            await self._pace()
            self.requests += 1
            try:
                async with self.session.get(
                    url, params=params, headers=headers, timeout=API_TIMEOUT
                ) as response:
                    if response.status == 200:
                        body = await read_capped(response, MAX_API_BYTES, url)
                        try:
                            return json.loads(body)
                        except ValueError as exc:
                            raise PeerTubeError(f"{url}: not JSON ({exc})") from None
                    if response.status == 429 and attempt < MAX_TRIES:
                        wait = _retry_after(response.headers.get("Retry-After"))
                        logger.warning(
                            "%s: rate limited by the instance, waiting %.0f s", url, wait
                        )
                        await self._sleep(wait)
                        continue
                    if response.status >= 500 and attempt < MAX_TRIES:
                        await self._sleep(_BACKOFF.delay(attempt))
                        continue
                    code = await _problem_code(response) if response.status in (401, 403) else None
                    raise PeerTubeError(_status_message(url, response.status, code))
            except (aiohttp.ClientError, TimeoutError) as exc:
                if attempt >= MAX_TRIES:
                    raise PeerTubeError(f"{url}: {exc or type(exc).__name__}") from None
                await self._sleep(_BACKOFF.delay(attempt))
        raise PeerTubeError(f"{url}: no answer after {MAX_TRIES} tries")  # pragma: no cover

    async def server_version(self) -> str:
        return parse_config(await self.get_json("/api/v1/config"))

    async def video(self, ident: str) -> Video:
        return parse_video(
            await self.get_json(InstanceTarget(TargetKind.VIDEO, "", ident).api_path)
        )

    async def listing(self, target: InstanceTarget, limit: int) -> list[VideoRef]:
        """Up to ``limit`` videos of a channel, an account or the instance (its local videos),
        newest first, page by page."""
        refs: list[VideoRef] = []
        start = 0
        while len(refs) < limit:
            count = min(LISTING_PAGE, limit - len(refs))
            params = {"start": str(start), "count": str(count), "sort": "-publishedAt"}
            if target.kind is TargetKind.INSTANCE:
                params["isLocal"] = "true"
            total, page = parse_video_list(await self.get_json(target.api_path, params))
            refs.extend(page[: limit - len(refs)])
            start += len(page)
            if not page or start >= total:
                break
        return refs


async def read_capped(response: aiohttp.ClientResponse, limit: int, url: str) -> bytes:
    """The whole body, or :class:`PeerTubeError` once it passes ``limit`` bytes."""
    if response.content_length is not None and response.content_length > limit:
        raise PeerTubeError(f"{url}: answer larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise PeerTubeError(f"{url}: answer larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _retry_after(value: str | None) -> float:
    try:
        seconds = float(value) if value is not None else 10.0
    except ValueError:
        seconds = 10.0
    if not 0 <= seconds <= MAX_RETRY_AFTER:
        raise PeerTubeError(f"the instance asks to wait {value} s (Retry-After): try later")
    return seconds


async def _problem_code(response: aiohttp.ClientResponse) -> str | None:
    """The ``code`` of PeerTube's problem JSON (``ServerErrorCode``), if the body has one."""
    try:
        body = json.loads(await read_capped(response, 64 * 1024, str(response.url)))
    except (ValueError, PeerTubeError, aiohttp.ClientError):
        return None
    code = body.get("code") if isinstance(body, dict) else None
    return code if isinstance(code, str) else None


def _status_message(url: str, status: int, code: str | None = None) -> str:
    if code == "video_requires_password":
        return f"{url}: HTTP {status}: password protected: give --video-password"
    if code == "incorrect_video_password":
        return f"{url}: HTTP {status}: the instance refuses this --video-password"
    if status in (401, 403):
        return f"{url}: HTTP {status}: the instance refuses (private video? give --token)"
    if status == 404:
        return f"{url}: HTTP 404: no such video, channel or account on this instance"
    if status == 429:
        return f"{url}: HTTP 429: still rate limited after {MAX_TRIES} tries"
    return f"{url}: HTTP {status}"


@dataclass(frozen=True, slots=True)
class TrackerVerdict:
    """What the HTTP tracker said of each info hash (``None``: could not ask)."""

    known: frozenset[str]
    unknown: frozenset[str]
    #: Why nothing could be asked (no HTTP tracker listed, tracker down, ...), else ``None``.
    unavailable: str | None = None


async def probe_info_hashes(
    session: aiohttp.ClientSession,
    announce_urls: Iterable[str],
    info_hashes: Iterable[str],
    version: ProtocolVersion = ProtocolVersion.V2_2,
) -> TrackerVerdict:
    """Ask the instance's HTTP tracker which of ``info_hashes`` it knows (module doc)."""
    urls = [u for u in announce_urls if u.startswith("http")]
    hashes = sorted(set(info_hashes))
    if not urls:
        return TrackerVerdict(frozenset(), frozenset(), "the video lists no HTTP tracker")
    peer_id = generate_peer_id(version)
    known: set[str] = set()
    unknown: set[str] = set()
    for digest in hashes:
        query = "&".join(
            [
                "info_hash=" + quote_from_bytes(digest.encode("latin-1")),
                "peer_id=" + quote_from_bytes(peer_id.encode("latin-1")),
                "port=6881",
                "uploaded=0",
                "downloaded=0",
                "left=0",
                "event=stopped",
                "numwant=0",
                "compact=1",
            ]
        )
        try:
            async with session.get(
                f"{urls[0]}?{query}", headers={"User-Agent": USER_AGENT}, timeout=API_TIMEOUT
            ) as response:
                status = response.status
                body = await read_capped(response, 64 * 1024, urls[0])
        except (aiohttp.ClientError, TimeoutError, PeerTubeError) as exc:
            return TrackerVerdict(frozenset(known), frozenset(unknown), f"{urls[0]}: {exc!r}")
        if status != 200:
            return TrackerVerdict(frozenset(known), frozenset(unknown), f"{urls[0]}: HTTP {status}")
        try:
            answer = bencode.decode(body)
        except Exception:  # bencode.py raises assorted errors on garbage
            return TrackerVerdict(frozenset(known), frozenset(unknown), f"{urls[0]}: not bencoded")
        if isinstance(answer, dict) and "failure reason" in answer:
            reason = answer["failure reason"]
            logger.debug(
                "tracker %s refuses %s: %s", urls[0], digest.encode("latin-1").hex(), reason
            )
            unknown.add(digest)
        else:
            known.add(digest)
    return TrackerVerdict(frozenset(known), frozenset(unknown))
