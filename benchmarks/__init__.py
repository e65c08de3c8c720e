"""Seeder throughput benchmarks (issue 6): one Python seeder process, receivers in other processes.

Run with ``scripts/bench`` (inside a loopback-only network namespace) or ``python -m benchmarks``.
Modules: :mod:`.common` (segment bytes, process counters), :mod:`.seeder` and :mod:`.receiver`
(the processes), :mod:`.chromium` (browser receivers and the Chromium<->Chromium reference),
:mod:`.run` (orchestration, JSON and markdown output).
"""
