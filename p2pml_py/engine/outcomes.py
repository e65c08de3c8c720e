"""Why a peer connection ended, as a value: logs, ``drops`` counters and metrics derive from it.

The enum's values are the texts the project has always logged and reported (``drops`` keys in
``--json`` summaries and the super-peer's ``p2pml_superpeer_peer_drops_total{reason}``), so
dashboards keep working; code compares members, never strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from p2pml_py.wire.protocol import Violation

__all__ = ["CloseReason", "Closed", "Violation"]


class CloseReason(StrEnum):
    #: We closed it (``aclose()`` with no reason).
    CLOSED_BY_US = "closed by us"
    #: The swarm left the stream; every peer goes.
    SWARM_CLOSED = "swarm closed"
    #: The remote opened a second connection and kept the other one.
    DUPLICATE = "duplicate connection"
    #: The data channel or the peer connection went down (the remote closed it, ICE failed).
    CONNECTION_CLOSED = "connection closed"
    #: The remote answered no ICE consent check for ``RtcConfig.consent_timeout``: it vanished
    #: without closing (killed, unplugged); ``detail`` says for how long it was silent.
    PEER_UNRESPONSIVE = "peer unresponsive"
    #: The remote broke the peer protocol; ``detail`` is the :class:`Violation`.
    PROTOCOL_VIOLATION = "protocol violation"
    #: A segment from the remote failed the stream's validator.
    VALIDATION_FAILED = "segment validation failed"
    #: Our link took no bytes for ``upload_stall_timeout``.
    REMOTE_NOT_READING = "remote stopped reading"
    #: Sending a command failed (``detail``: the error).
    SEND_FAILED = "send failed"
    #: Sending segment data failed (``detail``: the error).
    UPLOAD_FAILED = "upload failed"


@dataclass(frozen=True, slots=True)
class Closed:
    """A close reason and its detail (a violation kind, an error text)."""

    reason: CloseReason
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.reason.value}: {self.detail}" if self.detail else self.reason.value

    @property
    def key(self) -> str:
        """The ``drops`` counter this close counts in: the reason, and for a protocol violation
        also its kind (``"protocol violation: not-reading"``); error texts are left out."""
        if self.reason is CloseReason.PROTOCOL_VIOLATION and self.detail:
            return str(self)
        return self.reason.value

    @property
    def violation(self) -> Violation | None:
        """The violation kind, when the remote broke the protocol with a known one."""
        if self.reason is not CloseReason.PROTOCOL_VIOLATION:
            return None
        try:
            return Violation(self.detail)
        except ValueError:
            return None
