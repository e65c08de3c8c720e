"""The exception tree of p2pml_py.

One root, :class:`P2PMLError`. Two branches mirror h11's split:

* :class:`LocalProtocolError` -- *we* misused the API (a value that cannot be encoded, a call in the
  wrong state). It is a bug on our side or in the caller's code.
* :class:`RemoteProtocolError` -- the *peer* (a browser, another Python peer, a tracker) sent
  something that breaks the protocol. It also derives from :class:`ValueError` so code that only
  knows the builtin types still catches it. Handling it means dropping that peer, nothing more.
"""

from __future__ import annotations


class P2PMLError(Exception):
    """Root of every exception raised by p2pml_py on purpose."""


class LocalProtocolError(P2PMLError):
    """The caller asked for something the protocol cannot express."""


class RemoteProtocolError(P2PMLError, ValueError):
    """A remote party sent bytes or messages that break the protocol."""


class DecodeError(RemoteProtocolError):
    """A command body could not be decoded."""


class FramingError(RemoteProtocolError):
    """Chunks of a split command arrived in an order or shape the protocol forbids."""


class MessageTooLargeError(RemoteProtocolError):
    """A message or a reassembled command is larger than we accept."""


class TrackerProtocolError(RemoteProtocolError):
    """A tracker or tracker client sent a message that is not valid WebTorrent signalling."""


class SourceError(P2PMLError):
    """A manifest or playlist could not be loaded or understood."""


class SegmentInvalidError(SourceError):
    """A segment body is not what its playlist (or the site's integrity list) promises:
    truncated, garbled, wrong length or digest (:mod:`p2pml_py.hls.validate`). ``reason`` is a
    short stable label (:class:`~p2pml_py.hls.validate.Reason` value)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class RtcError(P2PMLError):
    """A WebRTC peer connection could not be set up, or it failed."""


class RtcSdpError(RtcError, RemoteProtocolError):
    """An offer or answer SDP is malformed or cannot be used for a data channel."""


class RtcTimeoutError(RtcError, TimeoutError):
    """ICE gathering, ICE connectivity or the data channel opening took too long."""


class LinkClosedError(RtcError):
    """The data-channel link is closed; nothing more can be sent on it."""


class PeerUnresponsiveError(LinkClosedError):
    """The link closed because the remote stopped answering ICE consent checks (RFC 7675): it
    went away without closing (killed, unplugged)."""


class OriginHttpError(SourceError):
    """The HTTP origin answered with an error status (``status`` >= 400)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class OriginTimeoutError(SourceError, TimeoutError):
    """A request to the HTTP origin took longer than its overall timeout."""


class OriginStallError(OriginTimeoutError):
    """The HTTP origin sent no bytes for longer than the stall timeout."""


class OriginConnectionError(SourceError, ConnectionError):
    """The HTTP origin could not be reached, or dropped the connection mid-response."""


class HarnessError(P2PMLError):
    """The browser interop harness could not set something up (Chromium, ffmpeg, npm, a peer)."""


class ConfigError(P2PMLError, ValueError):
    """A configuration file is invalid; the message names the file, the line and the field."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line
