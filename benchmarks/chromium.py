"""Chromium in the benchmark: browser receivers for the Python seeder, and a browser reference.

* :func:`chromium_receivers` -- the Python seeder serving N data channels opened by one headless
  Chromium page (Debian's ``/usr/bin/chromium`` with the harness's flags,
  :data:`p2pml_py.harness.browser.CHROMIUM_FLAGS`). The page answers the seeder's offers through
  the seeder's HTTP API and speaks the wire protocol the simplest way a browser peer can: it
  sends a ``SegmentRequest`` (bytes encoded by :mod:`p2pml_py.wire` here in Python), counts the
  data messages (anything that is not a ``cstr..cend`` command chunk), checks each segment's
  SHA-256, and asks for the next one.
* :func:`browser_reference` -- Chromium -> Chromium: two pages (two renderer processes), one
  data channel, 65535-byte messages with our sender's watermarks; an extra row beside the native
  reference, for what the browsers in a P2PML swarm manage on this machine. It costs one browser
  start and one ``--duration`` window.

The native reference the ratios are computed against is node-datachannel, not Chromium: see
:mod:`benchmarks.native` (its prebuilt binary comes with ``npm ci --ignore-scripts`` in
``interop/``, as the ``@node-datachannel/<platform>`` optional dependency; nothing is built).

The browser runs in other processes than the seeder, so the seeder's CPU numbers stay its own.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from benchmarks.common import instruction_columns, segment_digest
from p2pml_py.wire import SegmentRequest, encode

if TYPE_CHECKING:
    from benchmarks.run import Options, Variant

MB = 1_000_000
EXECUTABLE = os.environ.get("P2PML_CHROMIUM", "/usr/bin/chromium")

_RECEIVER_JS = r"""
async ({count, requests, digests, size}) => {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const hex = (buf) => Array.from(new Uint8Array(buf)).map((b) => b.toString(16).padStart(2, '0')).join('');
  const isCommand = (u8) => {
    if (u8.length < 8) return false;
    const head = String.fromCharCode(...u8.subarray(0, 4));
    const tail = String.fromCharCode(...u8.subarray(u8.length - 4));
    return (head === 'cstr' || head === 'dstr') && (tail === 'cend' || tail === 'dend');
  };
  const gathered = (pc) => new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') return resolve();
    pc.addEventListener('icegatheringstatechange', () => { if (pc.iceGatheringState === 'complete') resolve(); });
    setTimeout(resolve, 5000);
  });
  const peers = [];
  const openMs = [];
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    const offer = await (await fetch('/offer', {method: 'POST'})).json();
    const pc = new RTCPeerConnection({iceServers: []});
    const peer = {pc, channel: null, bytes: 0, segments: 0, corrupt: 0, maxGap: 0, last: 0, waiting: false,
                  got: 0, parts: [], done: null, index: i};
    const opened = new Promise((resolve) => {
      pc.ondatachannel = (event) => {
        const ch = event.channel;
        ch.binaryType = 'arraybuffer';
        peer.channel = ch;
        ch.onmessage = (msg) => {
          const u8 = new Uint8Array(msg.data);
          const now = performance.now();
          if (peer.waiting) peer.maxGap = Math.max(peer.maxGap, now - peer.last);
          peer.last = now;
          if (isCommand(u8)) return;
          peer.got += u8.length;
          peer.parts.push(u8);
          if (peer.got >= size && peer.done) { const d = peer.done; peer.done = null; d(); }
        };
        if (ch.readyState === 'open') resolve(); else ch.onopen = () => resolve();
      };
    });
    await pc.setRemoteDescription({type: 'offer', sdp: offer.sdp});
    await pc.setLocalDescription(await pc.createAnswer());
    await gathered(pc);
    await fetch('/answer', {method: 'POST', body: JSON.stringify({id: offer.id, sdp: pc.localDescription.sdp})});
    await opened;
    openMs.push(performance.now() - t0);
    peers.push(peer);
  }
  window.__bench = {peers, requests, digests, size, stop: false};
  return {openMs};
}
"""

_RUN_JS = r"""
async ({duration}) => {
  const {peers, requests, digests, size} = window.__bench;
  const hex = (buf) => Array.from(new Uint8Array(buf)).map((b) => b.toString(16).padStart(2, '0')).join('');
  const deadline = performance.now() + duration * 1000;
  async function loop(peer) {
    for (let n = peer.index; performance.now() < deadline && n < peer.index + 100000; n++) {
      const r = requests[n % requests.length];
      peer.got = 0; peer.parts = [];
      const finished = new Promise((resolve) => { peer.done = resolve; });
      peer.waiting = true; peer.last = performance.now();
      peer.channel.send(new Uint8Array(r.bytes));
      const left = deadline - performance.now();
      const ok = await Promise.race([finished.then(() => true), new Promise((res) => setTimeout(() => res(false), Math.max(0, left)))]);
      peer.waiting = false;
      if (!ok) break;
      const whole = new Uint8Array(size);
      let pos = 0;
      for (const p of peer.parts) { whole.set(p.subarray(0, Math.min(p.length, size - pos)), pos); pos += p.length; }
      const digest = hex(await crypto.subtle.digest('SHA-256', whole));
      if (peer.got !== size || digest !== digests[r.segment]) peer.corrupt++;
      peer.bytes += size; peer.segments++;
    }
  }
  await Promise.all(peers.map(loop));
  return {
    bytes: peers.reduce((a, p) => a + p.bytes, 0),
    segments: peers.reduce((a, p) => a + p.segments, 0),
    corrupt: peers.reduce((a, p) => a + p.corrupt, 0),
    maxGapMs: Math.max(0, ...peers.map((p) => p.maxGap)),
    minBytes: Math.min(...peers.map((p) => p.bytes)),
  };
}
"""

_GATHERED_JS = r"""
() => {
  window.gathered = (pc) => new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') return resolve();
    pc.addEventListener('icegatheringstatechange', () => { if (pc.iceGatheringState === 'complete') resolve(); });
    setTimeout(resolve, 5000);
  });
}
"""

# Sender page: offers, then sends 65535-byte messages for `duration` seconds, keeping between
# 512 KiB and 1 MiB queued (our sender's watermarks).
_NATIVE_OFFER_JS = r"""
async () => {
  const pc = new RTCPeerConnection({iceServers: []});
  const ch = pc.createDataChannel('0123456789abcdef0123456789abcdef01234567');
  window.__pc = pc; window.__ch = ch;
  window.__opened = new Promise((resolve) => { ch.onopen = resolve; });
  window.__t0 = performance.now();
  await pc.setLocalDescription(await pc.createOffer());
  await window.gathered(pc);
  return pc.localDescription.sdp;
}
"""

_NATIVE_SEND_JS = r"""
async ({answer, duration}) => {
  const pc = window.__pc, ch = window.__ch;
  await pc.setRemoteDescription({type: 'answer', sdp: answer});
  await window.__opened;
  const openMs = performance.now() - window.__t0;
  const chunk = new Uint8Array(65535);
  ch.bufferedAmountLowThreshold = 512 * 1024;
  const deadline = performance.now() + duration * 1000;
  let sent = 0;
  for (let i = 0; i < 10000000 && performance.now() < deadline; i++) {
    if (ch.bufferedAmount > 1024 * 1024) {
      await new Promise((resolve) => { ch.onbufferedamountlow = resolve; setTimeout(resolve, 100); });
      continue;
    }
    ch.send(chunk);
    sent += chunk.length;
  }
  return {openMs, sent};
}
"""

# Receiver page: answers, counts bytes and the longest gap between messages.
_NATIVE_ANSWER_JS = r"""
async ({offer}) => {
  const pc = new RTCPeerConnection({iceServers: []});
  window.__stats = {received: 0, first: 0, last: 0, maxGap: 0};
  pc.ondatachannel = (event) => {
    const ch = event.channel;
    ch.binaryType = 'arraybuffer';
    ch.onmessage = (m) => {
      const s = window.__stats, now = performance.now();
      if (s.last) s.maxGap = Math.max(s.maxGap, now - s.last); else s.first = now;
      s.last = now;
      s.received += m.data.byteLength;
    };
  };
  window.__pc = pc;
  await pc.setRemoteDescription({type: 'offer', sdp: offer});
  await pc.setLocalDescription(await pc.createAnswer());
  await window.gathered(pc);
  return pc.localDescription.sdp;
}
"""


def segment_requests(segments: int, count: int = 64) -> list[tuple[int, bytes]]:
    """(segment, encoded ``SegmentRequest`` message) pairs that receivers outside Python send in
    turn (request ids 0..count-1); shared with :mod:`benchmarks.native`'s node receivers."""
    return [(n % segments, encode(SegmentRequest(n % segments, n % 1000))[0]) for n in range(count)]


