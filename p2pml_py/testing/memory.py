"""An in-memory implementation of the WebRTC seam (:mod:`p2pml_py.rtc.transport`) for tests.

Sessions and swarms see only the seam, so tests can run them on in-process queues instead of
aiortc: no sockets, no ICE, no DTLS, and every step is ordered by the event loop alone. The
semantics are those of :class:`~p2pml_py.rtc.aiortc_backend.link.DataChannelLink` and
:class:`~p2pml_py.rtc.aiortc_backend.factory.RtcFactory`, where they are meaningful:

* **Signalling.** An offer's ``sdp`` is an opaque token registered in a :class:`MemoryNetwork`;
  any string survives the tracker (it only checks for a bounded non-empty string). A token this
  network never issued is an unusable SDP: :class:`~p2pml_py.base.errors.RtcSdpError`, as the
  factory raises for garbage. The token of an offer that was withdrawn (``aclose``) or already
  connected is still a well-formed SDP, so it is answered, and ``wait_link`` then fails with
  ``RtcError`` -- a real answerer sees its ICE checks fail (or time out) the same way.
* **Delivery** goes through the event loop (``call_soon``), never inside ``send()``: the sender
  carries on, and the remote's receiver runs on a later loop iteration, in send order. Messages
  that arrive before ``set_receiver`` are kept (at most ``early_buffer_bytes``, more closes the
  link) and replayed first, as a browser's announcement sent right after ``connect`` is.
* **Backpressure.** What a link has sent and the remote has not received yet is its
  ``buffered_amount`` (aiortc's ``bufferedAmount``). ``send()`` waits while that exceeds the
  high watermark, or while ``max_queued_messages`` messages are in flight, and wakes when the
  amount falls to half of what it was (or of the watermark) -- aiortc's ``bufferedamountlow``
  with the threshold the real link sets.
* **Size.** ``send()`` of a message larger than the *remote's* ``max_message_size`` (its
  ``a=max-message-size``) raises :class:`~p2pml_py.base.errors.LocalProtocolError`, the class
  the real link raises for aiortc's ``ValueError``.
* **Closing.** ``aclose()`` on one end closes the other on the next loop iteration (the remote
  hears an SCTP ABORT). Data the remote has not received yet is lost in both directions, as it
  is when ``RTCPeerConnection.close()`` tears down SCTP. ``send()`` on a closed link raises
  :class:`~p2pml_py.base.errors.LinkClosedError`. A receiver callback that raises closes the
  link with that exception as :attr:`MemoryLink.close_reason`.

Fault hooks: :meth:`MemoryLink.drop` fails the connection on both ends at once (an ICE or DTLS
failure), :meth:`MemoryLink.stall` stops one end from receiving (its socket paused: the remote's
``buffered_amount`` grows until its ``send()`` blocks) and :meth:`MemoryLink.resume` lets the
queued messages through.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from p2pml_py.base.errors import (
    LocalProtocolError,
    RtcError,
    RtcSdpError,
    RtcTimeoutError,
)
from p2pml_py.rtc.config import DEFAULT_MAX_QUEUED_MESSAGES, RtcConfig
from p2pml_py.rtc.linkbase import LinkBase

if TYPE_CHECKING:
    from p2pml_py.rtc.transport import Link, PendingAnswer, PendingOffer, Transport

__all__ = [
    "DEFAULT_MAX_QUEUED_MESSAGES",
    "MemoryAnswer",
    "MemoryLink",
    "MemoryNetwork",
    "MemoryOffer",
    "MemoryTransport",
    "memory_pair",
]

logger = logging.getLogger(__name__)


Receiver = Callable[[bytes], None]

_network_ids = itertools.count(1)


class MemoryLink(LinkBase):
    """One end of an in-memory data channel; the other end is another ``MemoryLink``.

    Built in pairs by :class:`MemoryTransport` (or :func:`memory_pair`). Receiving, backpressure
    and close tracking are :class:`~p2pml_py.rtc.linkbase.LinkBase`'s, as in the aiortc link.
    """

    def __init__(
        self,
        label: str,
        *,
        max_message_size: int,
        high_watermark: int,
        early_buffer_bytes: int,
        max_queued_messages: int = DEFAULT_MAX_QUEUED_MESSAGES,
    ) -> None:
        super().__init__(
            high_watermark=high_watermark,
            early_buffer_bytes=early_buffer_bytes,
            max_queued_messages=max_queued_messages,
        )
        self._label = label
        self._max_message_size = max_message_size
        self._peer: MemoryLink | None = None
        # Messages the peer sent us and we have not received: the peer's bufferedAmount.
        self._inbox: deque[bytes] = deque()
        self._inbox_bytes = 0
        self._flush_handle: asyncio.Handle | None = None
        self._stalled = False
        # Our bufferedAmount at which the sender is woken (aiortc's bufferedamountlow).
        self._low_threshold = high_watermark // 2

    @staticmethod
    def _join(a: MemoryLink, b: MemoryLink) -> None:
        a._peer = b
        b._peer = a

    # -- properties -------------------------------------------------------------------------

    @property
    def label(self) -> str:
        return self._label

    @property
    def remote(self) -> MemoryLink | None:
        """The other end (for tests)."""
        return self._peer

    @property
    def buffered_amount(self) -> int:
        """Bytes we sent that the remote has not received yet."""
        peer = self._peer
        return 0 if peer is None else peer._inbox_bytes

    @property
    def queued_messages(self) -> int:
        """Messages we sent that the remote has not received yet."""
        peer = self._peer
        return 0 if peer is None else len(peer._inbox)

    @property
    def max_message_size(self) -> int:
        """The largest message this end accepts (its ``a=max-message-size``)."""
        return self._max_message_size

    @property
    def stalled(self) -> bool:
        return self._stalled

    # -- receiving --------------------------------------------------------------------------

    def _enqueue(self, data: bytes) -> None:
        """The peer sent ``data`` to us; it arrives on a later loop iteration (or never, if we
        are closed and the peer has not heard yet)."""
        if self._closed:
            return
        self._inbox.append(data)
        self._inbox_bytes += len(data)
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        if self._flush_handle is None and not self._stalled and not self._closed and self._inbox:
            self._flush_handle = asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        while self._inbox and not self._stalled and not self._closed:
            data = self._inbox.popleft()
            self._inbox_bytes -= len(data)
            self._receive(data)
        peer = self._peer
        if peer is not None and peer.buffered_amount <= peer._low_threshold:
            peer._writable_again()

    # -- sending ----------------------------------------------------------------------------

    async def send(self, data: bytes | bytearray | memoryview) -> None:
        """Send one binary message, waiting first while too much of ours is unreceived.

        Raises :class:`~p2pml_py.base.errors.LinkClosedError` if the link is (or becomes)
        closed, :class:`~p2pml_py.base.errors.LocalProtocolError` if the message is larger than
        the remote accepts.
        """
        await self._wait_room()
        peer = self._peer
        assert peer is not None  # joined before the link is handed out
        payload = bytes(data)
        if len(payload) > peer._max_message_size:
            raise LocalProtocolError(
                f"Message size exceeds maximum ({len(payload)} > {peer._max_message_size})"
            )
        self._sent(len(payload))
        peer._enqueue(payload)

    def _backlog(self) -> tuple[int, int]:
        return self.buffered_amount, self.queued_messages

    def _wake_when_below(self, amount: int) -> None:
        self._low_threshold = amount

    # -- fault hooks ------------------------------------------------------------------------

    def stall(self) -> None:
        """Stop receiving (as if this end's socket were paused): what the remote sends waits in
        its ``buffered_amount`` until :meth:`resume`."""
        self._stalled = True
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None

    def resume(self) -> None:
        """Receive again; the queued messages arrive on the next loop iteration, in order."""
        self._stalled = False
        self._schedule_flush()

    def drop(self, reason: str = "peer connection failed (fault injected)") -> None:
        """Fail the connection now, on both ends (an ICE or DTLS failure); in-flight data is
        lost."""
        peer = self._peer
        self._mark_closed(reason)
        if peer is not None:
            peer._mark_closed(reason)

    # -- closing ----------------------------------------------------------------------------

    def _on_closed(self) -> None:
        self._clear_inbox()
        peer = self._peer
        if peer is not None and not peer._closed:
            # The connection is gone: what we sent and the remote has not received is lost too.
            peer._clear_inbox()
            asyncio.get_running_loop().call_soon(peer._mark_closed, "data channel closed")

    def _clear_inbox(self) -> None:
        self._inbox.clear()
        self._inbox_bytes = 0
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None

    async def aclose(self) -> None:
        """Close both ends (the remote on the next loop iteration); safe to call many times."""
        self._mark_closed("closed locally")


class MemoryNetwork:
    """Where the offers of a test's :class:`MemoryTransport` objects are registered.

    Only transports that share a network can connect; a token from another network is as
    unusable as garbage. :attr:`pairs` lists every connection made, ``(offerer, answerer)``, so
    a test can reach the links under sessions and swarms to inject faults.
    """

    def __init__(self) -> None:
        self._prefix = f"memory-sdp/{next(_network_ids)}"
        self._ids = itertools.count(1)
        self._offers: dict[str, MemoryOffer] = {}
        self._retired: set[str] = set()  # offers withdrawn or connected
        self._answers: dict[str, MemoryAnswer] = {}  # every answer, failed ones included
        self.pairs: list[tuple[MemoryLink, MemoryLink]] = []
        self.offers_made = 0
        self.offers_answered = 0

    def _token(self, kind: str) -> str:
        return f"{self._prefix}/{kind}/{next(self._ids)}"

    def _register_offer(self, offer: MemoryOffer) -> None:
        self._offers[offer.sdp] = offer
        self.offers_made += 1

    def _retire_offer(self, offer: MemoryOffer, why: str) -> None:
        """The offer is withdrawn or connected: its other answers can never connect."""
        if self._offers.pop(offer.sdp, None) is None:
            return
        self._retired.add(offer.sdp)
        for answer in self._answers.values():
            if answer._offer is offer and answer._link is None and answer._failure is None:
                answer._fail(why)

    def _answer_offer(self, sdp: object, answerer: MemoryTransport) -> MemoryAnswer:
        if not isinstance(sdp, str):
            raise RtcSdpError(f"offer SDP must be a str, not {type(sdp).__name__}")
        offer = self._offers.get(sdp)
        if offer is None and sdp not in self._retired:
            raise RtcSdpError(f"offer SDP is not an offer of this memory network: {sdp[:40]!r}")
        answer = MemoryAnswer(self, answerer, offer, self._token("answer"))
        self.offers_answered += 1
        self._answers[answer.sdp] = answer
        if offer is None:
            answer._fail("the offerer closed this offer or connected it elsewhere")
        return answer

    def _find_answer(self, sdp: object, offer: MemoryOffer) -> MemoryAnswer:
        if not isinstance(sdp, str):
            raise RtcSdpError(f"answer SDP must be a str, not {type(sdp).__name__}")
        answer = self._answers.get(sdp)
        if answer is None:
            raise RtcSdpError(f"answer SDP is not an answer of this memory network: {sdp[:40]!r}")
        if answer._offer is not offer:
            raise RtcSdpError("answer SDP answers another offer")
        return answer

    def _connect(self, offer: MemoryOffer, answer: MemoryAnswer) -> MemoryLink:
        """Open the channel: both links exist and are joined; the offerer's link is returned."""
        ours = offer._transport._new_link(offer.label)
        theirs = answer._transport._new_link(offer.label)
        MemoryLink._join(ours, theirs)
        self.pairs.append((ours, theirs))
        answer._link = theirs
        self._retire_offer(offer, "the offerer connected to another answer")
        answer._changed.set()
        return ours


class MemoryOffer:
    """Our offer (a :class:`~p2pml_py.rtc.transport.PendingOffer`): ``accept_answer`` once, or
    ``aclose``."""

    def __init__(self, transport: MemoryTransport, sdp: str) -> None:
        self._transport = transport
        self._network = transport.network
        self._answered = False
        self._handed_over = False
        self._closed = False
        #: The opaque offer token, to publish through the tracker.
        self.sdp = sdp
        # A data-channel label is 40 hex chars (simple-peer ``randombytes(20)``); derived from
        # the token so that runs are repeatable.
        self._label = hashlib.sha1(sdp.encode()).hexdigest()

    @property
    def label(self) -> str:
        return self._label

    async def accept_answer(self, sdp: str) -> MemoryLink:
        """Connect to the answerer; the link, open. ``RtcSdpError`` for a token that is not an
        answer to this offer, ``RtcError`` if the answerer gave up; the offer is closed then."""
        if self._answered:
            raise LocalProtocolError("accept_answer() was already called on this offer")
        self._answered = True
        try:
            if self._closed:
                raise RtcError("accept_answer() on a closed offer")
            answer = self._network._find_answer(sdp, self)
            if answer._failure is not None:
                raise RtcError(f"connection failed: {answer._failure}")
            link = self._network._connect(self, answer)
        except BaseException:
            await self.aclose()
            raise
        self._handed_over = True
        return link

    async def aclose(self) -> None:
        """Withdraw the offer unless ``accept_answer`` connected it. Idempotent."""
        if self._handed_over or self._closed:
            return
        self._closed = True
        self._network._retire_offer(self, "the offerer closed the connection")


class MemoryAnswer:
    """Our answer to a remote offer (a :class:`~p2pml_py.rtc.transport.PendingAnswer`), waiting
    for the offerer to accept it."""

    def __init__(
        self,
        network: MemoryNetwork,
        transport: MemoryTransport,
        offer: MemoryOffer | None,
        sdp: str,
    ) -> None:
        self._network = network
        self._transport = transport
        self._offer = offer
        self._link: MemoryLink | None = None
        self._failure: str | None = None
        self._waited = False
        self._handed_over = False
        self._changed = asyncio.Event()
        #: The opaque answer token, to send back through the tracker.
        self.sdp = sdp

    def _fail(self, why: str) -> None:
        if self._failure is None:
            self._failure = why
        self._changed.set()

    async def wait_link(self) -> MemoryLink:
        """The link once the offerer accepted our answer (within ``open_timeout``). Raises
        ``RtcError`` if that can no longer happen, ``RtcTimeoutError`` if it does not in time."""
        if self._waited:
            raise LocalProtocolError("wait_link() was already called on this connection")
        self._waited = True
        timeout = self._transport.config.open_timeout
        try:
            try:
                async with asyncio.timeout(timeout):
                    while self._link is None:
                        if self._failure is not None:
                            raise RtcError(
                                f"peer connection failed before the remote opened a data "
                                f"channel: {self._failure}"
                            )
                        self._changed.clear()
                        await self._changed.wait()
            except TimeoutError:
                raise RtcTimeoutError(
                    f"no data channel from the remote within open_timeout={timeout} s"
                ) from None
        except BaseException:
            await self.aclose()
            raise
        self._handed_over = True
        return self._link

    async def aclose(self) -> None:
        """Give up unless ``wait_link`` handed the link over (closing it if it opened meanwhile).
        Idempotent."""
        if self._handed_over:
            return
        self._fail("the answerer closed the connection")
        if self._link is not None:
            await self._link.aclose()


class MemoryTransport:
    """A :class:`~p2pml_py.rtc.transport.Transport` on a :class:`MemoryNetwork`.

    ``config`` supplies what applies in memory: ``max_message_size`` (what our links accept and
    advertise), ``high_watermark``, ``early_buffer_bytes`` and ``open_timeout``.
    """

    def __init__(
        self,
        network: MemoryNetwork,
        config: RtcConfig | None = None,
        *,
        max_queued_messages: int = DEFAULT_MAX_QUEUED_MESSAGES,
    ) -> None:
        self.network = network
        self.config = config if config is not None else RtcConfig()
        self.max_queued_messages = max_queued_messages

    def _new_link(self, label: str) -> MemoryLink:
        return MemoryLink(
            label,
            max_message_size=self.config.max_message_size,
            high_watermark=self.config.high_watermark,
            early_buffer_bytes=self.config.early_buffer_bytes,
            max_queued_messages=self.max_queued_messages,
        )

    async def create_offer(self) -> MemoryOffer:
        offer = MemoryOffer(self, self.network._token("offer"))
        self.network._register_offer(offer)
        return offer

    async def accept_offer(self, sdp: str) -> MemoryAnswer:
        """Answer an offer token; ``RtcSdpError`` for a token this network never issued."""
        return self.network._answer_offer(sdp, self)


async def memory_pair(
    config: RtcConfig | None = None, network: MemoryNetwork | None = None
) -> tuple[MemoryLink, MemoryLink]:
    """``(offerer_link, answerer_link)``, joined through the whole offer/answer exchange."""
    network = network if network is not None else MemoryNetwork()
    offerer = MemoryTransport(network, config)
    answerer = MemoryTransport(network, config)
    offer = await offerer.create_offer()
    answer = await answerer.accept_offer(offer.sdp)
    link_a = await offer.accept_answer(answer.sdp)
    return link_a, await answer.wait_link()


if TYPE_CHECKING:
    # The seam's protocols, checked by mypy.
    _link: type[Link] = MemoryLink
    _offer: type[PendingOffer] = MemoryOffer
    _answer: type[PendingAnswer] = MemoryAnswer
    _transport: type[Transport] = MemoryTransport
