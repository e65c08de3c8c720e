"""One peer connection: drives :class:`~p2pml_py.wire.protocol.PeerProtocol` over a data channel.

The session is the thin asyncio driver around the sans-I/O protocol:

* received messages go straight into the protocol (the link's receiver callback is synchronous);
  events that come out are dispatched -- announcements update the remote's view and notify the
  owner, requests wake the upload worker, finished downloads resolve their future;
* a writer task sends what the protocol queues, in order, one command at a time as the link
  takes it (so what waits stays in the protocol, where the backlog rule sees it); a send that
  makes no progress for ``upload_stall_timeout`` drops the peer, as a stalled upload does;
* an upload worker serves one request at a time from the store (``SegmentData``, the bytes in
  chunks of at most the max message size, ``SegmentDataSendingCompleted``), checking between
  chunks that the request was not cancelled or superseded; a remote that stops reading trips the
  stall timeout and is dropped;
* a ticker checks the protocol's receive timeout while a download runs;
* the link's close arrives as a callback (``Link.on_closed``).

The three tasks run only while they have work and then end: a super-peer holds hundreds of idle
connections, and an idle session holds no task (each is ~1 KiB with its frame and context) and
no timer.

Any :class:`~p2pml_py.base.errors.RemoteProtocolError` from the protocol closes this session only,
with the reason recorded; the owner (the swarm) hears about it through ``on_closed``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from p2pml_py.base.aio import SlimEvent, TaskGroup
from p2pml_py.base.errors import P2PMLError, PeerUnresponsiveError, RemoteProtocolError
from p2pml_py.engine.outcomes import Closed, CloseReason
from p2pml_py.rtc.transport import Link
from p2pml_py.wire.framing import DEFAULT_MAX_MESSAGE_SIZE, split_segment_data
from p2pml_py.wire.protocol import (
    DEFAULT_MAX_MALFORMED_IN_ROW,
    DEFAULT_MAX_SEND_BACKLOG,
    AnnouncementReceived,
    DownloadCompleted,
    DownloadFailed,
    PeerProtocol,
    PeerProtocolViolation,
    UploadCancelled,
    UploadRequested,
)

logger = logging.getLogger(__name__)


class SegmentSource(Protocol):
    """Where uploads come from (a :class:`~p2pml_py.engine.store.SegmentStore`)."""

    def get(self, segment_id: int) -> bytes | None: ...


class DownloadError(P2PMLError):
    """A P2P download did not complete: ``reason`` is absent, timeout, cancelled or closed."""

    def __init__(self, segment_id: int, reason: str) -> None:
        super().__init__(f"segment {segment_id}: {reason}")
        self.segment_id = segment_id
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """Per-peer limits. Each follows from what a browser peer legitimately does."""

    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    receive_timeout: float = 2.0  # p2pNotReceivingBytesTimeoutMs
    #: A remote that takes none of our bytes for this long is dropped. A browser that stops
    #: receiving bytes from us cancels after ``p2pNotReceivingBytesTimeoutMs`` (2 s) and asks
    #: again or elsewhere (``core/p2p/peer.ts``); a connection that takes nothing for five
    #: times that is dead or hostile, and would hold its upload's bytes.
    upload_stall_timeout: float = 10.0
    max_segment_size: int = 64 * 1024 * 1024
    #: See :data:`~p2pml_py.wire.protocol.DEFAULT_MAX_SEND_BACKLOG`: requests are not limited by
    #: rate, only by what the peer leaves unread.
    max_send_backlog: int = DEFAULT_MAX_SEND_BACKLOG
    max_malformed_in_row: int = DEFAULT_MAX_MALFORMED_IN_ROW
    tick_interval: float = 0.2


@dataclass(slots=True)
class SessionStats:
    bytes_uploaded: int = 0
    bytes_downloaded: int = 0
    segments_uploaded: int = 0
    segments_downloaded: int = 0
    uploads_cancelled: int = 0
    download_failures: dict[str, int] = field(default_factory=dict)
    #: Exponentially smoothed download throughput from this peer, bytes/s (0 = not measured).
    download_rate: float = 0.0


Validator = Callable[[int, bytes], bool]


class PeerSession:
    """A data-channel connection to one remote peer. Use with ``async with`` or call
    :meth:`start` then :meth:`aclose` (idempotent)."""

    def __init__(
        self,
        link: Link,
        remote_peer_id: str,
        source: SegmentSource,
        *,
        config: SessionConfig | None = None,
        on_announcement: Callable[[PeerSession], None] | None = None,
        on_closed: Callable[[PeerSession], None] | None = None,
        on_uploaded: Callable[[PeerSession, int], None] | None = None,
        validator: Validator | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config or SessionConfig()
        self.link = link
        self.remote_peer_id = remote_peer_id
        self.source = source
        self.protocol = PeerProtocol(
            max_message_size=self.config.max_message_size,
            max_segment_size=self.config.max_segment_size,
            receive_timeout=self.config.receive_timeout,
            max_send_backlog=self.config.max_send_backlog,
            max_malformed_commands=self.config.max_malformed_in_row,
        )
        self.stats = SessionStats()
        #: Why the session ended (``None`` while open).
        self.close_reason: Closed | None = None
        self._on_announcement = on_announcement
        self._on_closed = on_closed
        self._on_uploaded = on_uploaded
        self._validator = validator
        self._clock = clock
        # The writer and the uploader run while they have work and then end, like the ticker:
        # an idle connection holds no task (each is ~1 KiB: task, frame, context).
        self._writer_task: asyncio.Task[None] | None = None
        self._write_again = False
        self._upload_request: UploadRequested | None = None
        self._uploader_task: asyncio.Task[None] | None = None
        # Runs only while a download can time out (see _ticker): a seeding session has none.
        self._ticker_task: asyncio.Task[None] | None = None
        self._download_future: asyncio.Future[bytes] | None = None
        self._download_started = 0.0
        self._send_lock = asyncio.Lock()
        self._tasks = TaskGroup(logger)
        self._started = False
        self._closed = SlimEvent()
        self._closing = False

    # -- lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> PeerSession:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def start(self, loaded: tuple[int, ...] = (), http_loading: tuple[int, ...] = ()) -> None:
        """Start the tasks and send our first announcement (browsers expect one on connect)."""
        if self._started:
            return
        self._started = True
        self.protocol.announce(loaded, http_loading)
        self.link.set_receiver(self._on_message)
        on_closed = getattr(self.link, "on_closed", None)
        if on_closed is not None:
            on_closed(self._link_closed)
        else:  # a Link written before the seam had on_closed: a task waits instead
            self._tasks.spawn(self._watch_link(), name=f"session-watch-{self.remote_peer_id}")
        self._run_ticker()  # a download started before start()
        self._run_writer()

    @property
    def closed(self) -> bool:
        return self._closing

    async def wait_closed(self) -> None:
        await self._closed.wait()

    def drop(self, reason: CloseReason, detail: str = "") -> None:
        """Close from synchronous code; the reason is kept in :attr:`close_reason`."""
        if self._closing:
            return
        self._begin_close(Closed(reason, detail))
        if self._tasks.closed:  # _finish_close already runs
            return
        self._tasks.spawn(self._finish_close(), name=f"session-close-{self.remote_peer_id}")

    async def aclose(
        self, reason: CloseReason = CloseReason.CLOSED_BY_US, detail: str = ""
    ) -> None:
        if not self._closing:
            self._begin_close(Closed(reason, detail))
        await self._finish_close()

    def _begin_close(self, closed: Closed) -> None:
        self._closing = True
        self.close_reason = closed
        logger.info("peer %s: closing (%s)", self.remote_peer_id, closed)
        future = self._download_future
        if future is not None and not future.done():
            future.set_exception(DownloadError(self._downloading_id(), "closed"))
        self._download_future = None

    async def _finish_close(self) -> None:
        if self._closed.is_set():
            return
        await self._tasks.aclose()
        await self.link.aclose()
        if not self._closed.is_set():
            self._closed.set()
            if self._on_closed is not None:
                self._on_closed(self)

    # -- receiving ----------------------------------------------------------------------------

    def _on_message(self, message: bytes) -> None:
        if self._closing:
            return
        try:
            self.protocol.receive_message(message, self._clock())
        except RemoteProtocolError as exc:
            reason = exc.reason if isinstance(exc, PeerProtocolViolation) else type(exc).__name__
            logger.warning("peer %s: protocol violation: %s", self.remote_peer_id, exc)
            self.drop(CloseReason.PROTOCOL_VIOLATION, reason)
            return
        self._dispatch()

    def _dispatch(self) -> None:
        for event in self.protocol.events_received():
            match event:
                case AnnouncementReceived():
                    if self._on_announcement is not None:
                        self._on_announcement(self)
                case UploadRequested():
                    self._upload_request = event
                    self._run_uploader()
                case UploadCancelled():
                    self.stats.uploads_cancelled += 1
                case DownloadCompleted():
                    self._finish_download(event)
                case DownloadFailed(reason=reason):
                    failures = self.stats.download_failures
                    failures[reason] = failures.get(reason, 0) + 1
                    future = self._download_future
                    self._download_future = None
                    if future is not None and not future.done():
                        future.set_exception(DownloadError(event.segment_id, reason))
        self._run_writer()

    def _finish_download(self, event: DownloadCompleted) -> None:
        future = self._download_future
        self._download_future = None
        if self._validator is not None and not self._validator(event.segment_id, event.data):
            if future is not None and not future.done():
                future.set_exception(DownloadError(event.segment_id, "validation failed"))
            self.drop(CloseReason.VALIDATION_FAILED)
            return
        self.stats.bytes_downloaded += len(event.data)
        self.stats.segments_downloaded += 1
        elapsed = max(self._clock() - self._download_started, 1e-3)
        rate = len(event.data) / elapsed
        previous = self.stats.download_rate
        self.stats.download_rate = rate if previous == 0 else 0.7 * previous + 0.3 * rate
        if future is not None and not future.done():
            future.set_result(event.data)

    # -- announcing and downloading -------------------------------------------------------------

    @property
    def remote_loaded(self) -> frozenset[int]:
        return self.protocol.remote_loaded

    @property
    def remote_http_loading(self) -> frozenset[int]:
        return self.protocol.remote_http_loading

    @property
    def busy(self) -> bool:
        """True while a download from this peer runs (one per connection, like browsers)."""
        return self._download_future is not None

    def announce(self, loaded: tuple[int, ...], http_loading: tuple[int, ...] = ()) -> None:
        if self._closing:
            return
        self.protocol.announce(loaded, http_loading)
        self._run_writer()

    def _downloading_id(self) -> int:
        segment_id = self.protocol.downloading
        return -1 if segment_id is None else segment_id

    async def download(
        self, segment_id: int, *, byte_from: int = 0, total_size: int | None = None
    ) -> bytes:
        """Fetch ``segment_id`` (from ``byte_from``) from this peer. Raises :class:`DownloadError`.

        Cancelling the awaiting task sends ``CancelSegmentRequest``.
        """
        if self._closing:
            raise DownloadError(segment_id, "closed")
        if self._download_future is not None:
            raise RuntimeError("one download per connection at a time")
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._download_future = future
        self._download_started = self._clock()
        self.protocol.start_download(
            segment_id, self._download_started, byte_from=byte_from, total_size=total_size
        )
        self._run_ticker()
        self._run_writer()
        try:
            return await future
        except asyncio.CancelledError:
            if self._download_future is future:
                self._download_future = None
                self.protocol.cancel_download()
                self._dispatch()  # counts our own "cancelled" and wakes the writer
            raise

    # -- tasks ----------------------------------------------------------------------------------

    async def _send_queued(self) -> None:
        """Send the queued commands, each one's messages back to back; ``TimeoutError`` when the
        link takes nothing for ``upload_stall_timeout``."""
        while (messages := self.protocol.next_to_send()) is not None:
            async with asyncio.timeout(self.config.upload_stall_timeout):
                async with self._send_lock:
                    for message in messages:
                        await self.link.send(message)

    def _run_writer(self) -> None:
        """Have the writer send what the protocol queued: start it if there is something to
        send and it is not running (every received message comes here, most queue nothing)."""
        if not self._started:
            return  # start() runs it
        task = self._writer_task
        if task is not None and not task.done():
            self._write_again = True
        elif self.protocol.backlog:
            self._write_again = True
            name = f"session-writer-{self.remote_peer_id}"
            self._writer_task = self._tasks.spawn(self._writer(), name=name)

    def _run_uploader(self) -> None:
        task = self._uploader_task
        if task is None or task.done():
            name = f"session-uploader-{self.remote_peer_id}"
            self._uploader_task = self._tasks.spawn(self._uploader(), name=name)

    async def _writer(self) -> None:
        try:
            while self._write_again:
                self._write_again = False
                await self._send_queued()
        except TimeoutError:
            self.drop(CloseReason.REMOTE_NOT_READING)
        except P2PMLError as exc:
            self.drop(CloseReason.SEND_FAILED, str(exc))
        finally:
            self._writer_task = None  # not even the finished task is kept

    async def _uploader(self) -> None:
        # A new request replaces a waiting one, and stops the upload being served (the
        # protocol's one-upload rule, which _serve checks at every message).
        try:
            while (request := self._upload_request) is not None:
                self._upload_request = None
                await self._serve(request)
        except TimeoutError:
            self.drop(CloseReason.REMOTE_NOT_READING)
        except P2PMLError as exc:
            self.drop(CloseReason.UPLOAD_FAILED, str(exc))
        finally:
            self._uploader_task = None

    async def _serve(self, request: UploadRequested) -> None:
        protocol = self.protocol
        data = self.source.get(request.segment_id)
        if data is None or request.byte_from > len(data):
            protocol.send_absent(request.segment_id, request.request_id)
            self._run_writer()
            return
        payload = memoryview(data)[request.byte_from :]
        protocol.start_upload(request.segment_id, request.request_id, len(payload))
        await self._send_queued()
        stall = self.config.upload_stall_timeout
        for chunk in split_segment_data(payload, self.config.max_message_size):
            if not protocol.upload_active(request.request_id):
                return  # cancelled or superseded: no completion (SPEC d.7)
            async with self._send_lock:
                async with asyncio.timeout(stall):
                    await self.link.send(chunk)
            self.stats.bytes_uploaded += len(chunk)
            if self._on_uploaded is not None:
                self._on_uploaded(self, len(chunk))
        if protocol.finish_upload(request.segment_id, request.request_id):
            self.stats.segments_uploaded += 1
            await self._send_queued()

    def _run_ticker(self) -> None:
        """Start the ticker unless it runs (or the session is not started, or closing)."""
        if not self._started or self._closing:
            return
        task = self._ticker_task
        if task is None or task.done():
            name = f"session-ticker-{self.remote_peer_id}"
            self._ticker_task = self._tasks.spawn(self._ticker(), name=name)

    async def _ticker(self) -> None:
        # Ticks while a download can time out and then ends (no task, frame or context held
        # by an idle or seeding connection); download() starts it again.
        try:
            while self.protocol.next_deadline() is not None:
                await asyncio.sleep(self.config.tick_interval)
                try:
                    self.protocol.tick(self._clock())
                except RemoteProtocolError as exc:
                    reason = (
                        exc.reason if isinstance(exc, PeerProtocolViolation) else type(exc).__name__
                    )
                    self.drop(CloseReason.PROTOCOL_VIOLATION, reason)
                    return
                self._dispatch()
        finally:
            self._ticker_task = None

    async def _watch_link(self) -> None:
        await self.link.wait_closed()
        self._link_closed()

    def _link_closed(self) -> None:
        # Links keep why they closed (LinkBase.close_reason); the seam does not promise it.
        why = getattr(self.link, "close_reason", None)
        if isinstance(why, PeerUnresponsiveError):
            self.drop(CloseReason.PEER_UNRESPONSIVE, str(why))
        else:
            self.drop(CloseReason.CONNECTION_CLOSED)
