// The demo page: hls.js + p2p-media-loader 2.3 playing the demo's stream, a chart of the bytes
// this tab loaded over HTTP and over P2P as they grow, and the peers it is connected to.
//
// What to play comes from /demo/config.json; the Python peers' counters from /demo/status.json
// (polled, to name them in the peer list). Bytes and peers come from the core's events
// (onChunkDownloaded with its download source, onChunkUploaded, onPeerConnect, onPeerClose),
// the honest per-tab count. The page's model is window.p2pmlDemo: tests read it.
import Hls from "hls.js";
import { HlsJsP2PEngine } from "p2p-media-loader-hlsjs";

const SAMPLE_MS = 1000;
// Bounds, so a tab left open for a day holds as much as one open for a minute.
const MAX_SAMPLES = 240; // then every other sample is dropped: older history gets coarser
const MAX_CLOSED_PEERS = 20; // closed peers kept in the list (connected ones always are)
const MAX_ERRORS = 10;
const STATUS_MS = 2000;

const state = {
  ready: false, // hls.js parsed the manifest
  error: null, // the page could not start
  playing: false,
  ended: false,
  position: 0,
  level: null,
  httpBytes: 0,
  p2pBytes: 0,
  uploadedBytes: 0,
  peers: {}, // remote peer id -> {downloaded, uploaded, connected, connectedAt, closedAt}
  samples: [], // [seconds since the page loaded, httpBytes, p2pBytes]
  python: { seeder: [], viewers: [] }, // peer ids of the demo's Python peers
  status: null, // the last /demo/status.json
  serverGone: false,
  errors: [],
  chart: { httpBytes: 0, p2pBytes: 0, samples: 0 }, // what the chart shows now
};
window.p2pmlDemo = state;

const $ = (id) => document.getElementById(id);
const mb = (bytes) => `${(bytes / 1e6).toFixed(bytes >= 1e8 ? 0 : 2)} MB`;
const now = () => performance.now() / 1000;

function noteError(text) {
  state.errors.push(text);
  if (state.errors.length > MAX_ERRORS) state.errors.splice(0, state.errors.length - MAX_ERRORS);
  $("errors").textContent = state.errors.join("\n");
}

// -- peers ---------------------------------------------------------------------------------

function peerEntry(peerId) {
  let entry = state.peers[peerId];
  if (!entry) {
    entry = { downloaded: 0, uploaded: 0, connected: false, connectedAt: null, closedAt: null };
    state.peers[peerId] = entry;
  }
  return entry;
}

function pruneClosedPeers() {
  const closed = Object.entries(state.peers)
    .filter(([, p]) => !p.connected)
    .sort((a, b) => (b[1].closedAt ?? 0) - (a[1].closedAt ?? 0));
  for (const [peerId] of closed.slice(MAX_CLOSED_PEERS)) delete state.peers[peerId];
}

function who(peerId) {
  if (state.python.seeder.includes(peerId)) return ["Python seeder (p2pml-py)", "seeder"];
  const viewer = state.python.viewers.findIndex((ids) => ids.includes(peerId));
  if (viewer >= 0) return [`Python viewer ${viewer + 1} (p2pml-py)`, ""];
  return ["another tab or browser", ""];
}

