"""SegmentGuard (p2pml_py.hls.guard) with in-memory loaders and a hand-moved clock."""

from __future__ import annotations

import asyncio

import pytest

from p2pml_py.base.errors import OriginHttpError, SegmentInvalidError
from p2pml_py.hls.guard import SegmentGuard
from p2pml_py.hls.hashes import IntegrityList, IntegrityListBuilder
from p2pml_py.hls.playlist import InitSegment, Segment
from p2pml_py.hls.validate import InitInfo, Level, ValidationPolicy, validate_init

BASE = "http://origin.test/stream/"
LENGTH = ValidationPolicy(level=Level.LENGTH)


def segment(name: str, sid: int = 0, init: InitSegment | None = None) -> Segment:
    url = BASE + name
    return Segment(url, None, 2.0, 0.0, 2.0, sid, sid, url, init)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Lists:
    """A site whose live list grows: each load returns the current one."""

    def __init__(self) -> None:
        self.builder = IntegrityListBuilder()
        self.loads = 0

    def publish(self, name: str, data: bytes) -> None:
        self.builder.add(BASE + name, None, data)

    async def load(self) -> IntegrityList:
        self.loads += 1
        return self.builder.build()


async def no_init(init: InitSegment) -> InitInfo | None:
    raise AssertionError("no init segment expected")


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_a_lagging_live_list_is_reloaded_at_most_once_per_interval() -> None:
    async def scenario() -> None:
        clock, lists = Clock(), Lists()
        guard = SegmentGuard(
            LENGTH, load_init=no_init, load_list=lists.load, reload_interval=2.0, clock=clock
        )
        lists.publish("s1.ts", b"one")
        await guard.load_list()
        assert (await guard.check(segment("s1.ts"), b"one")).ok
        # s2 is not listed yet: one reload, still missing -> rejected as unlisted
        clock.now = 5.0
        verdict = await guard.check(segment("s2.ts", 2), b"two")
        assert verdict.reason is not None and verdict.reason.value == "unlisted"
        assert lists.loads == 2
        # published now, but within 2 s of the last reload: no reload, still rejected
        lists.publish("s2.ts", b"two")
        clock.now = 6.0
        assert not (await guard.check(segment("s2.ts", 2), b"two")).ok
        assert lists.loads == 2
        clock.now = 7.0
        assert (await guard.check(segment("s2.ts", 2), b"two")).ok
        assert lists.loads == 3
        # a wrong body never triggers a reload: it is listed, with another digest
        clock.now = 100.0
        verdict = await guard.check(segment("s2.ts", 2), b"TWO")
        assert verdict.reason is not None and verdict.reason.value == "digest"
        assert lists.loads == 3
        assert guard.stats.rejected == {"unlisted": 2, "digest": 1}
        assert guard.stats.checked == 5 and guard.stats.list_loads == 3

    run(scenario())


def test_require_raises_a_retryable_error_without_the_segment_twice() -> None:
    async def scenario() -> None:
        guard = SegmentGuard(load_init=no_init)
        with pytest.raises(SegmentInvalidError) as info:
            await guard.require(segment("s0.ts"), b"\x47" + bytes(100))
        assert info.value.reason == "ts-length"
        assert str(info.value).startswith("rejected: ts-length: ")

    run(scenario())


def test_a_broken_or_unreachable_init_segment_rejects_its_fmp4_segments() -> None:
    async def scenario() -> None:
        calls: list[str] = []

        async def broken(init: InitSegment) -> InitInfo | None:
            # What HlsSource.init_info raises: unreachable, or a body that is no init segment.
            calls.append(init.url)
            if init.url.endswith("gone.mp4"):
                raise OriginHttpError(f"{init.url}: HTTP 503", 503)
            verdict = validate_init(b"\x00\x00\x00\x08ftyp", init)  # a box header, no moov
            assert verdict.reason is not None
            raise SegmentInvalidError(f"init segment {init.url}: {verdict.detail}", "init")

        guard = SegmentGuard(load_init=broken)
        body = b"\x00\x00\x00\x08moof"
        for init in ("bad.mp4", "gone.mp4"):
            verdict = await guard.check(segment("s.m4s", init=InitSegment(BASE + init)), body)
            assert verdict.reason is not None and verdict.reason.value == "init-missing"
            assert init in verdict.detail
        # a broken init is not remembered as good: the next check asks again
        await guard.check(segment("s.m4s", init=InitSegment(BASE + "bad.mp4")), body)
        assert calls.count(BASE + "bad.mp4") == 2
        # length-only checks never look at the init segment
        lengths = SegmentGuard(LENGTH, load_init=broken)
        assert (await lengths.check(segment("s.m4s", init=InitSegment(BASE + "x.mp4")), body)).ok

    run(scenario())