def segment_digests(segments: int, size: int) -> dict[str, str]:
    """SHA-256 (hex) of each segment the seeder serves, keyed by its id as a JSON string."""
    return {str(i): segment_digest(i, size) for i in range(segments)}


async def _page(request: web.Request) -> web.Response:
    return web.Response(text="<!doctype html><title>bench</title>", content_type="text/html")


async def _launch() -> Any:
    from playwright.async_api import async_playwright

    from p2pml_py.harness.browser import CHROMIUM_FLAGS

    if not os.access(EXECUTABLE, os.X_OK):
        raise RuntimeError(f"no Chromium at {EXECUTABLE} (interop/setup.sh installs it)")
    playwright = await async_playwright().start()
    try:
        browser = await playwright.chromium.launch(
            executable_path=EXECUTABLE, headless=True, args=list(CHROMIUM_FLAGS)
        )
    except BaseException:
        await playwright.stop()
        raise
    return playwright, browser


async def browser_reference(options: Options) -> dict[str, Any]:
    """Chromium -> Chromium, two pages, one data channel: libwebrtc's stack on this machine."""
    load = os.getloadavg()
    # An http://127.0.0.1 origin: an about:blank page gathers no ICE candidates at all.
    app = web.Application()
    app.router.add_get("/", _page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    playwright, browser = None, None
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        playwright, browser = await _launch()
        # Two pages, so sender and receiver run in separate renderer processes as between
        # two viewers' browsers; SDP goes from page to page through Python.
        sender = await browser.new_page()
        receiver = await browser.new_page()
        for page in (sender, receiver):
            await page.goto(f"http://127.0.0.1:{port}/")
            await page.evaluate(_GATHERED_JS)
        async with asyncio.timeout(options.duration + 30):
            offer = await sender.evaluate(_NATIVE_OFFER_JS)
            answer = await receiver.evaluate(_NATIVE_ANSWER_JS, {"offer": offer})
            sent = await sender.evaluate(
                _NATIVE_SEND_JS, {"answer": answer, "duration": options.duration}
            )
            stats = await receiver.evaluate("window.__stats")
    finally:
        if browser is not None:
            await browser.close()
        if playwright is not None:
            await playwright.stop()
        await runner.cleanup()
    elapsed = (stats["last"] - stats["first"]) / 1000
    return {
        "kind": "browser",
        "label": "reference: Chromium -> Chromium (2 pages, 1 channel)",
        "receivers": 1,
        "load_before": [round(x, 2) for x in load],
        "aggregate_MBps": round(stats["received"] / MB / elapsed, 2) if elapsed > 0 else 0.0,
        "offer_to_open_ms": {"median": round(sent["openMs"], 1), "max": round(sent["openMs"], 1)},
        "max_gap_s": round(stats["maxGap"] / 1000, 3),
        "received_MB": round(stats["received"] / MB, 2),
    }


async def chromium_receivers(options: Options, variant: Variant) -> dict[str, Any]:
    """The Python seeder serving ``options.chromium_receivers`` channels of one Chromium page."""
    from benchmarks.run import _get, _ms_summary, _post, seeder_process

    count = options.chromium_receivers
    load = os.getloadavg()
    requests = [
        {"segment": segment, "bytes": list(message)}
        for segment, message in segment_requests(options.segments)
    ]
    digests = segment_digests(options.segments, options.segment_size)
    async with seeder_process(options, variant) as (url, hello):
        playwright, browser = await _launch()
        try:
            page = await browser.new_page()
            await page.goto(f"{url}/")
            async with aiohttp.ClientSession() as http:
                base = await _get(http, f"{url}/stats")
                async with asyncio.timeout(30 + 3 * count):
                    ready = await page.evaluate(
                        _RECEIVER_JS,
                        {
                            "count": count,
                            "requests": requests,
                            "digests": digests,
                            "size": options.segment_size,
                        },
                    )
                idle = await _get(http, f"{url}/stats")
                await _post(http, f"{url}/reset_peak")
                # Warm-up first, as in run.seeder_scenario: the seeder counts queued bytes.
                total = options.warmup + options.duration + 0.5
                run = asyncio.create_task(page.evaluate(_RUN_JS, {"duration": total}))
                try:
                    await asyncio.sleep(options.warmup)
                    start = await _get(http, f"{url}/stats")
                    await asyncio.sleep(options.duration)
                    end = await _get(http, f"{url}/stats")
                    async with asyncio.timeout(30):
                        done = await run
                finally:
                    run.cancel()
                    await asyncio.gather(run, return_exceptions=True)
        finally:
            await browser.close()
            await playwright.stop()
    window = end["time"] - start["time"]
    sent = end["bytes_uploaded"] - start["bytes_uploaded"]
    cpu = end["cpu_s"] - start["cpu_s"]
    mb = sent / MB
    connected = len(ready["openMs"])
    return {
        "kind": "chromium",
        "label": f"python {variant.name} -> Chromium page",
        "variant": variant.name,
        "loop": hello.get("loop"),
        "receivers": count,
        "connected": connected,
        "load_before": [round(x, 2) for x in load],
        "window_s": round(window, 3),
        "aggregate_MBps": round(mb / window, 2) if window > 0 else 0.0,
        "seeder_cpu_s": round(cpu, 3),
        "seeder_cpu_util": round(cpu / window, 3) if window > 0 else 0.0,
        "cpu_s_per_MB": round(cpu / mb, 4) if mb > 0 else None,
        **instruction_columns(start.get("instructions", {}), end.get("instructions", {}), mb),
        "one_core_MBps": round(mb / cpu, 1) if cpu > 0 else None,
        "offer_to_open_ms": _ms_summary(idle["open_ms"]),
        "receiver_open_ms": _ms_summary(ready["openMs"]),
        "idle_kib_per_conn": round((idle["rss_kib"] - base["rss_kib"]) / connected, 1),
        "idle_kib_per_extra_conn": round(
            (idle["rss_kib"] - idle["rss_after_first_kib"]) / (connected - 1), 1
        )
        if connected > 1
        else None,
        "peak_kib_per_conn": round((end["peak_kib"] - base["rss_kib"]) / connected, 1),
        "max_gap_s": round(done["maxGapMs"] / 1000, 3),
        "received_MB": round(done["bytes"] / MB, 2),
        "segments_received": done["segments"],
        "corrupt_segments": done["corrupt"],
        "download_failures": {},
        "seeder_closed_sessions": end["closed_reasons"],
        "min_receiver_MB": round(done["minBytes"] / MB, 2),
    }
