"""The seam between the engine and a WebRTC implementation.

The engine (sessions and swarms) needs exactly four things from WebRTC: make an offer, answer an
offer, finish an offer with the remote answer, and a message link over the opened data channel.
Everything here is a :class:`typing.Protocol`; the aiortc backend
(:mod:`p2pml_py.rtc.aiortc_backend`) implements it, and :mod:`p2pml_py.testing.memory` implements
it with in-process queues for sans-I/O-style tests. A second data-channel backend implements these
four types and nothing in ``engine/`` or ``roles/`` changes.

SDP is non-trickle (SPEC e): ``sdp`` is complete when the object is returned.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from p2pml_py.rtc.config import RtcConfig


class Link(Protocol):
    """An open, ordered, reliable message channel to one remote peer."""

    @property
    def label(self) -> str: ...

    @property
    def closed(self) -> bool: ...

    def set_receiver(self, callback: Callable[[bytes], None]) -> None:
        """Deliver every message to ``callback`` (messages that arrived earlier first)."""

    async def send(self, data: bytes | bytearray | memoryview) -> None:
        """Queue one message; waits while the transport's send buffer is full (backpressure)."""

    async def wait_closed(self) -> None: ...

    def on_closed(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the link is closed, from the event loop (soon, if it already
        is) -- what ``wait_closed`` tells a task, without a task waiting for it."""

    async def aclose(self) -> None:
        """Close the link and the connection under it. Idempotent. Messages not yet delivered
        to the remote's receiver are lost (as with ``RTCPeerConnection.close()``); the remote
        end closes too, and ``send`` on either end then raises ``LinkClosedError``."""


class PendingOffer(Protocol):
    """Our offer, waiting for the remote answer: ``accept_answer`` once, or ``aclose``."""

    sdp: str

    @property
    def label(self) -> str: ...

    async def accept_answer(self, sdp: str) -> Link:
        """Apply the answer; the link once the channel is open. Closes everything on failure."""

    async def aclose(self) -> None:
        """Release the connection unless ``accept_answer`` handed it to a link. Idempotent."""


class PendingAnswer(Protocol):
    """Our answer to a remote offer, waiting for the remote to open its data channel.

    An offer the remote already withdrew (or that another answer completed) is still answered:
    nothing tells us; ``wait_link`` then fails with ``RtcError``/``RtcTimeoutError``.
    """

    sdp: str

    async def wait_link(self) -> Link:
        """The link once the remote opened its channel. Closes everything on failure."""

    async def aclose(self) -> None:
        """Release the connection unless ``wait_link`` handed it to a link. Idempotent."""


class Transport(Protocol):
    """Makes connections: ``create_offer()`` and ``accept_offer(sdp)``.

    Both raise :class:`~p2pml_py.base.errors.RtcError` subclasses (``RtcSdpError`` for an
    unusable remote SDP, ``RtcTimeoutError`` for ICE gathering) with nothing left open.
    """

    async def create_offer(self) -> PendingOffer: ...

    async def accept_offer(self, sdp: str) -> PendingAnswer: ...


#: Builds a transport from a configuration.
TransportFactory = Callable[["RtcConfig"], Transport]

_BACKENDS: dict[str, TransportFactory] = {}


def _aiortc(config: RtcConfig) -> Transport:
    from p2pml_py.rtc.aiortc_backend.factory import RtcFactory  # imported on first use

    return RtcFactory(config)


def register_backend(name: str, factory: TransportFactory | None) -> None:
    """Make ``RtcConfig(backend=name)`` build its connections with ``factory`` (``None``
    removes it). The engine and the roles only ever call :func:`open_transport`."""
    if factory is None:
        _BACKENDS.pop(name, None)
    else:
        _BACKENDS[name] = factory


def open_transport(config: RtcConfig) -> Transport:
    """The transport ``config.backend`` names (``aiortc`` unless another was registered)."""
    factory = _BACKENDS.get(config.backend)
    if factory is None:
        if config.backend != "aiortc":
            known = ", ".join(sorted({"aiortc", *_BACKENDS}))
            raise ValueError(f"rtc.backend: unknown transport backend {config.backend!r} ({known})")
        factory = _aiortc
    return factory(config)
