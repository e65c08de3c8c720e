"""Shared pieces for the networked WebRTC tests: loopback configs and a recording receiver."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from p2pml_py.rtc import RtcConfig
from p2pml_py.rtc.aiortc_backend import DataChannelLink, loopback_pair

# Host candidates on 127.0.0.1 only and no ICE server: nothing can leave the host.
LOOPBACK = RtcConfig(ice_addresses=("127.0.0.1",), ice_timeout=5.0, open_timeout=5.0)


class Collector:
    """A receiver callback that keeps what it got and wakes waiters at a byte/message count."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.total = 0
        self._changed = asyncio.Event()

    def __call__(self, data: bytes) -> None:
        self.messages.append(data)
        self.total += len(data)
        self._changed.set()

    async def wait_for(self, *, messages: int = 0, total: int = 0, within: float = 5.0) -> None:
        async with asyncio.timeout(within):
            while len(self.messages) < messages or self.total < total:
                self._changed.clear()
                await self._changed.wait()


@asynccontextmanager
async def linked(
    config: RtcConfig = LOOPBACK,
) -> AsyncIterator[tuple[DataChannelLink, DataChannelLink]]:
    a, b = await loopback_pair(config)
    try:
        yield a, b
    finally:
        await a.aclose()
        await b.aclose()


async def send_all(a: DataChannelLink, b: DataChannelLink, payload: bytes) -> None:
    """Send ``payload`` a -> b in 65535-byte messages; check b received exactly it."""
    got = Collector()
    b.set_receiver(got)
    for start in range(0, len(payload), 65535):
        await a.send(payload[start : start + 65535])
    await got.wait_for(total=len(payload), within=60)
    assert hashlib.sha256(b"".join(got.messages)).digest() == hashlib.sha256(payload).digest()
