"""Viewer stats ("pingback", issue 21): every viewer's P2P share, stalls and start-up time.

Pages load ``p2pml_py/web/pingback.js``, which counts the p2p-media-loader core's byte and peer
events and the <video>'s stalls and posts them every few seconds; this package takes them:

* :mod:`~p2pml_py.apps.collector.report` -- one report, parsed and checked alone;
* :mod:`~p2pml_py.apps.collector.aggregate` -- per-stream sums and the bounded live viewers;
* :mod:`~p2pml_py.apps.collector.service` -- a request's answer (rate limit, origin, size), sans-I/O;
* :mod:`~p2pml_py.apps.collector.http` -- the aiohttp routes and the standalone server;
* :mod:`~p2pml_py.apps.collector.metrics` -- Prometheus metrics;
* :mod:`~p2pml_py.apps.collector.cli` -- ``p2pml-py collector``.

The super-peer mounts the routes on its status server with a ``[collector]`` table.
"""
