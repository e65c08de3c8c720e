"""The per-connection peer protocol as a sans-I/O state machine.

How it works
------------
One :class:`PeerProtocol` lives for each data-channel connection. The driver feeds it every
received message with :meth:`PeerProtocol.receive_message` and the current time with
:meth:`PeerProtocol.tick`; it reads back what happened with :meth:`events_received` and what to
send with :meth:`data_to_send`. Nothing here touches a socket or a clock, so every rule below is
tested with plain calls.

A connection carries two independent transfers, mirroring ``core/p2p/peer.ts``:

* **one download** (we request from the remote). :meth:`start_download` sends
  ``SegmentRequest{i, r, b?}`` with a fresh request id (0-999, as browsers draw them). The remote
  answers ``SegmentData{i, r, s}`` -- exactly ``s`` raw bytes follow -- then
  ``SegmentDataSendingCompleted``; or ``SegmentAbsent``. Bytes arriving while no accepted transfer
  is running are leftovers of a cancelled one and are ignored, as browsers do. No bytes for
  ``receive_timeout`` seconds fail the download and send ``CancelSegmentRequest``; after
  ``max_timeouts`` such failures in a row the peer is dropped (``p2pErrorRetries``).
* **one upload** (the remote requests from us). A ``SegmentRequest`` supersedes any upload in
  progress (browsers stop the current upload first) and surfaces as :class:`UploadRequested`;
  the driver answers with :meth:`send_absent` or with :meth:`start_upload` + the data chunks
  (:func:`~p2pml_py.wire.framing.split_segment_data`) + :meth:`finish_upload`, checking
  :meth:`upload_active` between chunks so a ``CancelSegmentRequest`` or a newer request stops it.

Outgoing commands wait in a queue until the driver takes them (:meth:`next_to_send`). Our
announcement is the full state and the remote replaces its view with it (SPEC d.8), so a newer one
replaces one still queued: announcements never pile up. What the *remote* can make us queue are
replies to its requests, one per ``SegmentRequest``. There is no limit on how fast a peer may ask
-- browsers ask one request at a time per peer (``Peer.downloadSegment``) and a peer on a good
link legitimately asks for hundreds of small segments a second -- only on what it leaves unread:
a request that arrives while more than ``max_send_backlog`` bytes of commands (plus
:data:`QUEUED_COMMAND_OVERHEAD` each) are still queued for it means it asks without reading,
and it is dropped (``not-reading``).

Violations -- a size that disagrees with what we know, more bytes than announced, a completion
with the wrong ids or too few bytes, an unknown command code, requests while our replies go
unread, a run of undecodable commands -- raise a :class:`~p2pml_py.base.errors.RemoteProtocolError`;
the driver then
drops that peer and nothing else. Browsers drop a peer for the same size and id errors
(``core/p2p/peer.ts``), so a peer that trips them is broken for everyone.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, TypeAlias

from p2pml_py.base.errors import DecodeError, RemoteProtocolError
from p2pml_py.wire.codec import (
    CancelSegmentRequest,
    Command,
    SegmentAbsent,
    SegmentData,
    SegmentDataSendingCompleted,
    SegmentRequest,
    SegmentsAnnouncement,
    UnknownCommandError,
    decode_body,
)
from p2pml_py.wire.framing import (
    DEFAULT_MAX_COMMAND_SIZE,
    DEFAULT_MAX_MESSAGE_SIZE,
    CommandJoiner,
    encode,
    is_command_chunk,
)

logger = logging.getLogger(__name__)

#: ``p2pNotReceivingBytesTimeoutMs`` (``core/core.ts``).
DEFAULT_RECEIVE_TIMEOUT: Final = 2.0
#: ``p2pErrorRetries``.
DEFAULT_MAX_TIMEOUTS: Final = 3
#: Largest segment we accept from a peer. Browsers accept any size a peer announces (the page's
#: storage limit bounds it); 64 MiB is a 10 s segment at ~50 Mbit/s, beyond any HLS ladder.
DEFAULT_MAX_SEGMENT_SIZE: Final = 64 * 1024 * 1024
#: Command bytes queued for a peer (not yet taken by the driver) above which a new request from it
#: drops it. A reading peer has at most our one coalesced announcement (<= ~135 KB, see
#: ``DEFAULT_MAX_COMMAND_SIZE``) and a reply or two waiting: browsers request one segment at a
#: time from a peer (``core/p2p/peer.ts downloadSegment``).
DEFAULT_MAX_SEND_BACKLOG: Final = 256 * 1024
#: What holding one queued command costs beyond its bytes (a tuple, a list, bytes objects), counted
#: in the backlog so that thousands of tiny replies weigh what they hold.
QUEUED_COMMAND_OVERHEAD: Final = 256
#: Undecodable commands *in a row* after which a peer is dropped. Browsers silently drop
#: undecodable commands without disconnecting (SPEC d.9) and their own encoder makes some (an
#: announcement with a 256-id group, SPEC d.4), so a browser may send a few over a session -- but
#: no browser sends a run of them: such a peer speaks something else.
DEFAULT_MAX_MALFORMED_IN_ROW: Final = 8

#: Request ids of every :class:`PeerProtocol` made without an ``rng`` of its own (a
#: ``random.Random`` holds 2.5 KiB of state: one per connection was 2.5 KiB of every peer's heap).
_SHARED_RNG: Final = random.Random()


class Violation(StrEnum):
    """The segment-transfer rules a remote can break (each is checked where it is raised)."""

    MALFORMED_COMMANDS = "malformed-commands"
    NOT_READING = "not-reading"
    SIZE_MISMATCH = "size-mismatch"
    SIZE_LIMIT = "size-limit"
    OVERFLOW = "overflow"
    WRONG_IDS = "wrong-ids"
    SHORT_DATA = "short-data"
    TIMEOUTS = "timeouts"


class PeerProtocolViolation(RemoteProtocolError):
    """The remote broke the segment-transfer rules; drop it."""

    def __init__(self, reason: Violation, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason


# ------------------------------------------------------------------------------------------
# Events


@dataclass(frozen=True, slots=True)
class AnnouncementReceived:
    """The remote's full state; it replaces the previous one (SPEC d.8)."""

    loaded: frozenset[int]
    http_loading: frozenset[int]


