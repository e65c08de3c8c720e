"""``p2pml_py/web/pingback.js`` in node with a fake engine, <video>, fetch and sendBeacon: what it
counts from the core's and the video's events, when it sends, and that every report it makes is
one the collector takes (parsed and added in Python)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from p2pml_py.apps.collector.aggregate import ViewerStats
from p2pml_py.apps.collector.config import CollectorConfig
from p2pml_py.apps.collector.http import SCRIPT
from p2pml_py.apps.collector.report import parse_report

HARNESS = """
const captured = { fetches: [], beacons: [] };
const windowListeners = {}, documentListeners = {};
const on = (table) => (name, f) => { (table[name] ??= new Set()).add(f); };
const off = (table) => (name, f) => { table[name]?.delete(f); };
globalThis.location = { href: "https://site.example/watch/page.html" };
globalThis.addEventListener = on(windowListeners);
globalThis.removeEventListener = off(windowListeners);
globalThis.document = {
  visibilityState: "visible",
  addEventListener: on(documentListeners),
  removeEventListener: off(documentListeners),
};
Object.defineProperty(globalThis, "navigator", {
  configurable: true,
  value: { sendBeacon: (url, body) => { captured.beacons.push({ url, body }); return true; } },
});
globalThis.fetch = async (url, init) => {
  captured.fetches.push({ url, ...init });
  return { status: 204 };
};
class Target {
  constructor() { this.listeners = {}; }
  addEventListener(name, f) { on(this.listeners)(name, f); }
  removeEventListener(name, f) { off(this.listeners)(name, f); }
  emit(name, ...args) { for (const f of this.listeners[name] ?? []) f(...args); }
  count() { return Object.values(this.listeners).reduce((n, s) => n + s.size, 0); }
}
const engine = new Target();
const video = Object.assign(new Target(), { paused: true, readyState: 0, seeking: false });
const { attachPingback } = await import(process.argv[1]);
const handle = attachPingback({
  engine, video, url: "https://stats.example/pingback",
  manifestUrl: "/streams/news/master.m3u8?token=secret#t=5", intervalMs: 60000,
});
const pagehide = () => { for (const f of windowListeners.pagehide ?? []) f(); };
engine.emit("onChunkDownloaded", 1000, "http");
engine.emit("onChunkDownloaded", 3000, "p2p", "peerA");
engine.emit("onChunkUploaded", 500, "peerA");
engine.emit("onPeerConnect", { peerId: "peerA", streamType: "main" });
engine.emit("onPeerConnect", { peerId: "peerB", streamType: "main" });
engine.emit("onPeerClose", { peerId: "peerB", streamType: "main" });
video.emit("waiting");  // before the first "playing": start-up, not a stall
video.emit("play");
await new Promise((resolve) => setTimeout(resolve, 30));
video.emit("playing");
video.emit("waiting");  // a stall
video.seeking = true;
video.emit("waiting");  // a seek: not a stall
video.seeking = false;
const flushed = await handle.flush();
pagehide();  // nothing new since the flush: no beacon
engine.emit("onChunkDownloaded", 2000, "p2p", "peerA");
pagehide();  // the last report goes as a beacon
handle.detach();  // nothing new: no report; every listener removed
console.log(JSON.stringify({
  captured, flushed, snapshot: handle.snapshot(),
  listeners: engine.count() + video.count() + (windowListeners.pagehide?.size ?? 0)
    + (documentListeners.visibilitychange?.size ?? 0),
}));
"""


def run_module() -> dict[str, Any]:
    node = shutil.which("node")
    assert node is not None, "node is needed for this test"
    result = subprocess.run(
        [node, "--input-type=module", "-e", HARNESS, Path(SCRIPT).as_uri()],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out: dict[str, Any] = json.loads(result.stdout)
    return out


def test_the_module_counts_sends_and_the_collector_takes_it() -> None:
    out = run_module()
    [sent] = out["captured"]["fetches"]
    [beacon] = out["captured"]["beacons"]
    assert out["flushed"] == 204 and out["listeners"] == 0
    assert sent["url"] == beacon["url"] == "https://stats.example/pingback"
    assert sent["method"] == "POST" and sent["keepalive"] is True
    assert sent["credentials"] == "omit"
    assert sent["headers"] == {"Content-Type": "text/plain;charset=UTF-8"}
    first, last = parse_report(sent["body"].encode()), parse_report(beacon["body"].encode())
    # The manifest URL without its query (a token) and fragment, absolute.
    assert first.stream == "https://site.example/streams/news/master.m3u8"
    assert (first.seq, first.http, first.p2p, first.up, first.peers) == (1, 1000, 3000, 500, 1)
    assert first.stalls == 1 and first.startup is not None and 25 <= first.startup <= first.t
    assert len(first.viewer) == 32 and first.viewer == last.viewer
    assert (last.seq, last.p2p, last.stalls, last.startup) == (2, 5000, 1, first.startup)
    assert out["snapshot"]["p2p"] == 5000
    stats = ViewerStats(CollectorConfig())
    stats.add(first, "news", 0.0)
    stats.add(last, "news", 1.0)
    news = stats.stream("news")
    assert news is not None and (news.http, news.p2p, news.reports) == (1000, 5000, 2)
