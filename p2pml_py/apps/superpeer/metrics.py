"""Prometheus metrics of a :class:`~p2pml_py.apps.superpeer.supervisor.SuperPeer`, built at scrape time
from the workers' latest reports (a custom collector: no state of its own to keep in sync)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from p2pml_py.apps.superpeer.supervisor import SuperPeer

__all__ = ["CONTENT_TYPE", "SuperPeerCollector", "render_metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_P = "p2pml_superpeer_"

#: counter name -> (help, label names after "stream")
_COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "uploaded_bytes": ("Segment bytes served to peers", ("rendition", "version")),
    "origin_bytes": ("Segment bytes fetched from the origin", ()),
    "origin_errors": ("Failed origin requests by kind", ("kind",)),
    "peer_connects": ("Peer connections opened", ("rendition", "version")),
    "peer_connection_errors": (
        "Peer connections that failed to open",
        ("rendition", "version"),
    ),
    "peer_drops": ("Peer connections closed, by reason", ("rendition", "version", "reason")),
    "offers_refused": (
        "Peers' offers left unanswered: max_peers or limits.max_connections reached",
        ("rendition", "version"),
    ),
    "tracker_errors": ("Tracker connection failures and error replies", ("tracker", "kind")),
    "uploads_refused": ("Segment requests answered absent by the upload rate limit", ()),
}


class SuperPeerCollector(Collector):
    def __init__(self, superpeer: SuperPeer) -> None:
        self.superpeer = superpeer

    def collect(self) -> Iterator[Metric]:
        sp = self.superpeer
        counters = {
            name: CounterMetricFamily(_P + name, doc, labels=["stream", *labels])
            for name, (doc, labels) in _COUNTERS.items()
        }
        peers = GaugeMetricFamily(
            _P + "peers", "Connected peers", labels=["stream", "rendition", "version"]
        )
        held = GaugeMetricFamily(
            _P + "held_segments", "Segments held in memory", labels=["stream", "rendition"]
        )
        held_bytes = GaugeMetricFamily(
            _P + "held_bytes", "Bytes of segments held in memory", labels=["stream", "rendition"]
        )
        up = GaugeMetricFamily(
            _P + "stream_up", "1 when the stream is serving", labels=["stream", "worker"]
        )
        tracker_up = GaugeMetricFamily(
            _P + "tracker_connected",
            "1 while connected to the tracker",
            labels=["stream", "tracker"],
        )
        rate_limit = GaugeMetricFamily(
            _P + "upload_rate_limit_bytes", "Upload cap in bytes/s", labels=["stream"]
        )
        for state in sp.iter_streams():
            name = state.spec.name
            for (metric, labels), value in sorted(state.counters().items()):
                counters[metric].add_metric([name, *labels], value)
            snap = state.snapshot
            up.add_metric([name, str(state.worker)], 1.0 if state.state == "serving" else 0.0)
            if state.rate is not None:
                rate_limit.add_metric([name], state.rate)
            if snap is None:
                continue
            for rendition in snap.renditions:
                label = rendition.label
                held.add_metric([name, label], rendition.held_segments)
                held_bytes.add_metric([name, label], rendition.held_bytes)
                for swarm in rendition.swarms:
                    peers.add_metric([name, label, swarm.version], swarm.peers)
            for url, tracker in snap.trackers.items():
                tracker_up.add_metric([name, url], 1.0 if tracker.connected else 0.0)
        yield from counters.values()
        yield from (peers, held, held_bytes, up, tracker_up, rate_limit)

        workers_up = GaugeMetricFamily(
            _P + "worker_up", "1 while the worker runs", labels=["worker"]
        )
        restarts = CounterMetricFamily(
            _P + "worker_restarts", "Worker processes restarted after exiting", labels=["worker"]
        )
        for worker in sp.workers:
            workers_up.add_metric([str(worker.index)], 1.0 if worker.alive else 0.0)
            restarts.add_metric([str(worker.index)], worker.restarts)
        yield workers_up
        yield restarts
        yield GaugeMetricFamily(_P + "streams", "Configured streams", value=len(sp.streams))
        yield CounterMetricFamily(_P + "reloads", "Configuration reloads", value=sp.reloads)


def render_metrics(superpeer: SuperPeer) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SuperPeerCollector(superpeer))
    return generate_latest(registry)
