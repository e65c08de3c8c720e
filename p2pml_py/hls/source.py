"""Follow an HLS stream over HTTP: the manifest, live/VOD media playlists, segment downloads.

:class:`HlsSource` is the origin side of a peer: it loads the manifest once (redirects followed;
the final URL is what the swarm id is made of), exposes its streams as
:func:`~p2pml_py.hls.playlist.parse_master_playlist` sees them, downloads segments and init
segments with retries, and owns one :class:`StreamFollower` per followed stream.

A follower loads its media playlist; VOD playlists are loaded once, live ones are reloaded the
way hls.js does it (``playlist-loader.ts`` / ``level-helper.ts computeReloadInterval``): every
*level target duration* (the average segment duration, else ``EXT-X-TARGETDURATION``) measured
from the start of the previous load, and half of that when the reload brought nothing new (RFC
8216 6.3.4). Whatever the origin does -- 5xx, 4xx, refused connections, timeouts, garbage -- a
follower logs, counts, backs off exponentially and tries again; it only stops when closed or
when the playlist gets ``EXT-X-ENDLIST``.

With :attr:`SourceConfig.local_path` the same happens without HTTP: every request reads a file
(:mod:`p2pml_py.hls.files`), the manifest URL being the public URL the pages load.

New segments are announced through :meth:`StreamFollower.new_segments`, an async iterator over
the segments of the current playlist in sequence order. It holds no queue of its own: a consumer
too slow to keep up with a live window skips what slid out of it, so memory stays bounded by the
playlist whatever the consumer does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import aiohttp

from p2pml_py.base.aio import Notifier, Service
from p2pml_py.base.backoff import Backoff
from p2pml_py.base.errors import (
    LocalProtocolError,
    OriginConnectionError,
    OriginHttpError,
    OriginStallError,
    OriginTimeoutError,
    SegmentInvalidError,
    SourceError,
)
from p2pml_py.base.outage import Outage
from p2pml_py.base.version import USER_AGENT
from p2pml_py.hls.fetcher import MAX_PLAYLIST_BYTES, Fetched, Validators, fetch
from p2pml_py.hls.files import LocalFiles
from p2pml_py.hls.guard import SegmentGuard
from p2pml_py.hls.hashes import MAX_LIST_BYTES, IntegrityList, parse_integrity_list
from p2pml_py.hls.playlist import (
    InitSegment,
    MasterPlaylist,
    MediaPlaylist,
    Segment,
    Stream,
    TypeSupported,
    parse_master_playlist,
    parse_media_playlist,
)
from p2pml_py.hls.validate import DEFAULT_POLICY, InitInfo, ValidationPolicy, validate_init
from p2pml_py.identity import swarm_id_from_manifest_url

__all__ = [
    "HlsSource",
    "RetryPolicy",
    "SourceConfig",
    "SourceStats",
    "StreamFollower",
    "error_kind",
]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

#: hls.js level-helper.ts: ``levelTargetDuration || targetduration || 10`` seconds.
DEFAULT_RELOAD_INTERVAL = 10.0
#: Init segments kept in memory (they are re-requested for every segment of a fMP4 stream).
MAX_CACHED_INITS = 16
#: HTTP statuses worth another try; other 4xx will not get better by asking again.
_RETRYABLE_4XX = frozenset({408, 425, 429})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential back-off: ``initial_delay * multiplier**n`` capped at ``max_delay``.

    ``attempts`` is the total number of tries of one fetch call (1 = no retry). Live playlist
    reloads ignore it: a follower retries for as long as it lives.
    """

    attempts: int = 3
    initial_delay: float = 0.5
    max_delay: float = 8.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {self.attempts}")
        if self.initial_delay < 0 or self.max_delay < 0 or self.multiplier < 1:
            raise ValueError("delays must be >= 0 and multiplier >= 1")

    def delay(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th consecutive failure (1-based)."""
        return Backoff(self.initial_delay, self.max_delay, self.multiplier).delay(failures)


@dataclass(frozen=True, slots=True)
class SourceConfig:
    #: Whole-request limit for manifests and playlists (seconds).
    playlist_timeout: float = 10.0
    #: Whole-request limit for one segment download attempt (seconds).
    segment_timeout: float = 30.0
    #: Fail a request when no bytes arrive for this long (``None``: only the timeouts above).
    stall_timeout: float | None = 5.0
    #: Retries of fetch calls (manifest, segments, init segments).
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    #: Retries of segment downloads, when they differ from ``retry`` (a player that falls back
    #: to peers wants to hear of a failure at once).
    segment_retry: RetryPolicy | None = None
    #: Back-off of a follower whose playlist reloads fail (``attempts`` is ignored).
    reload_retry: RetryPolicy = field(default_factory=RetryPolicy)
    #: Fixed live reload interval instead of hls.js's rule (``None``: hls.js's rule).
    reload_interval: float | None = None
    #: Lower bound of the live reload interval, whatever the playlist says.
    min_reload_interval: float = 0.1
    max_segment_bytes: int = 64 * 1024 * 1024
    #: How every segment body is checked before anyone uses it (:mod:`p2pml_py.hls.guard`).
    validation: ValidationPolicy = DEFAULT_POLICY
    #: The site's integrity list (``segments-sha256.json``): a URL, or a path to a local file.
    integrity: str | None = None
    #: Read the stream from disk instead of HTTP: its master playlist file, or a directory
    #: holding one (:func:`~p2pml_py.hls.files.find_master`). The manifest URL is then the
    #: public URL the pages load (it makes the swarm id and every segment URL); URLs under its
    #: directory are files under this one, nothing else is read (:mod:`p2pml_py.hls.files`).
    local_path: str | None = None

    def __post_init__(self) -> None:
        if self.playlist_timeout <= 0 or self.segment_timeout <= 0:
            raise ValueError("timeouts must be > 0")
        if self.stall_timeout is not None and self.stall_timeout <= 0:
            raise ValueError("stall_timeout must be > 0 or None")
        if self.reload_interval is not None and self.reload_interval <= 0:
            raise ValueError("reload_interval must be > 0 or None")
        if self.min_reload_interval < 0:
            raise ValueError("min_reload_interval must be >= 0")
        if self.integrity is not None and not self.integrity.strip():
            raise ValueError("integrity: empty URL or path")
        if self.local_path is not None and not self.local_path.strip():
            raise ValueError("local_path: empty path")


@dataclass(slots=True)
class SourceStats:
    """Origin traffic of one :class:`HlsSource` (all its followers included)."""

    #: HTTP requests started, or files read for a local source (retries included).
    requests: int = 0
    #: Body bytes received (after cutting byte ranges out of whole files).
    bytes: int = 0
    #: Failed requests by :func:`error_kind`.
    errors: Counter[str] = field(default_factory=Counter)
    retries: int = 0
    playlist_loads: int = 0
    segments: int = 0
    segment_bytes: int = 0
    #: Conditional GETs of held segments, and how many found them unchanged (304).
    revalidations: int = 0
    unchanged: int = 0

    @property
    def total_errors(self) -> int:
        return sum(self.errors.values())


def error_kind(exc: SourceError) -> str:
    """A short label for stats: ``http_5xx``, ``http_4xx``, ``stall``, ``timeout``,
    ``connection``, or ``invalid`` (garbage, too large, bad range...)."""
    if isinstance(exc, OriginHttpError):
        return "http_5xx" if exc.status >= 500 else "http_4xx"
    if isinstance(exc, OriginStallError):
        return "stall"
    if isinstance(exc, OriginTimeoutError):
        return "timeout"
    if isinstance(exc, OriginConnectionError):
        return "connection"
    return "invalid"


def is_retryable(exc: SourceError) -> bool:
    """Could asking again help? Server errors, timeouts, connection trouble, a body that failed
    its checks (a truncated response, say): yes."""
    if isinstance(exc, SegmentInvalidError):
        return True
    if isinstance(exc, OriginHttpError):
        return exc.status >= 500 or exc.status in _RETRYABLE_4XX
    return isinstance(exc, OriginTimeoutError | OriginConnectionError)


class HlsSource(Service):
    """An HLS manifest and its streams, fetched over HTTP (or read from disk:
    :attr:`SourceConfig.local_path`).

    ``async with HlsSource(url) as source:`` loads the manifest (raising :class:`SourceError` if
    it cannot be loaded after the configured retries); leaving the block closes every follower and
    the HTTP session if the source created it.
    """

    def __init__(
        self,
        manifest_url: str,
        *,
        session: aiohttp.ClientSession | None = None,
        config: SourceConfig | None = None,
        is_type_supported: TypeSupported | None = None,
    ) -> None:
        self.manifest_url = manifest_url
        self.config = config or SourceConfig()
        self.stats = SourceStats()
        self._session = session
        self._owns_session = session is None
        self._is_type_supported = is_type_supported
        self._master: MasterPlaylist | None = None
        self._followers: list[StreamFollower] = []
        #: Init segments: bytes and their parse (``None``: not fMP4), parsed once.
        self._inits: OrderedDict[
            tuple[str, tuple[int, int] | None], tuple[bytes, InitInfo | None]
        ] = OrderedDict()
        #: Set by :meth:`load` when :attr:`SourceConfig.local_path` is given.
        self.files: LocalFiles | None = None
        self.guard = SegmentGuard(
            self.config.validation,
            load_init=self.init_info,
            load_list=None if self.config.integrity is None else self._load_integrity_list,
            base_url=lambda: None if self._master is None else self._master.url,
        )
        self._closed = False

    # ------------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """``async with`` loads the manifest and the integrity list, if one is configured (and
        closes everything if that fails)."""
        await self.load()
        if self.guard.uses_list:
            try:
                integrity = await self.guard.load_list()
            except SourceError as exc:
                raise SourceError(f"integrity list: {exc}") from exc
            logger.info(
                "integrity list %s: %d entries", self.config.integrity, len(integrity or ())
            )

    async def aclose(self) -> None:
        """Close every follower, then the HTTP session if we created it. Idempotent."""
        if self._closed:
            return
        self._closed = True
        followers, self._followers = self._followers, []
        for follower in followers:
            await follower.aclose()
        if self._owns_session and self._session is not None:
            await self._session.close()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise LocalProtocolError("the HlsSource is closed")
        if self._session is None:
            self._session = aiohttp.ClientSession(headers={"User-Agent": USER_AGENT})
        return self._session

    # ------------------------------------------------------------------------ manifest

    async def load(self) -> MasterPlaylist:
        """Fetch and parse the manifest (with retries); done by ``async with``."""
        if self.config.local_path is not None and self.files is None:
            self.files = await asyncio.to_thread(
                LocalFiles, self.config.local_path, self.manifest_url
            )
            logger.info("reading %s from %s", self.manifest_url, self.files.master)
        fetched = await self._with_retries(
            "manifest",
            lambda: self._get(self.manifest_url, timeout=self.config.playlist_timeout),
        )
        try:
            master = parse_master_playlist(
                _decode(fetched), fetched.final_url, is_type_supported=self._is_type_supported
            )
        except SourceError as exc:
            self._count_error(exc)
            raise
        self.stats.playlist_loads += 1
        if fetched.final_url != self.manifest_url:
            logger.info("manifest %s redirected to %s", self.manifest_url, fetched.final_url)
        self._master = master
        return master

    @property
    def master(self) -> MasterPlaylist:
        if self._master is None:
            raise LocalProtocolError("the manifest is not loaded yet (use async with)")
        return self._master

    @property
    def final_url(self) -> str:
        """The manifest URL after redirects: the base of the swarm id."""
        return self.master.url

    @property
    def swarm_id(self) -> str:
        return swarm_id_from_manifest_url(self.final_url)

    @property
    def streams(self) -> tuple[Stream, ...]:
        return self.master.streams

    @property
    def followers(self) -> tuple[StreamFollower, ...]:
        return tuple(self._followers)

    def follow(self, stream: Stream | str | int) -> StreamFollower:
        """Start following ``stream`` (a :class:`Stream`, its playlist URL or its index in
        :attr:`streams`). The follower belongs to the source; ``async with`` on it is optional
        and closes it early."""
        if self._closed:
            raise LocalProtocolError("the HlsSource is closed")
        if isinstance(stream, int):
            stream = self.streams[stream]
        elif isinstance(stream, str):
            matches = [s for s in self.streams if s.url == stream]
            if not matches:
                raise LocalProtocolError(f"no stream with playlist {stream!r}")
            stream = matches[0]
        if not stream.has_playlist:
            raise LocalProtocolError(f"stream {stream.label!r} has no playlist of its own")
        follower = StreamFollower(self, stream)
        self._followers.append(follower)
        follower.start()
        return follower

    def _forget(self, follower: StreamFollower) -> None:
        with contextlib.suppress(ValueError):
            self._followers.remove(follower)

    # ------------------------------------------------------------------------ downloads

    async def fetch_playlist(self, url: str) -> MediaPlaylist:
        """One attempt at loading and parsing a media playlist (no retries)."""
        fetched = await self._get(url, timeout=self.config.playlist_timeout)
        try:
            playlist = parse_media_playlist(_decode(fetched), fetched.final_url)
        except SourceError as exc:
            self._count_error(exc)
            raise
        self.stats.playlist_loads += 1
        return playlist

    async def fetch_segment(self, segment: Segment) -> bytes:
        """The segment's bytes (its byte range, if any), checked by :attr:`guard`, with
        retries; :class:`SourceError` (:class:`SegmentInvalidError` for a body that failed)."""
        return (await self.fetch_segment_response(segment)).body

    async def fetch_segment_response(
        self, segment: Segment, *, conditional: Validators | None = None
    ) -> Fetched:
        """:meth:`fetch_segment` with the response's validators; ``conditional`` makes it a
        conditional GET (a 304 comes back as :attr:`Fetched.not_modified`, no retries)."""

        async def attempt() -> Fetched:
            fetched = await self._get(
                segment.url,
                byte_range=segment.byte_range,
                timeout=self.config.segment_timeout,
                max_bytes=self.config.max_segment_bytes,
                conditional=conditional,
            )
            if not fetched.not_modified:
                try:
                    await self.guard.require(segment, fetched.body)
                except SourceError as exc:
                    self._count_error(exc)
                    raise
            return fetched

        if conditional is not None:
            self.stats.revalidations += 1
        fetched = await self._with_retries(
            f"segment {segment.external_id}", policy=self.config.segment_retry, attempt=attempt
        )
        if fetched.not_modified:
            self.stats.unchanged += 1
            return fetched
        self.stats.segments += 1
        self.stats.segment_bytes += len(fetched.body)
        return fetched

    async def _load_integrity_list(self) -> IntegrityList:
        where = self.config.integrity
        assert where is not None
        if where.startswith(("http://", "https://")):
            # A local source reads the list from its files when it lies among them.
            remote = self.files is not None and not self.files.covers(where)
            fetched = await self._get(
                where,
                timeout=self.config.playlist_timeout,
                max_bytes=MAX_LIST_BYTES,
                remote=remote,
            )
            data = fetched.body
        else:
            try:
                data = await asyncio.to_thread(_read_bounded, where, MAX_LIST_BYTES)
            except OSError as exc:
                raise SourceError(f"{where}: {exc.strerror or exc}") from exc
        return parse_integrity_list(data)

    async def fetch_init(self, init: InitSegment) -> bytes:
        """An ``EXT-X-MAP`` init segment, checked, with retries; cached (a few, least recent
        dropped)."""
        return (await self._init(init))[0]

    async def init_info(self, init: InitSegment) -> InitInfo | None:
        """The parsed init segment (``None``: not fMP4), from the same cache as the bytes:
        what the guard times fMP4 segments by."""
        return (await self._init(init))[1]

    async def _init(self, init: InitSegment) -> tuple[bytes, InitInfo | None]:
        key = (init.url, init.byte_range)
        cached = self._inits.get(key)
        if cached is not None:
            self._inits.move_to_end(key)
            return cached

        async def attempt() -> tuple[bytes, InitInfo | None]:
            fetched = await self._get(
                init.url,
                byte_range=init.byte_range,
                timeout=self.config.segment_timeout,
                max_bytes=self.config.max_segment_bytes,
            )
            verdict = validate_init(fetched.body, init, policy=self.config.validation)
            if verdict.reason is not None:  # never cached: the next call asks again
                exc = SegmentInvalidError(
                    f"init segment {init.url}: {verdict.reason.value}: {verdict.detail}",
                    verdict.reason.value,
                )
                self._count_error(exc)
                raise exc
            return fetched.body, verdict.init

        entry = await self._with_retries("init segment", attempt)
        self._inits[key] = entry
        while len(self._inits) > MAX_CACHED_INITS:
            self._inits.popitem(last=False)
        return entry

    async def _get(
        self,
        url: str,
        *,
        timeout: float,
        byte_range: tuple[int, int] | None = None,
        max_bytes: int = MAX_PLAYLIST_BYTES,
        conditional: Validators | None = None,
        remote: bool = False,
    ) -> Fetched:
        """One counted request: a file read for a local source (a URL outside its files is
        refused), an HTTP GET otherwise or when ``remote``."""
        self.stats.requests += 1
        try:
            if self.files is not None and not remote:
                fetched = await self.files.fetch(
                    url,
                    byte_range=byte_range,
                    timeout=timeout,
                    max_bytes=max_bytes,
                    conditional=conditional,
                )
            else:
                fetched = await fetch(
                    self.session,
                    url,
                    byte_range=byte_range,
                    timeout=timeout,
                    max_bytes=max_bytes,
                    stall_timeout=self.config.stall_timeout,
                    conditional=conditional,
                )
        except SourceError as exc:
            self._count_error(exc)
            raise
        self.stats.bytes += len(fetched.body)
        return fetched

    def _count_error(self, exc: SourceError) -> None:
        self.stats.errors[error_kind(exc)] += 1

    async def _with_retries(
        self,
        what: str,
        attempt: Callable[[], Awaitable[_T]],
        policy: RetryPolicy | None = None,
    ) -> _T:
        policy = policy or self.config.retry
        failures = 0
        while True:
            try:
                return await attempt()
            except SourceError as exc:
                failures += 1
                if failures >= policy.attempts or not is_retryable(exc):
                    # The caller gets the error and reports it; no second report here.
                    logger.info("%s failed after %d attempt(s): %s", what, failures, exc)
                    raise
                delay = policy.delay(failures)
                self.stats.retries += 1
                logger.debug("%s failed (%s); retry %d in %.2f s", what, exc, failures, delay)
                await asyncio.sleep(delay)


def _read_bounded(path: str, limit: int) -> bytes:
    with open(path, "rb") as file:
        data = file.read(limit + 1)
    return data  # the parser refuses more than ``limit`` bytes, naming the size


def _decode(fetched: Fetched) -> str:
    try:
        return fetched.body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SourceError(f"{fetched.final_url}: not UTF-8 text") from exc


class StreamFollower:
    """Keeps the media playlist of one stream current; created by :meth:`HlsSource.follow`."""

    def __init__(self, source: HlsSource, stream: Stream) -> None:
        self.source = source
        self.stream = stream
        #: Successful loads, failed loads, and failures since the last success.
        self.loads = 0
        self.failures = 0
        self.consecutive_failures = 0
        self.last_error: SourceError | None = None
        #: Playlist outages: one line down, a summary a minute while down, one line back.
        self.outage = Outage(f"origin playlist {stream.url}")
        self._playlist: MediaPlaylist | None = None
        self._text: str | None = None
        #: Bumped when sequence numbers go backwards (the live stream restarted).
        self._epoch = 0
        self._changed = Notifier()  # a new playlist, or closing
        self._attempted = Notifier()  # a load attempt ended (success or failure), or closing
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    # ------------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self._task is None and not self._closed:
            self._task = asyncio.create_task(self._run(), name=f"hls-follow-{self.stream.url}")

    async def __aenter__(self) -> StreamFollower:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop reloading and end every :meth:`new_segments` iterator. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.source._forget(self)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])  # our own cancellation still propagates
        self._notify()
        self._signal_attempt()

    @property
    def closed(self) -> bool:
        return self._closed

    # ------------------------------------------------------------------------ state

    @property
    def playlist(self) -> MediaPlaylist | None:
        """The latest media playlist, ``None`` until the first successful load."""
        return self._playlist

    @property
    def ended(self) -> bool:
        """A VOD playlist, or a live one that got ``EXT-X-ENDLIST``: nothing more will come."""
        return self._playlist is not None and not self._playlist.is_live

    async def wait_loaded(self, timeout: float | None = None) -> MediaPlaylist:
        """The playlist once loaded; :class:`TimeoutError` after ``timeout`` seconds."""
        async with asyncio.timeout(timeout):
            while self._playlist is None:
                if self._closed:
                    raise LocalProtocolError("the follower was closed before a playlist loaded")
                await self._changed.wait()
        return self._playlist

    async def wait_updated(self, timeout: float | None = None) -> MediaPlaylist | None:
        """Wait for the next change of state (a new playlist, or closing)."""
        changed = self._changed.next()
        if self._closed:
            return self._playlist
        async with asyncio.timeout(timeout):
            await changed.wait()
        return self._playlist

    async def wait_until(self, predicate: Callable[[], bool], timeout: float | None = None) -> None:
        """Wait until ``predicate()`` holds; it is checked after every load attempt (success or
        failure) and on closing. :class:`TimeoutError` after ``timeout`` seconds."""
        async with asyncio.timeout(timeout):
            while True:
                attempted = self._attempted.next()
                if predicate():
                    return
                if self._closed:
                    raise LocalProtocolError("the follower is closed")
                await attempted.wait()

    async def new_segments(self, *, from_start: bool = True) -> AsyncGenerator[Segment, None]:
        """Segments in sequence order as they appear in the playlist.

        ``from_start``: begin with the segments already in the playlist (else only those added
        after the first load seen). Ends when the playlist ends (VOD, ENDLIST) or the follower
        closes. Segments that slid out of a live window before being yielded are skipped.
        """
        last: int | None = None
        epoch = self._epoch
        primed = from_start
        while True:
            changed = self._changed.next()
            playlist = self._playlist
            if playlist is not None:
                if epoch != self._epoch:
                    epoch, last = self._epoch, None
                if not primed:
                    last = playlist.segments[-1].sequence_number if playlist.segments else None
                    primed = True
                for segment in playlist.segments:
                    if last is None or segment.sequence_number > last:
                        if last is not None and segment.sequence_number > last + 1:
                            logger.debug(
                                "%s: segments %d-%d left the window unseen",
                                self.stream.url,
                                last + 1,
                                segment.sequence_number - 1,
                            )
                        last = segment.sequence_number
                        yield segment
                        if self._playlist is not playlist or epoch != self._epoch:
                            break  # changed while the consumer held the segment; rescan
                else:
                    if not playlist.is_live:
                        return
                if self._playlist is not playlist:
                    continue
            if self._closed:
                return
            await changed.wait()

    # ------------------------------------------------------------------------ loop

    def _notify(self) -> None:
        self._changed.notify()

    def _signal_attempt(self) -> None:
        self._attempted.notify()

    async def _run(self) -> None:
        while True:
            started = time.monotonic()
            try:
                fetched = await self.source._get(
                    self.stream.url, timeout=self.source.config.playlist_timeout
                )
                try:
                    text = _decode(fetched)
                    playlist = parse_media_playlist(text, fetched.final_url)
                except SourceError as exc:
                    self.source._count_error(exc)
                    raise
            except SourceError as exc:
                delay = self._failed(exc)
                self._signal_attempt()
                await asyncio.sleep(delay)
                continue
            self.source.stats.playlist_loads += 1
            unchanged = text == self._text
            self._loaded(playlist, text)
            self._signal_attempt()
            if not playlist.is_live:
                return
            interval = self._reload_interval(playlist, unchanged)
            await asyncio.sleep(max(0.0, started + interval - time.monotonic()))

    def _failed(self, exc: SourceError) -> float:
        self.failures += 1
        self.consecutive_failures += 1
        self.last_error = exc
        delay = self.source.config.reload_retry.delay(self.consecutive_failures)
        line = self.outage.failed(time.monotonic(), exc)
        if line is not None:
            logger.warning("%s; retrying in %.2f s", line, delay)
        else:
            logger.debug(
                "%s: playlist load failed (%d in a row): %s; retrying in %.2f s",
                self.stream.url,
                self.consecutive_failures,
                exc,
                delay,
            )
        return delay

    def _loaded(self, playlist: MediaPlaylist, text: str) -> None:
        line = self.outage.succeeded(time.monotonic())
        if line is not None:
            logger.warning("%s", line)
        self.consecutive_failures = 0
        self.loads += 1
        previous = self._playlist
        if (
            previous is not None
            and previous.segments
            and playlist.segments
            and playlist.segments[-1].sequence_number < previous.segments[0].sequence_number
        ):
            logger.warning(
                "%s: media sequence went back from %d to %d; treating as a restart",
                self.stream.url,
                previous.segments[0].sequence_number,
                playlist.segments[-1].sequence_number,
            )
            self._epoch += 1
        if text != self._text:
            self._text = text
            self._playlist = playlist
            self._notify()

    def _reload_interval(self, playlist: MediaPlaylist, unchanged: bool) -> float:
        config = self.source.config
        if config.reload_interval is not None:
            interval = config.reload_interval
        else:
            # hls.js: levelTargetDuration = averagetargetduration || targetduration || 10
            durations = [s.duration for s in playlist.segments]
            average = sum(durations) / len(durations) if durations else 0.0
            interval = average or float(playlist.target_duration or 0) or DEFAULT_RELOAD_INTERVAL
        if unchanged:
            interval /= 2
        return max(interval, config.min_reload_interval)