function renderPeers() {
  const rows = Object.entries(state.peers).sort(
    (a, b) => Number(b[1].connected) - Number(a[1].connected) || b[1].downloaded - a[1].downloaded,
  );
  const connected = rows.filter(([, p]) => p.connected).length;
  $("peer-count").textContent = `(${connected} connected)`;
  const body = document.createElement("tbody");
  if (rows.length === 0) {
    body.innerHTML = '<tr class="muted"><td colspan="5">no peer yet</td></tr>';
  }
  for (const [peerId, p] of rows) {
    const [label, kind] = who(peerId);
    const tr = document.createElement("tr");
    tr.className = p.connected ? "" : "closed";
    tr.dataset.peerId = peerId;
    const cells = [
      [peerId, "mono"],
      [label, kind],
      [p.connected ? "connected" : "closed", ""],
      [mb(p.downloaded), "num"],
      [mb(p.uploaded), "num"],
    ];
    for (const [text, cls] of cells) {
      const td = document.createElement("td");
      td.textContent = text;
      if (cls) td.className = cls;
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
  $("peers").replaceChild(body, $("peers").tBodies[0]);
}

// -- chart ---------------------------------------------------------------------------------

const SVG = "http://www.w3.org/2000/svg";
const W = 640;
const H = 240;
const PAD = { left: 64, right: 14, top: 12, bottom: 26 };
const chart = {};

function svgElement(name, attrs, parent) {
  const el = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, value);
  parent.appendChild(el);
  return el;
}

function buildChart() {
  const svg = $("chart");
  chart.svg = svg;
  chart.grid = [0, 1, 2, 3, 4].map((i) => {
    const y = PAD.top + ((H - PAD.top - PAD.bottom) * i) / 4;
    svgElement("line", { class: "grid", x1: PAD.left, x2: W - PAD.right, y1: y, y2: y }, svg);
    return svgElement("text", { class: "tick", x: PAD.left - 6, y: y + 4, "text-anchor": "end" }, svg);
  });
  chart.http = svgElement("path", { id: "http-area", d: "" }, svg);
  chart.p2p = svgElement("path", { id: "p2p-area", d: "" }, svg);
  const base = H - PAD.bottom;
  svgElement("line", { class: "axis", x1: PAD.left, x2: W - PAD.right, y1: base, y2: base }, svg);
  svgElement("line", { class: "axis", x1: PAD.left, x2: PAD.left, y1: PAD.top, y2: base }, svg);
  chart.xTicks = [0, 1, 2].map((i) =>
    svgElement("text", { class: "tick", y: H - 8, "text-anchor": ["start", "middle", "end"][i] }, svg),
  );
}

// The top of the y axis: four grid steps of 1, 2 or 5 times a power of ten (round labels).
function niceMax(value) {
  const raw = value / 4;
  if (raw <= 0) return 1e6;
  const unit = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5]) if (m * unit >= raw) return 4 * m * unit;
  return 40 * unit;
}

