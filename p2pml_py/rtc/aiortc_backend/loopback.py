"""Two data-channel links joined over real aiortc on 127.0.0.1, for tests and experiments.

Everything stays on the loopback interface: no ICE servers, host candidates on 127.0.0.1 only.
"""

from __future__ import annotations

import dataclasses

from p2pml_py.rtc.aiortc_backend.factory import RtcFactory
from p2pml_py.rtc.aiortc_backend.link import DataChannelLink
from p2pml_py.rtc.config import RtcConfig

__all__ = ["LOOPBACK_CONFIG", "loopback_pair"]

LOOPBACK_CONFIG = RtcConfig(ice_addresses=("127.0.0.1",))


async def loopback_pair(
    config: RtcConfig | None = None,
) -> tuple[DataChannelLink, DataChannelLink]:
    """Return ``(offerer_link, answerer_link)``, both open. The caller closes both.

    ``config`` defaults to :data:`LOOPBACK_CONFIG`; its ICE servers and addresses are replaced
    by none and ``127.0.0.1`` whatever it says, so traffic cannot leave the host.
    """
    base = config if config is not None else LOOPBACK_CONFIG
    config = dataclasses.replace(base, ice_servers=(), ice_addresses=("127.0.0.1",))
    offerer = RtcFactory(config)
    answerer = RtcFactory(config)
    outgoing = await offerer.create_offer()
    async with outgoing:
        incoming = await answerer.accept_offer(outgoing.sdp)
        async with incoming:
            link_a = await outgoing.accept_answer(incoming.sdp)
            try:
                link_b = await incoming.wait_link()
            except BaseException:
                await link_a.aclose()
                raise
    return link_a, link_b
