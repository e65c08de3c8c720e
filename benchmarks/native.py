"""The native reference: node-datachannel (libdatachannel, C++) doing the seeder's job.

:func:`native_reference` runs ``benchmarks/native_dc.mjs`` with the machine's ``node``: one
sender process streaming 2 MiB segments in 64 KiB messages to ``receivers`` node-datachannel
peers spread over ``--workers`` other processes, over 127.0.0.1 only, for ``--duration`` seconds,
keeping at most 1 MiB queued per channel (the Python sender's watermark). The module comes from
``interop/node_modules``: ``interop/package.json`` pins ``node-datachannel``, whose prebuilt
binary is installed as an optional dependency (``@node-datachannel/linux-x64-gnu``) by
``npm ci --ignore-scripts`` (``interop/setup.sh``), with no build step.

The result is a row in the shape of :func:`benchmarks.run.python_scenario`'s, so
:func:`benchmarks.run.format_table` can give every Python row its ratio to the native row with
the same receiver count. Differences in what is measured:

* aggregate MB/s counts the bytes the receivers got during the window (the Python rows count the
  bytes the seeder's sessions handed to their data channels; both keep at most 1 MiB queued per
  channel, so the two differ by at most that much per receiver);
* the longest gap is between any two messages at a receiver (the stream never pauses), the
  Python rows' only while a download waits for bytes.

When node or the module is missing, or the run fails, the row says so in its label and its
``error`` field instead of raising, so that the Python rows are still measured and printed.

:func:`node_receivers_scenario` is the other way round: the *Python* seeder (started as for the
Python rows) serving node-datachannel receivers (``benchmarks/node_receivers.mjs``, several per
worker process), which cost less CPU per MB than aiortc receivers, so that the row comes closer
to what the seeder itself can serve. Its measurements are the Python rows' own
(:func:`benchmarks.run.seeder_scenario`): the seeder's ``/stats`` over the fixed window.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import shutil
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks import common
from benchmarks.common import instruction_columns, memory_columns
from benchmarks.run import (
    MB,
    ROOT,
    ReceiverWorkers,
    _ms_summary,
    _read_json,
    _stop,
    seeder_scenario,
)

if TYPE_CHECKING:
    from benchmarks.run import Options, Variant

SCRIPT = Path(__file__).resolve().with_name("native_dc.mjs")
RECEIVERS_SCRIPT = SCRIPT.with_name("node_receivers.mjs")
INTEROP = ROOT / "interop"
MESSAGE_SIZE = 64 * 1024


class NativeUnavailable(RuntimeError):
    """node or node-datachannel is not there, or the native run failed."""


def _node() -> str:
    node = os.environ.get("P2PML_NODE") or shutil.which("node")
    if node is None:
        raise NativeUnavailable("node is not installed (interop/setup.sh installs nodejs)")
    manifest = INTEROP / "node_modules" / "node-datachannel" / "package.json"
    if not manifest.exists():
        raise NativeUnavailable(
            "node-datachannel is not installed in interop/node_modules "
            "(run interop/setup.sh: npm ci --ignore-scripts)"
        )
    return node


async def _drain(stream: asyncio.StreamReader, tail: collections.deque[str]) -> None:
    """Keeps reading node's stderr (so a full pipe never blocks it); the last lines are kept."""
    for _ in range(1_000_000):
        line = await stream.readline()
        if not line:
            return
        tail.append(line.decode(errors="replace").rstrip())


