"""The per-context choice of ICE host addresses (aioice.ice.get_host_addresses wrapper)."""

from __future__ import annotations

import asyncio

import aioice.ice

from p2pml_py.rtc.aiortc_backend.addresses import gathering_addresses


def test_selected_addresses_are_filtered_by_family() -> None:
    with gathering_addresses(("127.0.0.1", "::1", "127.0.0.2")):
        assert aioice.ice.get_host_addresses(True, False) == ["127.0.0.1", "127.0.0.2"]
        assert aioice.ice.get_host_addresses(False, True) == ["::1"]
        assert aioice.ice.get_host_addresses(True, True) == ["127.0.0.1", "::1", "127.0.0.2"]
    # outside the block aioice's own discovery answers again, and it never lists loopback
    outside = aioice.ice.get_host_addresses(True, True)
    assert "127.0.0.1" not in outside and "::1" not in outside


def test_empty_selection_leaves_aioice_in_charge() -> None:
    with gathering_addresses(()):
        assert "127.0.0.1" not in aioice.ice.get_host_addresses(True, True)


async def test_selection_follows_tasks_not_the_process() -> None:
    inside_started = asyncio.Event()
    release = asyncio.Event()
    seen: dict[str, list[str]] = {}

    async def inside() -> None:
        with gathering_addresses(("127.0.0.9",)):
            # a task started here (as aiortc's asyncio.gather does) inherits the choice
            seen["child"] = await asyncio.ensure_future(_addresses_later(None))
            inside_started.set()
            await release.wait()
            seen["inside"] = aioice.ice.get_host_addresses(True, True)

    async def outside() -> None:
        await inside_started.wait()
        seen["outside"] = aioice.ice.get_host_addresses(True, True)
        release.set()

    await asyncio.wait_for(asyncio.gather(inside(), outside()), 5)
    assert seen["child"] == ["127.0.0.9"]
    assert seen["inside"] == ["127.0.0.9"]
    assert "127.0.0.9" not in seen["outside"]


async def _addresses_later(_: None) -> list[str]:
    await asyncio.sleep(0)
    return list(aioice.ice.get_host_addresses(True, True))
