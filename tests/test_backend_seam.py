"""The transport seam: roles run on a second backend chosen by configuration alone.

The seeder and the viewer below are the product's own classes; only ``RtcConfig.backend``
differs, and it names the in-memory transport registered by the test. Nothing in engine/ or
roles/ knows that backend.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator

import pytest

from p2pml_py.engine.streams import PeerOptions
from p2pml_py.roles.seeder import Seeder
from p2pml_py.rtc import RtcConfig, open_transport, register_backend
from p2pml_py.rtc.aiortc_backend import RtcFactory
from p2pml_py.testing.memory import MemoryNetwork, MemoryTransport
from p2pml_py.testing.origin import Rendition, SyntheticOrigin
from p2pml_py.tracker.server import TrackerServer
from tests.roles.helpers import play_to_end, store_filled


@pytest.fixture
def network() -> Iterator[MemoryNetwork]:
    network = MemoryNetwork()
    register_backend("memory", lambda config: MemoryTransport(network, config))
    try:
        yield network
    finally:
        register_backend("memory", None)


def test_the_default_backend_is_aiortc_and_an_unknown_one_names_the_field() -> None:
    assert isinstance(open_transport(RtcConfig()), RtcFactory)
    with pytest.raises(ValueError, match=r"rtc\.backend: unknown transport backend 'quic'"):
        open_transport(RtcConfig(backend="quic"))


async def test_a_seeder_feeds_a_viewer_over_the_memory_backend(network: MemoryNetwork) -> None:
    rendition = (Rendition("360p", bandwidth=800_000, width=640, height=360),)
    async with (
        SyntheticOrigin(renditions=rendition, vod_segments=20, segment_size=64 * 1024) as origin,
        TrackerServer() as tracker,
    ):
        options = PeerOptions(trackers=(tracker.url,), rtc=RtcConfig(backend="memory"))
        async with Seeder(origin.url, options, source_config=origin.source_config()) as seeder:
            await store_filled(seeder.streams[0].store, 20)
            summary, _ = await play_to_end(
                origin.url, options, source_config=origin.source_config()
            )
    assert network.pairs, "the connection went through the memory backend"
    assert summary.p2p_bytes > 0 and summary.stalls == 0, dataclasses.asdict(summary)
    digests = next(iter(summary.segments.values()))
    assert len(digests) == 20
    for sid, digest in digests.items():  # byte-exact, whichever way each segment came
        assert hashlib.sha256(origin.expected_segment("360p", int(sid))).hexdigest() == digest