@dataclass(frozen=True, slots=True)
class UploadRequested:
    segment_id: int
    request_id: int
    byte_from: int


@dataclass(frozen=True, slots=True)
class UploadCancelled:
    segment_id: int
    request_id: int


@dataclass(frozen=True, slots=True)
class DownloadCompleted:
    segment_id: int
    request_id: int
    byte_from: int
    data: bytes


@dataclass(frozen=True, slots=True)
class DownloadFailed:
    """``reason``: ``absent`` (the peer lacks it), ``timeout`` or ``cancelled`` (by us)."""

    segment_id: int
    request_id: int
    reason: str


Event: TypeAlias = (
    AnnouncementReceived | UploadRequested | UploadCancelled | DownloadCompleted | DownloadFailed
)


@dataclass(slots=True)
class _Download:
    segment_id: int
    request_id: int
    byte_from: int
    expected_size: int | None  # bytes the remote must send, when we know the segment's size
    last_activity: float
    announced_size: int | None = None  # ``s`` from SegmentData once accepted
    buffer: bytearray | None = None


def _cost(chunks: list[bytes]) -> int:
    return sum(len(chunk) for chunk in chunks) + QUEUED_COMMAND_OVERHEAD


class PeerProtocol:
    """Sans-I/O state of one peer connection. See the module docstring."""

    def __init__(
        self,
        *,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_command_size: int = DEFAULT_MAX_COMMAND_SIZE,
        max_segment_size: int = DEFAULT_MAX_SEGMENT_SIZE,
        receive_timeout: float = DEFAULT_RECEIVE_TIMEOUT,
        max_timeouts: int = DEFAULT_MAX_TIMEOUTS,
        max_malformed_commands: int = DEFAULT_MAX_MALFORMED_IN_ROW,
        max_send_backlog: int = DEFAULT_MAX_SEND_BACKLOG,
        rng: random.Random | None = None,
    ) -> None:
        self.max_message_size = max_message_size
        self.max_segment_size = max_segment_size
        self.receive_timeout = receive_timeout
        self.max_timeouts = max_timeouts
        self.max_malformed_commands = max_malformed_commands
        self.max_send_backlog = max_send_backlog
        self._joiner = CommandJoiner(max_command_size)
        self._rng = rng if rng is not None else _SHARED_RNG
        # A list: appended to and drained whole (an empty deque is a 528-byte block).
        self._events: list[Event] = []
        # One entry per command: (is it our announcement, its framed chunks). A list: the
        # backlog rule keeps it short (a request past max_send_backlog is a violation), so
        # popping its front is cheap, and an empty deque is a 528-byte block per connection.
        self._outgoing: list[tuple[bool, list[bytes]]] = []
        self._backlog = 0
        self._download: _Download | None = None
        self._upload: tuple[int, int] | None = None  # (segment_id, request_id)
        self._timeouts_in_row = 0
        self._malformed = 0
        self.remote_loaded: frozenset[int] = frozenset()
        self.remote_http_loading: frozenset[int] = frozenset()
        self.bytes_received = 0  # segment bytes accepted for downloads

    # -- I/O boundary --------------------------------------------------------------------

    def events_received(self) -> list[Event]:
        events, self._events = self._events, []
        return events

    def data_to_send(self) -> list[bytes]:
        """Every queued message, in order (the queue is then empty)."""
        messages = [chunk for _, chunks in self._outgoing for chunk in chunks]
        self._outgoing.clear()
        self._backlog = 0
        return messages

    def next_to_send(self) -> list[bytes] | None:
        """The messages of the oldest queued command (send them back to back), or ``None``.

        A driver that takes one command at a time, as the link can take it, leaves the rest here,
        where a newer announcement replaces a queued one and the backlog rule can see them.
        """
        if not self._outgoing:
            return None
        _, chunks = self._outgoing.pop(0)
        self._backlog -= _cost(chunks)
        return chunks

    @property
    def backlog(self) -> int:
        """What the queued commands hold: their bytes plus :data:`QUEUED_COMMAND_OVERHEAD` each."""
        return self._backlog

    def _send(self, command: Command, *, announcement: bool = False) -> None:
        chunks = encode(command, self.max_message_size)
        self._outgoing.append((announcement, chunks))
        self._backlog += _cost(chunks)

    # -- receiving -----------------------------------------------------------------------

    def receive_message(self, message: bytes, now: float) -> None:
        """Feed one data-channel message. Raises :class:`RemoteProtocolError` to drop the peer."""
        if not is_command_chunk(message):
            self._receive_segment_bytes(message, now)
            return
        try:
            body = self._joiner.feed(message)
            if body is None:
                return
            command = decode_body(body)
            self._malformed = 0
        except UnknownCommandError:
            raise  # no browser release sends one: the peer speaks something else
        except DecodeError as exc:
            # Browsers silently drop undecodable commands (and their own encoder produces some,
            # SPEC d.4), so tolerate a few before giving up on the peer.
            self._malformed += 1
            logger.debug("undecodable command (%d in a row): %s", self._malformed, exc)
            if self._malformed >= self.max_malformed_commands:
                raise PeerProtocolViolation(Violation.MALFORMED_COMMANDS, str(exc)) from exc
            return
        self._handle_command(command, now)

    def _handle_command(self, command: Command, now: float) -> None:
        match command:
            case SegmentsAnnouncement(loaded=loaded, http_loading=http_loading):
                self.remote_loaded = frozenset(loaded)
                self.remote_http_loading = frozenset(http_loading)
                self._events.append(
                    AnnouncementReceived(self.remote_loaded, self.remote_http_loading)
                )
            case SegmentRequest(segment_id=segment_id, request_id=request_id, byte_from=byte_from):
                if self._backlog > self.max_send_backlog:
                    raise PeerProtocolViolation(
                        Violation.NOT_READING,
                        f"a new request while {len(self._outgoing)} of our commands "
                        f"({self._backlog} bytes) wait unread (limit {self.max_send_backlog})",
                    )
                self._stop_upload()
                self._events.append(UploadRequested(segment_id, request_id, byte_from))
            case CancelSegmentRequest(request_id=request_id):
                # Upstream compares the request id only (core/p2p/peer.ts).
                if self._upload is not None and self._upload[1] == request_id:
                    self._stop_upload()
            case SegmentData():
                self._on_segment_data(command, now)
            case SegmentDataSendingCompleted():
                self._on_sending_completed(command)
            case SegmentAbsent(segment_id=segment_id, request_id=request_id):
                download = self._download
                if download and (download.segment_id, download.request_id) == (
                    segment_id,
                    request_id,
                ):
                    self._download = None
                    self.remote_loaded = self.remote_loaded - {segment_id}
                    self._events.append(DownloadFailed(segment_id, request_id, "absent"))

    def _on_segment_data(self, command: SegmentData, now: float) -> None:
        download = self._download
        if (
            download is None
            or download.announced_size is not None
            or (download.segment_id, download.request_id)
            != (command.segment_id, command.request_id)
        ):
            return  # stale or foreign: browsers ignore it too
        if download.expected_size is not None and command.size != download.expected_size:
            raise PeerProtocolViolation(
                Violation.SIZE_MISMATCH,
                f"segment {command.segment_id}: peer announces {command.size} bytes, "
                f"expected {download.expected_size}",
            )
        if command.size > self.max_segment_size:
            raise PeerProtocolViolation(
                Violation.SIZE_LIMIT,
                f"peer announces {command.size} bytes (limit {self.max_segment_size})",
            )
        download.announced_size = command.size
        download.buffer = bytearray()
        download.last_activity = now

    def _receive_segment_bytes(self, message: bytes, now: float) -> None:
        download = self._download
        if download is None or download.buffer is None or download.announced_size is None:
            return  # leftovers of a cancelled transfer
        if len(download.buffer) + len(message) > download.announced_size:
            raise PeerProtocolViolation(
                Violation.OVERFLOW,
                f"segment {download.segment_id}: more than the {download.announced_size} "
                "announced bytes",
            )
        download.buffer += message
        download.last_activity = now
        self.bytes_received += len(message)

    def _on_sending_completed(self, command: SegmentDataSendingCompleted) -> None:
        download = self._download
        if download is None or download.buffer is None or download.announced_size is None:
            return
        if (download.segment_id, download.request_id) != (command.segment_id, command.request_id):
            raise PeerProtocolViolation(
                Violation.WRONG_IDS, f"completion for {command.segment_id}/{command.request_id}"
            )
        if len(download.buffer) != download.announced_size:
            raise PeerProtocolViolation(
                Violation.SHORT_DATA,
                f"segment {download.segment_id}: {len(download.buffer)} of "
                f"{download.announced_size} bytes",
            )
        self._download = None
        self._timeouts_in_row = 0
        self._events.append(
            DownloadCompleted(
                download.segment_id,
                download.request_id,
                download.byte_from,
                bytes(download.buffer),
            )
        )

    # -- time ----------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        """Check the receive timeout. Raises :class:`RemoteProtocolError` after too many."""
        download = self._download
        if download is None or now - download.last_activity < self.receive_timeout:
            return
        self._download = None
        self._send(CancelSegmentRequest(download.segment_id, download.request_id))
        self._events.append(DownloadFailed(download.segment_id, download.request_id, "timeout"))
        self._timeouts_in_row += 1
        if self._timeouts_in_row >= self.max_timeouts:
            raise PeerProtocolViolation(
                Violation.TIMEOUTS, f"{self._timeouts_in_row} downloads without bytes in a row"
            )

    def next_deadline(self) -> float | None:
        """When :meth:`tick` next has work, or ``None``."""
        download = self._download
        return None if download is None else download.last_activity + self.receive_timeout

    # -- our side ------------------------------------------------------------------------

    def announce(self, loaded: tuple[int, ...], http_loading: tuple[int, ...] = ()) -> None:
        """Send our full state (the remote replaces its view of us, SPEC d.8).

        An announcement still queued is stale now: it is replaced, not followed.
        """
        for index, (is_announcement, chunks) in enumerate(self._outgoing):
            if is_announcement:
                del self._outgoing[index]
                self._backlog -= _cost(chunks)
                break
        self._send(SegmentsAnnouncement(loaded, http_loading), announcement=True)

    @property
    def downloading(self) -> int | None:
        """The segment id being downloaded, if any (one download per connection)."""
        return None if self._download is None else self._download.segment_id

    @property
    def download_progress(self) -> int:
        download = self._download
        return 0 if download is None or download.buffer is None else len(download.buffer)

    def start_download(
        self, segment_id: int, now: float, *, byte_from: int = 0, total_size: int | None = None
    ) -> int:
        """Request ``segment_id`` from ``byte_from`` on; returns the request id.

        ``total_size`` -- the segment's full size when known (byte-range segments, resumes): the
        peer must then announce exactly ``total_size - byte_from`` bytes.
        """
        if self._download is not None:
            raise RuntimeError("a download is already running on this connection")
        if total_size is not None and not 0 <= byte_from <= total_size:
            raise ValueError(f"byte_from {byte_from} outside 0..{total_size}")
        request_id = self._rng.randrange(1000)
        expected = None if total_size is None else total_size - byte_from
        self._download = _Download(segment_id, request_id, byte_from, expected, now)
        self._send(SegmentRequest(segment_id, request_id, byte_from))
        return request_id

    def cancel_download(self) -> None:
        download = self._download
        if download is None:
            return
        self._download = None
        self._send(CancelSegmentRequest(download.segment_id, download.request_id))
        self._events.append(DownloadFailed(download.segment_id, download.request_id, "cancelled"))

    def send_absent(self, segment_id: int, request_id: int) -> None:
        if self._upload is not None and self._upload[1] == request_id:
            self._upload = None
        self._send(SegmentAbsent(segment_id, request_id))

    def start_upload(self, segment_id: int, request_id: int, size: int) -> None:
        """Queue ``SegmentData``; the driver then sends exactly ``size`` bytes of data."""
        self._upload = (segment_id, request_id)
        self._send(SegmentData(segment_id, request_id, size))

    def upload_active(self, request_id: int) -> bool:
        return self._upload is not None and self._upload[1] == request_id

    def finish_upload(self, segment_id: int, request_id: int) -> bool:
        """Queue the completion if the upload was not cancelled or superseded meanwhile."""
        if self._upload != (segment_id, request_id):
            return False
        self._upload = None
        self._send(SegmentDataSendingCompleted(segment_id, request_id))
        return True

    def _stop_upload(self) -> None:
        if self._upload is not None:
            segment_id, request_id = self._upload
            self._upload = None
            self._events.append(UploadCancelled(segment_id, request_id))
