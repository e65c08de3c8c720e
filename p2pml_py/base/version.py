"""The package version, and the ``User-Agent`` every HTTP request of ours carries.

One honest name and version, like other clients of the servers we talk to (origins, PeerTube's
API, trackers' HTTP endpoints), so their operators can see and tell apart what we send.
"""

from __future__ import annotations

__all__ = ["USER_AGENT", "__version__"]

__version__ = "0.1.0"
USER_AGENT = f"p2pml-py/{__version__}"
