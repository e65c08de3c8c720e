"""``lazy_srtp``: a connection's SRTP sessions are made when the first RTP/RTCP packet needs
them, which a data channel never sends.

After every DTLS handshake aiortc's ``RTCDtlsTransport._setup_srtp`` exports the SRTP keys and
makes two ``pylibsrtp.Session`` objects (``srtp_create``: cipher and authentication contexts,
replay windows). A data-channel peer -- every P2PML peer -- never sends or receives an RTP
packet, so they only cost memory: measured with heaptrack on the capacity seed (150 idle
connections, libsrtp through pylibsrtp 1.0), 8 KiB of native memory per connection, out of the
~160 KiB an idle connection holds. The patch replaces the name ``Session`` in
``aiortc.rtcdtlstransport`` with :class:`LazySession`, which keeps the policy aiortc built (keys
already exported, so nothing about the handshake changes) and makes the real session on first
use. An RTP packet still gets exactly aiortc's treatment.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from p2pml_py.rtc.aiortc_backend.speedups._core import Names, Patch, Target, need, target


def _make_session(original: Callable[..., Any]) -> type:
    class LazySession:
        """A ``pylibsrtp.Session`` made on first use (its policy is kept until then)."""

        __slots__ = ("_policy", "_session")

        def __init__(self, policy: Any = None) -> None:
            self._policy = policy
            self._session: Any = None

        @property
        def made(self) -> bool:
            return self._session is not None

        def _real(self) -> Any:
            session = self._session
            if session is None:
                session = self._session = original(self._policy)
                self._policy = None
            return session

        def protect(self, packet: bytes) -> bytes:
            return self._real().protect(packet)  # type: ignore[no-any-return]

        def protect_rtcp(self, packet: bytes) -> bytes:
            return self._real().protect_rtcp(packet)  # type: ignore[no-any-return]

        def unprotect(self, packet: bytes) -> bytes:
            return self._real().unprotect(packet)  # type: ignore[no-any-return]

        def unprotect_rtcp(self, packet: bytes) -> bytes:
            return self._real().unprotect_rtcp(packet)  # type: ignore[no-any-return]

        def __getattr__(self, name: str) -> Any:  # add_stream, remove_stream, ...
            return getattr(self._real(), name)

    LazySession.__qualname__ = LazySession.__name__ = "LazySession"
    return LazySession


def probe(names: Names) -> list[Target]:
    session = names.dtls_module.__dict__.get("Session")
    if session is None:
        need(names.dtls_module, "Session")
    need(session, "protect", "protect_rtcp", "unprotect", "unprotect_rtcp")
    need(names.dtls, "_setup_srtp")
    return [target(names.dtls_module, "Session", _make_session)]


PATCH = Patch("lazy_srtp", probe)
