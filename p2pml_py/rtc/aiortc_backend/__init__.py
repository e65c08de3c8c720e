"""The :mod:`p2pml_py.rtc.transport` seam on aiortc: peer connections shaped like the browsers'.

* :class:`RtcFactory` -- the :class:`~p2pml_py.rtc.transport.Transport`: ``create_offer()`` /
  ``accept_offer(sdp)`` (non-trickle SDP).
* :class:`DataChannelLink` -- the :class:`~p2pml_py.rtc.transport.Link`: ``set_receiver``,
  ``send`` (with backpressure), close tracking.
* :func:`loopback_pair` -- two linked peers in one process, for tests and experiments.
* :mod:`.speedups`, :mod:`.tuning`, :mod:`.addresses` -- optional patches and process tuning.
"""

from p2pml_py.rtc.aiortc_backend.factory import (
    IncomingConnection,
    OutgoingConnection,
    RtcFactory,
    new_channel_label,
)
from p2pml_py.rtc.aiortc_backend.link import DataChannelLink
from p2pml_py.rtc.aiortc_backend.loopback import loopback_pair

__all__ = [
    "DataChannelLink",
    "IncomingConnection",
    "OutgoingConnection",
    "RtcFactory",
    "loopback_pair",
    "new_channel_label",
]
