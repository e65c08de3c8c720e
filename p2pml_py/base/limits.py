"""Connection limits and their defaults, in one place that imports nothing heavy (the CLI and the
super-peer config read them to build their help and defaults).

What happens at each limit is described in :mod:`p2pml_py.engine.swarm`: new peers' offers go
unanswered and we make no offers; a connected peer is never dropped to make room.
"""

from __future__ import annotations

from typing import Final

#: A viewer's peers per swarm. p2p-media-loader keeps no fixed cap (every peer the tracker
#: introduces is connected); 20 is plenty for a player and keeps ``watch`` browser-like.
DEFAULT_MAX_PEERS: Final = 20
#: A seeder's and a super-peer's peers per swarm (one swarm per rendition and protocol version).
SERVER_MAX_PEERS: Final = 1000
#: Peer connections of one seeder process or super-peer worker, all swarms together: about what
#: one core serves in real time (``scripts/bench capacity``; README, "Capacity").
SERVER_MAX_CONNECTIONS: Final = 1000
#: Connections a process sets up at once (SDP, ICE, DTLS, SCTP until the channel opens); later
#: offers wait their turn, in order. See :mod:`p2pml_py.engine.swarm`, "Connection storms".
DEFAULT_MAX_HANDSHAKES: Final = 16
