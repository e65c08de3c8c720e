"""The headless super-peer: many streams from one TOML config, spread over worker processes,
with Prometheus metrics, a JSON status and an HTML status page (``p2pml-py superpeer``).

Modules: :mod:`.config` (S: TOML -> validated dataclasses, errors with line numbers),
:mod:`.ratelimit` (S: upload gate over a token bucket, per-client limiter), :mod:`.worker` (a worker process: seeders on one
asyncio loop), :mod:`.supervisor` (the parent: placement, restarts, reloads, aggregation),
:mod:`.metrics` / :mod:`.web` / :mod:`.page` (the HTTP port), :mod:`.cli`.
"""