async def _end(process: asyncio.subprocess.Process) -> None:
    """Stops the sender and the workers it spawned: they share the process group we created."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            async with asyncio.timeout(5):
                await process.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
    # Workers that outlived their sender (they also leave by themselves when stdin closes).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


async def run_native(
    receivers: int, workers: int, duration: float, segment_size: int
) -> dict[str, Any]:
    """Runs native_dc.mjs once; returns its JSON result or raises :class:`NativeUnavailable`."""
    node = _node()
    process = await asyncio.create_subprocess_exec(
        node,
        str(SCRIPT),
        "sender",
        "--receivers",
        str(receivers),
        "--workers",
        str(workers),
        "--duration",
        str(duration),
        "--segment-size",
        str(segment_size),
        "--message-size",
        str(MESSAGE_SIZE),
        "--interop",
        str(INTEROP),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, **common.receiver_cpus_env()},
        **common.sender_affinity(),  # type: ignore[arg-type]
        start_new_session=True,  # its own process group, so _end() reaches the workers too
    )
    tail: collections.deque[str] = collections.deque(maxlen=10)
    assert process.stdout is not None and process.stderr is not None
    drain = asyncio.create_task(_drain(process.stderr, tail))
    counter: common.InstructionCounter | None = None
    instructions: dict[str, dict[str, int]] = {}
    try:
        async with asyncio.timeout(90 + duration + 3 * receivers):
            for _ in range(3):  # window start, window end, then the result
                result = await _read_json(process.stdout, 90 + duration, "node-datachannel sender")
                if result.get("type") != "window":
                    break
                if result.get("at") == "start":
                    counter = common.InstructionCounter(process.pid)
                    instructions["start"] = counter.read()
                elif counter is not None:
                    instructions["end"] = counter.read()
    except (RuntimeError, TimeoutError) as exc:
        raise NativeUnavailable(f"{exc!r}; stderr: {' | '.join(tail) or '-'}") from exc
    finally:
        if counter is not None:
            counter.close()
        await _end(process)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                await drain
        drain.cancel()
        await asyncio.gather(drain, return_exceptions=True)
    if "error" in result:
        raise NativeUnavailable(f"{result['error']}; stderr: {' | '.join(tail) or '-'}")
    return result | {"instructions": instructions}


def _row(raw: dict[str, Any], receivers: int, load: tuple[float, ...]) -> dict[str, Any]:
    window = float(raw["window_s"])
    mb = raw["received_bytes"] / MB
    cpu = float(raw["cpu_s"])
    sys_cpu = float(raw["sys_cpu_s"])
    receiver_cpu = float(raw["receivers_cpu_s"])
    connected = int(raw["connected"])
    return {
        "kind": "native",
        "label": (
            f"native: node-datachannel {raw['node_datachannel']} "
            f"(libdatachannel {raw['libdatachannel']}, node {raw['node']})"
        ),
        "variant": "native",
        "receivers": receivers,
        "connected": connected,
        "connect_errors": raw.get("errors", []),
        "load_before": [round(x, 2) for x in load],
        "window_s": round(window, 3),
        "aggregate_MBps": round(mb / window, 2) if window > 0 else 0.0,
        "seeder_cpu_s": round(cpu, 3),
        "seeder_sys_cpu_s": round(sys_cpu, 3),
        "seeder_sys_share": round(sys_cpu / cpu, 3) if cpu > 0 else None,
        "seeder_cpu_util": round(cpu / window, 3) if window > 0 else 0.0,
        "cpu_s_per_MB": round(cpu / mb, 4) if mb > 0 else None,
        **instruction_columns(
            raw.get("instructions", {}).get("start", {}),
            raw.get("instructions", {}).get("end", {}),
            mb,
        ),
        "one_core_MBps": round(mb / cpu, 1) if cpu > 0 else None,
        "receiver_cpu_s": round(receiver_cpu, 3),
        "receiver_cpu_s_per_MB": round(receiver_cpu / mb, 4) if mb > 0 else None,
        "offer_to_open_ms": _ms_summary(raw["open_ms"]),
        **memory_columns(
            raw["rss_base_kib"],
            raw["rss_idle_kib"],
            raw["rss_after_first_kib"],
            raw["peak_kib"],
            connected,
        ),
        "max_gap_s": round(raw["max_gap_ms"] / 1000, 3),
        "received_MB": round(mb, 2),
        "queued_MB": round(raw["queued_bytes"] / MB, 2),
        "download_failures": raw["failures"],
        "min_receiver_MB": round(min(raw["per_receiver_bytes"]) / MB, 2)
        if raw["per_receiver_bytes"]
        else None,
    }


async def native_reference(options: Options, receivers: int) -> dict[str, Any]:
    """One native row for ``receivers`` receivers; an ``error`` row if it cannot be measured."""
    load = os.getloadavg()
    try:
        raw = await run_native(receivers, options.workers, options.duration, options.segment_size)
        return _row(raw, receivers, load)
    except (NativeUnavailable, OSError, LookupError, TypeError, ValueError) as exc:
        error = " ".join(str(exc).split()).replace("|", "/")[:300] or repr(exc)
        return {
            "kind": "native",
            "label": f"native: node-datachannel UNAVAILABLE: {error}",
            "variant": "native",
            "receivers": receivers,
            "load_before": [round(x, 2) for x in load],
            "aggregate_MBps": None,
            "error": error,
        }


def node_workers(options: Options, variant: Variant) -> ReceiverWorkers:
    """node-datachannel receivers for the Python seeder (``benchmarks/node_receivers.mjs``).

    Each worker gets its receivers' work as one JSON line: the ``SegmentRequest`` messages to
    send in turn (encoded here by :mod:`p2pml_py.wire`, as for the Chromium receivers) and every
    segment's SHA-256.
    """
    from benchmarks.chromium import segment_digests, segment_requests

    node = _node()
    requests = [
        {"segment": segment, "hex": message.hex()}
        for segment, message in segment_requests(options.segments)
    ]
    digests = segment_digests(options.segments, options.segment_size)

    async def start(url: str, count: int, index: int) -> asyncio.subprocess.Process:
        process = await asyncio.create_subprocess_exec(
            node,
            str(RECEIVERS_SCRIPT),
            "--interop",
            str(INTEROP),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
            **common.receiver_affinity(),  # type: ignore[arg-type]
        )
        config = {
            "type": "config",
            "url": url,
            "count": count,
            "index": index,
            "size": options.segment_size,
            "requests": requests,
            "digests": digests,
        }
        assert process.stdin is not None
        process.stdin.write((json.dumps(config) + "\n").encode())
        await process.stdin.drain()
        return process

    def go(duration: float) -> bytes:
        return (json.dumps({"type": "go", "duration": duration}) + "\n").encode()

    async def stop(process: asyncio.subprocess.Process) -> None:
        # Closing stdin lets the worker close its peers and join libdatachannel's threads.
        if process.stdin is not None and not process.stdin.is_closing():
            process.stdin.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await process.wait()
        await _stop(process)

    return ReceiverWorkers(
        "node-receivers",
        f"python {variant.name} -> node-datachannel receivers",
        start,
        go,
        stop,
        barrier=True,
    )


async def node_receivers_scenario(
    options: Options, variant: Variant, receivers: int
) -> dict[str, Any]:
    """The Python seeder serving ``receivers`` node-datachannel receivers; an ``error`` row if
    node or the module is missing."""
    try:
        workers = node_workers(options, variant)
    except NativeUnavailable as exc:
        return {
            "kind": "node-receivers",
            "label": f"python {variant.name} -> node-datachannel receivers UNAVAILABLE: {exc}",
            "variant": variant.name,
            "receivers": receivers,
            "load_before": [round(x, 2) for x in os.getloadavg()],
            "aggregate_MBps": None,
            "error": str(exc),
        }
    return await seeder_scenario(options, variant, receivers, workers)
