"""Prometheus metrics of the viewers' reports, built at scrape time from the aggregates (a custom
collector, like the super-peer's: no state of its own). The super-peer's ``/metrics`` and the
standalone collector's both serve them."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from p2pml_py.apps.collector.aggregate import STARTUP_BUCKETS
from p2pml_py.apps.collector.service import PingbackService

__all__ = ["CONTENT_TYPE", "ViewerMetrics", "render_viewer_metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_P = "p2pml_viewer_"


class ViewerMetrics(Collector):
    def __init__(
        self, service: PingbackService, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.service = service
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        service = self.service
        stats = service.stats
        stats.expire(self._clock())
        labels = ["stream"]
        viewers = GaugeMetricFamily(
            _P + "viewers", "Viewers that reported within viewer_ttl seconds", labels=labels
        )
        peers = GaugeMetricFamily(
            _P + "peers", "Peer connections the live viewers have open, together", labels=labels
        )
        share = GaugeMetricFamily(
            _P + "p2p_share",
            "Share of the viewers' downloaded bytes that came over P2P (0..1), since counted",
            labels=labels,
        )
        counters = {
            "started": CounterMetricFamily(
                _P + "started", "Viewers whose first report arrived", labels=labels
            ),
            "http": CounterMetricFamily(
                _P + "http_bytes", "Bytes the viewers downloaded over HTTP", labels=labels
            ),
            "p2p": CounterMetricFamily(
                _P + "p2p_bytes", "Bytes the viewers downloaded from peers", labels=labels
            ),
            "up": CounterMetricFamily(
                _P + "uploaded_bytes", "Bytes the viewers uploaded to peers", labels=labels
            ),
            "stalls": CounterMetricFamily(
                _P + "stalls",
                "Playback stalls (<video> waiting after playback first started, seeks excluded)",
                labels=labels,
            ),
            "reports": CounterMetricFamily(_P + "reports", "Reports taken", labels=labels),
        }
        startup = HistogramMetricFamily(
            _P + "startup_seconds",
            "Start-up time: from attach (or the first play, if later) to the first playing",
            labels=labels,
        )
        for stream in stats.streams():
            key = [stream.key]
            viewers.add_metric(key, stream.viewers)
            peers.add_metric(key, stream.peers)
            if stream.p2p_share is not None:
                share.add_metric(key, stream.p2p_share)
            for name, family in counters.items():
                family.add_metric(key, getattr(stream, name))
            cumulative = 0
            buckets: list[tuple[str, float]] = []
            for bound, count in zip(
                (*STARTUP_BUCKETS, float("inf")), stream.startup_buckets, strict=True
            ):
                cumulative += count
                buckets.append(("+Inf" if bound == float("inf") else str(bound), cumulative))
            startup.add_metric(key, buckets, stream.startup_sum)
        yield from (viewers, peers, share, *counters.values(), startup)
        rejected = CounterMetricFamily(
            _P + "reports_rejected", "Reports refused, by reason", labels=["reason"]
        )
        for reason, count in service.rejected.items():
            rejected.add_metric([reason.value], count)
        yield rejected
        yield GaugeMetricFamily(
            _P + "table_viewers",
            "Live viewers held (bounded by max_viewers)",
            value=stats.viewer_count,
        )
        yield GaugeMetricFamily(
            _P + "table_streams", "Streams held (bounded by max_streams)", value=stats.stream_count
        )
        yield CounterMetricFamily(
            _P + "evicted_viewers",
            "Viewers dropped from the full table before viewer_ttl",
            value=stats.viewers_evicted,
        )


def render_viewer_metrics(service: PingbackService) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ViewerMetrics(service))
    return generate_latest(registry)
