"""WebRTC for p2pml_py, seen from the engine: a configuration and a small transport seam.

* :class:`RtcConfig` -- ICE servers, local ICE addresses, timeouts, message size, watermark.
* :class:`Transport`, :class:`PendingOffer`, :class:`PendingAnswer`, :class:`Link` -- what the
  engine needs from any WebRTC implementation (:mod:`p2pml_py.rtc.transport`).
* :mod:`p2pml_py.rtc.aiortc_backend` -- the implementation on aiortc, shaped like the browsers'
  (``RtcFactory``, ``DataChannelLink``, ``loopback_pair``, speedups and process tuning).
"""

from p2pml_py.rtc.config import IceServer, RtcConfig, parse_ice_server
from p2pml_py.rtc.transport import (
    Link,
    PendingAnswer,
    PendingOffer,
    Transport,
    open_transport,
    register_backend,
)

__all__ = [
    "IceServer",
    "Link",
    "PendingAnswer",
    "PendingOffer",
    "RtcConfig",
    "Transport",
    "open_transport",
    "parse_ice_server",
    "register_backend",
]
