// p2pml-py viewer stats ("pingback"): what this viewer downloaded over HTTP and over P2P, what it
// uploaded, its peers, stalls and start-up time, posted every few seconds to a collector
// (`p2pml-py collector`, or a super-peer with a [collector] table). A plain ES module with no
// dependencies; works with the hls.js and Shaka integrations of p2p-media-loader 2.2 and 2.3.
//
//   import { attachPingback } from "https://stats.example.org/pingback.js";
//   attachPingback({ engine: hls.p2pEngine, video, url: "https://stats.example.org/pingback" });
//
// Options:
//   engine       the p2p-media-loader engine (HlsJsP2PEngine: hls.p2pEngine, or ShakaP2PEngine);
//                its addEventListener reaches the core's events (core/src/types.ts CoreEventMap):
//                onChunkDownloaded(bytes, "http" | "p2p", peerId), onChunkUploaded(bytes, peerId),
//                onPeerConnect({peerId, streamType}), onPeerClose({peerId, streamType})
//   video        the <video> element: stalls are its "waiting" events after it first played
//                (not while seeking); start-up time is its first "playing" minus the attach
//                time, or minus the first "play" when that came later (autoplay blocked until a
//                click does not count as start-up)
//   url          the collector's report URL (".../pingback")
//   streamId     optional; default: the manifest URL (manifestUrl, else hls.url or Shaka's
//                getAssetUri() of `player`) without query and fragment, which often hold tokens
//   manifestUrl, player   optional, for the default streamId
//   intervalMs   between reports (default 5000, 1000 to 60000); a report is only sent when
//                something changed, or every 30 s to say the viewer is still there
//
// Returns {viewerId, flush(), detach(), snapshot()}: flush() sends a report now (a promise of
// the HTTP status, 0 when it could not be sent), detach() stops listening after a last report.
// The viewer id is random per page and attach, not the peer id; nothing about the person is sent.
// Reports are text/plain (a CORS-safelisted type: no preflight, and what sendBeacon sends), with
// credentials omitted; on "pagehide" (and when the page is hidden) the last one goes with
// navigator.sendBeacon, which outlives the page.

const HEARTBEAT_MS = 30000;
const MAX_STREAM_ID = 1024;

function randomId() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function streamIdOf(options) {
  if (options.streamId) return String(options.streamId).slice(0, MAX_STREAM_ID);
  let manifest = options.manifestUrl;
  const player = options.player;
  if (!manifest && player) {
    if (typeof player.getAssetUri === "function") manifest = player.getAssetUri();
    else if (typeof player.url === "string") manifest = player.url;
  }
  if (!manifest) return null;
  try {
    const url = new URL(manifest, location.href);
    url.search = "";
    url.hash = "";
    return url.href.slice(0, MAX_STREAM_ID);
  } catch (e) {
    return null;
  }
}

export function attachPingback(options) {
  const { engine, video } = options || {};
  if (!engine || typeof engine.addEventListener !== "function") {
    throw new TypeError("attachPingback: `engine` must be a p2p-media-loader engine");
  }
  if (!options.url) throw new TypeError("attachPingback: `url` (the collector) is required");
  const collector = new URL(options.url, location.href).href;
  const intervalMs = Math.min(60000, Math.max(1000, Number(options.intervalMs) || 5000));
  const attachedAt = performance.now();
  const viewerId = randomId();
  const s = {
    seq: 0,
    http: 0,
    p2p: 0,
    up: 0,
    stalls: 0,
    startup: null,
    playAt: null,
    started: false,
    peers: new Set(),
  };
  let lastSent = null; // the counters of the last report sent, as JSON without seq and t
  let lastSentAt = -Infinity;
  let streamId = null;

  const core = {
    onChunkDownloaded: (bytes, source) => {
      if (!(bytes > 0)) return;
      if (source === "p2p") s.p2p += bytes;
      else s.http += bytes;
    },
    onChunkUploaded: (bytes) => {
      if (bytes > 0) s.up += bytes;
    },
    onPeerConnect: (peer) => {
      if (peer) s.peers.add(`${peer.streamType}:${peer.peerId}`);
    },
    onPeerClose: (peer) => {
      if (peer) s.peers.delete(`${peer.streamType}:${peer.peerId}`);
    },
  };
  for (const [name, listener] of Object.entries(core)) engine.addEventListener(name, listener);

  const media = {
    play: () => {
      if (s.playAt === null) s.playAt = performance.now();
    },
    playing: () => {
      if (!s.started) {
        const from = Math.max(attachedAt, s.playAt ?? attachedAt);
        s.startup = Math.max(0, Math.round(performance.now() - from));
        s.started = true;
      }
    },
    waiting: () => {
      if (s.started && !video.seeking) s.stalls += 1;
    },
  };
  if (video) {
    // Attached to a video that already plays: its start-up is unknown, its stalls are not.
    if (!video.paused && video.readyState >= 3) s.started = true;
    for (const [name, listener] of Object.entries(media)) video.addEventListener(name, listener);
  }

  function counters() {
    return {
      http: s.http,
      p2p: s.p2p,
      up: s.up,
      peers: Math.min(s.peers.size, 1000),
      stalls: s.stalls,
      startup: s.startup,
    };
  }

  // The next report's body, or null when there is nothing new to say (or no stream id yet).
  function nextReport(force) {
    streamId = streamId || streamIdOf(options);
    if (!streamId) return null;
    const now = performance.now();
    const current = counters();
    const key = JSON.stringify(current);
    if (!force && key === lastSent && now - lastSentAt < HEARTBEAT_MS) return null;
    lastSent = key;
    lastSentAt = now;
    s.seq += 1;
    return JSON.stringify({
      v: 1,
      viewer: viewerId,
      stream: streamId,
      seq: s.seq,
      t: Math.round(now - attachedAt),
      ...current,
    });
  }

  function post(body) {
    try {
      return fetch(collector, {
        method: "POST",
        body,
        keepalive: true,
        credentials: "omit",
        headers: { "Content-Type": "text/plain;charset=UTF-8" },
      }).then((response) => response.status, () => 0);
    } catch (e) {
      return Promise.resolve(0);
    }
  }

  function beacon() {
    const body = nextReport(false);
    if (body === null) return;
    try {
      if (navigator.sendBeacon && navigator.sendBeacon(collector, body)) return;
    } catch (e) {
      // fall through to fetch(keepalive), which also outlives the page
    }
    post(body);
  }

  const timer = setInterval(() => {
    const body = nextReport(false);
    if (body !== null) post(body);
  }, intervalMs);
  const onHidden = () => {
    if (document.visibilityState === "hidden") beacon();
  };
  addEventListener("pagehide", beacon);
  document.addEventListener("visibilitychange", onHidden);

  let detached = false;
  return {
    viewerId,
    flush() {
      const body = nextReport(true);
      return body === null ? Promise.resolve(0) : post(body);
    },
    detach() {
      if (detached) return;
      detached = true;
      clearInterval(timer);
      removeEventListener("pagehide", beacon);
      document.removeEventListener("visibilitychange", onHidden);
      if (typeof engine.removeEventListener === "function") {
        for (const [name, listener] of Object.entries(core)) {
          engine.removeEventListener(name, listener);
        }
      }
      if (video) {
        for (const [name, listener] of Object.entries(media)) {
          video.removeEventListener(name, listener);
        }
      }
      beacon();
    },
    snapshot() {
      return { viewer: viewerId, stream: streamId ?? streamIdOf(options), seq: s.seq, ...counters() };
    },
  };
}
