"""``p2pml-py demo --open``: the demo as a web page a newcomer can watch.

The page (``static/``, shipped as package data) plays a real HLS stream with hls.js and
p2p-media-loader 2.3 -- the pinned npm packages of ``interop/`` -- and draws the bytes it loaded
over HTTP and over P2P as they grow, next to the peers it is connected to. Every tab joins one
swarm with our Python seeder, so several tabs share among themselves and with it.

* :mod:`~p2pml_py.apps.demo.server` -- the HTTP side: stream, page, packages, config and status.
* :mod:`~p2pml_py.apps.demo.run` -- origin + tracker + seeder (+ Python viewers) until stopped.
"""

from __future__ import annotations

from p2pml_py.apps.demo.run import DemoPageOptions, load_demo_stream, open_in_browser, run_demo_page
from p2pml_py.apps.demo.server import DemoServer, node_modules_dir

__all__ = [
    "DemoPageOptions",
    "DemoServer",
    "load_demo_stream",
    "node_modules_dir",
    "open_in_browser",
    "run_demo_page",
]
