"""Prometheus metrics of a :class:`~p2pml_py.apps.superpeer.supervisor.SuperPeer`, built at scrape time
from the workers' latest reports (a custom collector: no state of its own to keep in sync)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from p2pml_py.apps.collector.metrics import ViewerMetrics
from p2pml_py.apps.collector.service import PingbackService
from p2pml_py.apps.superpeer.supervisor import SuperPeer

__all__ = ["CONTENT_TYPE", "SuperPeerCollector", "render_metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_P = "p2pml_superpeer_"

#: counter name -> (help, label names after "stream")
_COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "uploaded_bytes": ("Segment bytes served to peers", ("rendition", "version")),
    "origin_bytes": ("Segment bytes fetched from the origin", ()),
    "origin_errors": ("Failed origin requests by kind", ("kind",)),
    "segments_rejected": (
        "Segment bodies that failed their checks (truncated, garbled, wrong digest), by reason; "
        "never stored or served",
        ("reason",),
    ),
    "segments_replaced": (
        "Held VOD segments replaced because the origin's copy changed (revalidation)",
        (),
    ),
    "origin_outages": ("Origin playlist outages that ended", ()),
    "origin_down_seconds": ("Seconds the origin playlists were down, the current outage too", ()),
    "tracker_outages": ("Tracker outages that ended", ("tracker",)),
    "tracker_down_seconds": (
        "Seconds the tracker was unreachable, the current outage too",
        ("tracker",),
    ),
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
        origin_down = GaugeMetricFamily(
            _P + "origin_down",
            "1 while an origin playlist of the stream is down",
            labels=["stream"],
        )
        rate_limit = GaugeMetricFamily(
            _P + "upload_rate_limit_bytes", "Upload cap in bytes/s", labels=["stream"]
        )
        # Demand-driven fetching (p2pml_py.roles.demand), per rendition. Straight from the
        # worker's report: a worker restart resets them, which Prometheus counters allow.
        following = GaugeMetricFamily(
            _P + "rendition_following",
            "1 while the rendition is fetched from the origin, 0 while idle (no other peer)",
            labels=["stream", "rendition", "fetch"],
        )
        rendition_origin = CounterMetricFamily(
            _P + "rendition_origin_bytes",
            "Segment bytes fetched from the origin, per rendition",
            labels=["stream", "rendition"],
        )
        saved = GaugeMetricFamily(
            _P + "origin_saved_bytes",
            "Estimated segment bytes fetch-everything would have fetched and demand did not "
            "(segments published while idle x their size)",
            labels=["stream", "rendition"],
        )
        starts = CounterMetricFamily(
            _P + "rendition_starts",
            "Times a rendition started following (demand mode)",
            labels=["stream", "rendition"],
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
                is_following = 1.0 if rendition.state == "following" else 0.0
                following.add_metric([name, label, rendition.fetch], is_following)
                rendition_origin.add_metric([name, label], rendition.origin_bytes)
                saved.add_metric([name, label], rendition.saved_bytes)
                starts.add_metric([name, label], rendition.starts)
                for swarm in rendition.swarms:
                    peers.add_metric([name, label, swarm.version], swarm.peers)
            origin_down.add_metric([name], 1.0 if snap.origin_outage.down else 0.0)
            for url, tracker in snap.trackers.items():
                tracker_up.add_metric([name, url], 1.0 if tracker.connected else 0.0)
        yield from counters.values()
        yield from (peers, held, held_bytes, up, tracker_up, rate_limit, origin_down)
        yield from (following, rendition_origin, saved, starts)

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
        yield from _fleet_metrics(sp)


def _fleet_metrics(sp: SuperPeer) -> Iterator[Metric]:
    """Only with ``[fleet]``: the membership as this member sees it and its share."""
    fleet = sp.fleet
    if fleet is None:
        return
    view = fleet.view
    yield GaugeMetricFamily(
        _P + "fleet_members",
        "Fleet members as this member sees them, itself included",
        value=len(view.members),
    )
    yield GaugeMetricFamily(
        _P + "fleet_self_listed",
        "1 when the membership source lists this member (Kubernetes: it is ready)",
        value=1.0 if view.reported is not None and fleet.self_id in view.reported else 0.0,
    )
    yield GaugeMetricFamily(
        _P + "fleet_streams_assigned",
        "Streams the fleet assigns to this member",
        value=len(sp.streams),
    )
    yield GaugeMetricFamily(
        _P + "fleet_streams_configured",
        "Streams of the whole fleet's configuration",
        value=len(sp.config.streams),
    )
    yield GaugeMetricFamily(
        _P + "fleet_refresh_failing",
        "1 while membership refreshes fail (the last good membership is kept)",
        value=1.0 if view.failing_since is not None else 0.0,
    )
    yield CounterMetricFamily(
        _P + "fleet_membership_changes", "Membership changes seen", value=view.changes
    )
    yield CounterMetricFamily(
        _P + "fleet_rebalances",
        "Membership changes applied to the streams served here",
        value=sp.rebalances,
    )


def render_metrics(superpeer: SuperPeer, viewers: PingbackService | None = None) -> bytes:
    """The super-peer's metrics, and with ``[collector]`` the viewers' (``p2pml_viewer_*``,
    per stream: live viewers, their HTTP and P2P bytes, P2P share, stalls, start-up time;
    reports rejected by reason: :class:`~p2pml_py.apps.collector.metrics.ViewerMetrics`)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SuperPeerCollector(superpeer))
    if viewers is not None:
        registry.register(ViewerMetrics(viewers))
    return generate_latest(registry)
