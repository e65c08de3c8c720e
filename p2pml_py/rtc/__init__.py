"""WebRTC for p2pml_py: aiortc peer connections shaped like the browsers', and the data-channel
driver the peer session talks through.

* :class:`RtcConfig` -- ICE servers, local ICE addresses, timeouts, message size, watermark.
* :class:`RtcFactory` -- ``create_offer()`` / ``accept_offer(sdp)`` (non-trickle SDP).
* :class:`DataChannelLink` -- ``set_receiver``, ``send`` (with backpressure), close tracking.
* :func:`loopback_pair` -- two linked peers in one process, for tests and experiments.
"""

from .config import IceServer, RtcConfig, parse_ice_server
from .factory import IncomingConnection, OutgoingConnection, RtcFactory, new_channel_label
from .link import DataChannelLink
from .loopback import loopback_pair

__all__ = [
    "DataChannelLink",
    "IceServer",
    "IncomingConnection",
    "OutgoingConnection",
    "RtcConfig",
    "RtcFactory",
    "loopback_pair",
    "new_channel_label",
    "parse_ice_server",
]
