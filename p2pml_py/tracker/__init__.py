"""WebTorrent tracker signalling: messages and announce state (sans-I/O), asyncio client, embedded
server."""

from p2pml_py.tracker.client import (
    PendingOffer,
    ReconnectPolicy,
    SwarmHandler,
    TrackerClient,
    TrackerStats,
)
from p2pml_py.tracker.registry import RegistryLimits, SwarmRegistry
from p2pml_py.tracker.server import TrackerServer, TrackerServerStats, run_tracker

__all__ = [
    "PendingOffer",
    "ReconnectPolicy",
    "RegistryLimits",
    "SwarmHandler",
    "SwarmRegistry",
    "TrackerClient",
    "TrackerServer",
    "TrackerServerStats",
    "TrackerStats",
    "run_tracker",
]