function renderChart() {
  const samples = state.samples;
  const last = samples[samples.length - 1] ?? [0, 0, 0];
  const tMax = Math.max(30, Math.ceil(last[0] / 10) * 10);
  const yMax = niceMax(last[1] + last[2]);
  const x = (t) => PAD.left + ((W - PAD.left - PAD.right) * t) / tMax;
  const y = (bytes) => H - PAD.bottom - ((H - PAD.top - PAD.bottom) * bytes) / yMax;
  const pts = (values) => values.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`);
  if (samples.length > 0) {
    const httpTop = samples.map(([t, http]) => [t, http]);
    const total = samples.map(([t, http, p2p]) => [t, http + p2p]);
    const base = [[last[0], 0], [samples[0][0], 0]];
    chart.http.setAttribute("d", `M${pts(httpTop).join("L")}L${pts(base).join("L")}Z`);
    chart.p2p.setAttribute(
      "d",
      `M${pts(total).join("L")}L${pts([...httpTop].reverse()).join("L")}Z`,
    );
  }
  chart.grid.forEach((label, i) => {
    label.textContent = mb((yMax * (4 - i)) / 4);
  });
  chart.xTicks.forEach((label, i) => {
    const t = (tMax * i) / 2;
    label.setAttribute("x", x(t));
    label.textContent = `${t.toFixed(0)} s`;
  });
  state.chart = { httpBytes: last[1], p2pBytes: last[2], samples: samples.length };
  chart.svg.dataset.httpBytes = String(last[1]);
  chart.svg.dataset.p2pBytes = String(last[2]);
  const total = state.httpBytes + state.p2pBytes;
  $("http-total").textContent = mb(state.httpBytes);
  $("p2p-total").textContent = mb(state.p2pBytes);
  $("p2p-share").textContent = `${total ? Math.round((100 * state.p2pBytes) / total) : 0}%`;
  $("up-total").textContent = mb(state.uploadedBytes);
}

function sample(start) {
  state.samples.push([now() - start, state.httpBytes, state.p2pBytes]);
  if (state.samples.length > MAX_SAMPLES) {
    const lastIndex = state.samples.length - 1;
    state.samples = state.samples.filter((_, i) => i % 2 === 0 || i === lastIndex);
  }
}

// -- the Python peers ------------------------------------------------------------------------

async function pollStatus() {
  try {
    const response = await fetch("/demo/status.json", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const status = await response.json();
    state.status = status;
    state.serverGone = false;
    state.python = {
      seeder: status.seeder?.peerIds ?? [],
      viewers: (status.viewers ?? []).map((v) => v.peerIds ?? []),
    };
    const s = status.seeder ?? {};
    const lines = [
      `Python seeder: ${s.peers ?? 0} peers connected, uploaded ${mb(s.uploadedBytes ?? 0)}, ` +
        `holds ${s.segmentsHeld ?? 0} segments, fetched ${mb(s.httpBytes ?? 0)} from the origin.`,
    ];
    (status.viewers ?? []).forEach((v, i) => {
      lines.push(
        `Python viewer ${i + 1}: ${v.peers} peers, HTTP ${mb(v.httpBytes)}, ` +
          `P2P ${mb(v.p2pBytes)}, uploaded ${mb(v.uploadedBytes)}.`,
      );
    });
    lines.push(
      `The origin served ${mb(status.origin?.segmentBytes ?? 0)} of segments in ` +
        `${Math.round(status.uptime ?? 0)} s, to everyone.`,
    );
    $("python").textContent = lines.join("\n");
    $("python").className = "";
    $("python").style.whiteSpace = "pre-wrap";
  } catch (e) {
    state.serverGone = true;
    $("python").textContent = `the demo server does not answer (${e.message}): was it stopped?`;
    $("python").className = "errors";
  }
}

// -- the player ------------------------------------------------------------------------------

async function main() {
  const start = now();
  buildChart();
  renderChart();
  let config;
  try {
    const response = await fetch("/demo/config.json", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    config = await response.json();
  } catch (e) {
    state.error = `no config from the demo server: ${e.message}`;
    $("state").textContent = state.error;
    return;
  }
  if (!Hls.isSupported()) {
    state.error = "this browser has no MediaSource: hls.js cannot play here";
    $("state").textContent = state.error;
    return;
  }
  const core = {
    ...config.core,
    announceTrackers: config.trackers,
    rtcConfig: { iceServers: [] }, // the demo stays on this machine: no STUN server
    swarmId: config.swarmId,
  };
  const HlsWithP2P = HlsJsP2PEngine.injectMixin(Hls);
  const hls = new HlsWithP2P({ ...config.hls, startLevel: config.level, p2p: { core } });
  const video = $("video");
  window.p2pmlPlayer = { hls, video };
  const engine = hls.p2pEngine;

  engine.addEventListener("onChunkDownloaded", (bytes, source, peerId) => {
    if (source === "p2p") {
      state.p2pBytes += bytes;
      if (peerId) peerEntry(peerId).downloaded += bytes;
    } else {
      state.httpBytes += bytes;
    }
  });
  engine.addEventListener("onChunkUploaded", (bytes, peerId) => {
    state.uploadedBytes += bytes;
    if (peerId) peerEntry(peerId).uploaded += bytes;
  });
  engine.addEventListener("onPeerConnect", ({ peerId }) => {
    const entry = peerEntry(peerId);
    entry.connected = true;
    entry.connectedAt = now() - start;
    entry.closedAt = null;
    renderPeers();
  });
  engine.addEventListener("onPeerClose", ({ peerId }) => {
    const entry = peerEntry(peerId);
    entry.connected = false;
    entry.closedAt = now() - start;
    pruneClosedPeers();
    renderPeers();
  });
  engine.addEventListener("onTrackerError", ({ error }) => noteError(`tracker: ${error}`));

  hls.on(Hls.Events.ERROR, (_event, data) => {
    if (data.fatal) noteError(`hls.js: ${data.type}: ${data.details}`);
  });
  hls.on(Hls.Events.MANIFEST_PARSED, () => {
    state.ready = true;
    hls.loadLevel = config.level; // pin the level: tabs on other levels are in other swarms
    video.play().catch((e) => noteError(`play(): ${e}`));
  });
  hls.on(Hls.Events.LEVEL_SWITCHED, (_event, data) => {
    state.level = data.level;
  });
  video.addEventListener("playing", () => (state.playing = true));
  video.addEventListener("waiting", () => (state.playing = false));
  video.addEventListener("ended", () => {
    state.ended = true;
    state.playing = false;
  });

  const tick = () => {
    state.position = video.currentTime;
    sample(start);
    renderChart();
    renderPeers();
    const mode = config.live ? "live" : "VOD";
    const what = state.ended ? "ended (reload to play again)" : state.playing ? "playing" : "loading";
    $("state").textContent =
      `${mode}, ${what} at ${state.position.toFixed(1)} s, hls.js level ${state.level ?? "-"}, ` +
      `tracker ${config.trackers.join(", ")}`;
  };
  setInterval(tick, SAMPLE_MS);
  pollStatus();
  setInterval(pollStatus, STATUS_MS);

  hls.attachMedia(video);
  hls.loadSource(config.manifest);
}

main().catch((e) => {
  state.error = String(e);
  noteError(`page: ${e}`);
});
