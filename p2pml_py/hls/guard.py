"""The one gate every segment body passes before it is stored, played or uploaded.

Browsers hash nothing by default and hls.js plays a short segment as a silent skip
(:mod:`p2pml_py.hls.validate` explains why), so a peer that stores whatever the origin sent hands
one bad response to every viewer that trusts it, for as long as it runs. :class:`SegmentGuard`
checks a body -- from the origin or from a peer -- with

* :func:`~p2pml_py.hls.validate.validate_segment` at the configured
  :class:`~p2pml_py.hls.validate.ValidationPolicy` (``container`` by default: MPEG-TS packets and
  PTS span, fMP4 boxes and sample durations, byte-range lengths; ``length``: the lengths only);
  an fMP4 segment is timed with its ``EXT-X-MAP`` init segment, loaded through ``load_init`` and
  parsed once (a few kept, least recently used dropped);
* and, when the site publishes one, its integrity list (PeerTube's ``segments-sha256.json``,
  :mod:`p2pml_py.hls.hashes`; keys are file names, or paths relative to the master playlist's
  directory): the body's SHA-256 must be the listed one. A live list lags behind
  its playlist, so a segment it does not list yet makes the guard reload it, at most once per
  ``reload_interval`` (time passed in through ``clock``).

A rejection is counted by reason (:attr:`GuardStats.rejected`, a metric label) and logged once
with the segment's id and URL; what the caller does with it (refetch with back-off, fall back to
HTTP) is the caller's policy. Nothing here writes to the store.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from p2pml_py.base.errors import SegmentInvalidError, SourceError
from p2pml_py.hls.hashes import IntegrityList, segment_path
from p2pml_py.hls.playlist import InitSegment, Segment
from p2pml_py.hls.validate import (
    DEFAULT_POLICY,
    InitInfo,
    Level,
    Reason,
    ValidationPolicy,
    Verdict,
    validate_segment,
)

__all__ = ["GuardStats", "SegmentGuard"]

logger = logging.getLogger(__name__)

#: Least seconds between two reloads of a live integrity list. PeerTube rewrites its live list
#: once per segment (``live-segment-sha-store.ts``), whose duration is seconds.
DEFAULT_RELOAD_INTERVAL = 2.0


@dataclass(slots=True)
class GuardStats:
    checked: int = 0
    #: Rejected bodies by :class:`~p2pml_py.hls.validate.Reason` value.
    rejected: Counter[str] = field(default_factory=Counter)
    list_loads: int = 0
    list_errors: int = 0

    @property
    def total_rejected(self) -> int:
        return sum(self.rejected.values())


class SegmentGuard:
    """Checks segment bodies (module doc). ``load_list`` (optional) returns the site's current
    integrity list; ``load_init`` an ``EXT-X-MAP`` init segment, parsed and checked
    (:meth:`p2pml_py.hls.source.HlsSource.init_info`, which caches it)."""

    def __init__(
        self,
        policy: ValidationPolicy = DEFAULT_POLICY,
        *,
        load_init: Callable[[InitSegment], Awaitable[InitInfo | None]],
        load_list: Callable[[], Awaitable[IntegrityList]] | None = None,
        reload_interval: float = DEFAULT_RELOAD_INTERVAL,
        base_url: Callable[[], str | None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self.stats = GuardStats()
        self.integrity: IntegrityList | None = None
        self._load_init = load_init
        self._load_list = load_list
        self._reload_interval = reload_interval
        self._base_url = base_url
        self._clock = clock
        self._list_loaded_at: float | None = None

    @property
    def uses_list(self) -> bool:
        return self._load_list is not None

    async def load_list(self) -> IntegrityList | None:
        """(Re)load the integrity list; an error propagates (:class:`SourceError`)."""
        if self._load_list is None:
            return None
        self._list_loaded_at = self._clock()
        try:
            self.integrity = await self._load_list()
        except SourceError:
            self.stats.list_errors += 1
            raise
        self.stats.list_loads += 1
        return self.integrity

    async def check(self, segment: Segment, data: bytes, *, source: str = "origin") -> Verdict:
        """The verdict on ``data`` as the body of ``segment``; a rejection is counted and logged
        (``source`` says where the body came from: ``origin`` or ``peer``)."""
        verdict = await self._judge(segment, data)
        self.stats.checked += 1
        if verdict.reason is not None:
            self.stats.rejected[verdict.reason.value] += 1
            logger.warning(
                "segment %s from %s rejected (%s): %s [%s]",
                segment.external_id,
                source,
                verdict.reason.value,
                verdict.detail,
                _where(segment),
                extra={
                    "event": "segment_rejected",
                    "segment": segment.external_id,
                    "reason": verdict.reason.value,
                    "source": source,
                },
            )
        return verdict

    async def require(self, segment: Segment, data: bytes, *, source: str = "origin") -> None:
        """:meth:`check`, raising :class:`SegmentInvalidError` on a rejection."""
        verdict = await self.check(segment, data, source=source)
        if verdict.reason is not None:
            raise SegmentInvalidError(  # the caller names the segment
                f"rejected: {verdict.reason.value}: {verdict.detail}", verdict.reason.value
            )

    async def _judge(self, segment: Segment, data: bytes) -> Verdict:
        init: InitInfo | None = None
        if self.policy.level is Level.CONTAINER and segment.init_segment is not None:
            try:
                init = await self._init_info(segment.init_segment)
            except SourceError as exc:  # broken, or not loadable now: nothing to time it by
                return Verdict(Reason.INIT_MISSING, str(exc))
        verdict = validate_segment(segment, data, init=init, policy=self.policy)
        if verdict.reason is not None or self._load_list is None:
            return verdict
        listed = self._listed(segment, data)
        if listed.reason is Reason.UNLISTED and self._may_reload():
            try:
                await self.load_list()
            except SourceError as exc:
                logger.info("integrity list reload failed: %s", exc)
            listed = self._listed(segment, data)
        return listed if listed.reason is not None else verdict

    def _listed(self, segment: Segment, data: bytes) -> Verdict:
        if self.integrity is None:
            return Verdict(Reason.UNLISTED, "the integrity list is not loaded")
        base = self._base_url()
        path = None if base is None else segment_path(segment.url, base)
        return self.integrity.check(segment.url, segment.byte_range, data, path=path)

    def _may_reload(self) -> bool:
        last = self._list_loaded_at
        return last is None or self._clock() - last >= self._reload_interval

    async def _init_info(self, init_segment: InitSegment) -> InitInfo | None:
        """The parsed init segment (``None``: not fMP4). A :class:`SourceError` loading it --
        unreachable, or broken (:class:`SegmentInvalidError`) -- propagates."""
        return await self._load_init(init_segment)


def _where(segment: Segment) -> str:
    """The segment's URL, with its byte range when it has one (PeerTube's VOD segments all share
    one file: the range is what names the segment)."""
    if segment.byte_range is None:
        return segment.url
    start, end = segment.byte_range
    return f"{segment.url} bytes {start}-{end}"
