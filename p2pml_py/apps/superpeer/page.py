"""The HTML status page (one self-contained document: no CDN, no external assets)."""

from __future__ import annotations

STATUS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>p2pml-py super-peer</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body { font: 14px system-ui, sans-serif; margin: 1.5em; color: #222; background: #fafafa; }
 h1 { font-size: 1.3em; margin: 0 0 .3em; }
 .muted { color: #777; }
 .charts { display: flex; flex-wrap: wrap; gap: 1em; margin: 1em 0; }
 figure { margin: 0; background: #fff; border: 1px solid #ddd; padding: .5em; }
 figcaption { font-weight: 600; margin-bottom: .3em; }
 canvas { display: block; }
 table { border-collapse: collapse; background: #fff; }
 th, td { border: 1px solid #ddd; padding: .3em .6em; text-align: right; }
 th:first-child, td:first-child { text-align: left; }
 .idle { color: #777; }
 .serving { color: #17803d; } .retrying, .starting { color: #b35c00; } .dead { color: #b00020; }
 .legend span { margin-right: 1em; white-space: nowrap; }
 .legend i { display: inline-block; width: .8em; height: .8em; margin-right: .3em; }
</style></head>
<body>
<h1>p2pml-py super-peer</h1>
<div id="summary" class="muted">loading&hellip;</div>
<div class="charts">
 <figure><figcaption>Upload to peers vs origin fetch (Mbit/s)</figcaption>
  <canvas id="rates" width="640" height="260"></canvas><div id="rates-legend" class="legend"></div></figure>
 <figure><figcaption>Peers per stream</figcaption>
  <canvas id="peers" width="640" height="260"></canvas><div id="peers-legend" class="legend"></div></figure>
</div>
<table id="streams"><thead><tr><th>stream</th><th>state</th><th>worker</th><th>peers</th>
<th>up Mbit/s</th><th>origin Mbit/s</th><th>uploaded MB</th><th>origin MB</th><th>held</th>
<th>refused</th></tr></thead><tbody></tbody></table>
<h2 style="font-size:1.1em">Viewers</h2>
<div id="viewers-summary" class="muted">viewer stats are off (no [collector] table)</div>
<div class="charts" id="viewer-charts" hidden>
 <figure><figcaption>Viewers' P2P share (% of what they downloaded)</figcaption>
  <canvas id="vshare" width="640" height="220"></canvas><div id="vshare-legend" class="legend"></div></figure>
 <figure><figcaption>Live viewers per stream</figcaption>
  <canvas id="vcount" width="640" height="220"></canvas><div id="vcount-legend" class="legend"></div></figure>
</div>
<table id="viewers" hidden><thead><tr><th>stream</th><th>viewers</th><th>P2P share</th>
<th>HTTP MB</th><th>P2P MB</th><th>uploaded MB</th><th>peers</th><th>stalls</th>
<th>start-up s (mean)</th><th>reports</th></tr></thead><tbody></tbody></table>
<h2 style="font-size:1.1em">Renditions</h2>
<table id="renditions"><thead><tr><th>stream</th><th>rendition</th><th>fetch</th><th>state</th>
<th>peers</th><th>tracker peers</th><th>origin MB</th><th>saved MB (est.)</th><th>starts</th>
</tr></thead><tbody></tbody></table>
<h2 style="font-size:1.1em">Workers</h2>
<table id="workers"><thead><tr><th>worker</th><th>pid</th><th>state</th><th>restarts</th>
<th>streams</th></tr></thead><tbody></tbody></table>
<script>
"use strict";
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b",
                "#e377c2", "#7f7f7f", "#bcbd22"];
function esc(s) { return String(s).replace(/[&<>"]/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"})[c]); }
function mbit(bytesPerS) { return (bytesPerS * 8 / 1e6).toFixed(2); }
function mb(bytes) { return (bytes / 1e6).toFixed(1); }

function draw(canvas, series, legend) {
  const ctx = canvas.getContext("2d"), W = canvas.width, H = canvas.height;
  const L = 48, R = 8, T = 8, B = 22;
  ctx.clearRect(0, 0, W, H);
  ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, W, H);
  let n = 0, max = 0;
  for (const s of series) { n = Math.max(n, s.values.length); for (const v of s.values) max = Math.max(max, v); }
  max = max > 0 ? max * 1.1 : 1;
  ctx.strokeStyle = "#eee"; ctx.fillStyle = "#666"; ctx.font = "11px sans-serif"; ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = T + (H - T - B) * (1 - i / 4);
    ctx.beginPath(); ctx.moveTo(L, y); ctx.lineTo(W - R, y); ctx.stroke();
    ctx.fillText((max * i / 4).toFixed(max < 4 ? 2 : 0), 4, y + 4);
  }
  ctx.fillText(n > 1 ? `last ${n} samples` : "waiting for data", L, H - 6);
  for (const s of series) {
    ctx.strokeStyle = s.color; ctx.lineWidth = 2; ctx.beginPath();
    s.values.forEach((v, i) => {
      const x = L + (W - L - R) * (n > 1 ? (i + n - s.values.length) / (n - 1) : 0);
      const y = T + (H - T - B) * (1 - v / max);
      if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    });
    ctx.stroke();
  }
  legend.innerHTML = series.map(s => `<span><i style="background:${s.color}"></i>${esc(s.name)}</span>`).join("");
}

async function refresh() {
  let st;
  try { st = await (await fetch("status", {cache: "no-store"})).json(); }
  catch (e) { document.getElementById("summary").textContent = "status unavailable: " + e; return; }
  const t = st.totals;
  const saved = st.streams.reduce((n, s) => n + (s.renditions || []).reduce(
    (m, r) => m + (r.saved_bytes || 0), 0), 0);
  document.getElementById("summary").textContent =
    `${t.streams} stream(s), ${t.peers} peer(s), up ${mbit(t.upload_rate)} Mbit/s, ` +
    `origin ${mbit(t.origin_rate)} Mbit/s, origin saved ~${mb(saved)} MB, ` +
    `uptime ${Math.round(st.uptime)} s, reloads ${st.reloads}`;
  const hist = st.history.slice(-300);
  draw(document.getElementById("rates"), [
    {name: "upload to peers", color: COLORS[0], values: hist.map(h => h.upload_rate * 8 / 1e6)},
    {name: "origin fetch", color: COLORS[1], values: hist.map(h => h.origin_rate * 8 / 1e6)},
  ], document.getElementById("rates-legend"));
  const names = st.streams.map(s => s.name);
  draw(document.getElementById("peers"), names.map((name, i) => ({
    name, color: COLORS[(i + 2) % COLORS.length],
    values: hist.map(h => (h.peers[name] === undefined ? 0 : h.peers[name])),
  })), document.getElementById("peers-legend"));
  document.querySelector("#streams tbody").innerHTML = st.streams.map(s =>
    `<tr><td title="${esc(s.url)}">${esc(s.name)}</td><td class="${esc(s.state)}">${esc(s.state)}` +
    `${s.error ? " (" + esc(s.error) + ")" : ""}</td><td>${s.worker}</td><td>${s.peers}</td>` +
    `<td>${mbit(s.upload_rate)}</td><td>${mbit(s.origin_rate)}</td><td>${mb(s.uploaded_bytes)}</td>` +
    `<td>${mb(s.origin_bytes)}</td><td>${s.held_segments} / ${mb(s.held_bytes)} MB</td>` +
    `<td>${s.uploads_refused}</td></tr>`).join("");
  drawViewers(st.viewers);
  // Demand-driven fetching: "following" renditions are fetched from the origin, "idle" ones
  // are not (no other peer in their swarms); saved = what fetch-everything would have fetched.
  document.querySelector("#renditions tbody").innerHTML = st.streams.flatMap(s =>
    (s.renditions || []).map(r =>
      `<tr><td>${esc(s.name)}</td><td>${esc(r.label)}</td><td>${esc(r.fetch)}</td>` +
      `<td class="${r.state === "following" ? "serving" : "idle"}">${esc(r.state)}</td>` +
      `<td>${r.swarms.reduce((n, w) => n + w.peers, 0)}</td><td>${r.tracker_others ?? "-"}</td>` +
      `<td>${mb(r.origin_bytes)}</td><td>${mb(r.saved_bytes)}</td><td>${r.starts}</td></tr>`)
  ).join("");
  document.querySelector("#workers tbody").innerHTML = st.workers.map(w =>
    `<tr><td>${w.index}</td><td>${w.pid ?? "-"}</td><td class="${w.alive ? "serving" : "dead"}">` +
    `${w.alive ? "running" : "down"}</td><td>${w.restarts}</td><td>${esc(w.streams.join(", "))}</td></tr>`
  ).join("");
  document.body.dataset.samples = String(hist.length);
}
// Viewer stats ([collector]): what the viewers' pingback.js reported, per stream. The chart's
// share is over each sample interval (carried forward while nothing was downloaded); the
// table's is since the stream was first reported.
function drawViewers(v) {
  if (!v) return;
  document.getElementById("viewer-charts").hidden = false;
  document.getElementById("viewers").hidden = false;
  const t = v.totals;
  const share = t.p2p_share === null ? "-" : (t.p2p_share * 100).toFixed(1) + " %";
  const rejected = Object.entries(v.rejected).filter(([, n]) => n > 0)
    .map(([reason, n]) => `${reason} ${n}`).join(", ");
  document.getElementById("viewers-summary").textContent =
    `${t.viewers} live viewer(s) on ${t.streams} stream(s), P2P share ${share}, ` +
    `${t.accepted} report(s) taken, ${t.rejected} refused${rejected ? " (" + rejected + ")" : ""}`;
  const hist = v.history.slice(-300);
  const names = [...new Set(hist.flatMap(h => Object.keys(h.viewers)))].slice(0, COLORS.length);
  const carried = (name) => {  // points without downloads: the previous share (or the next)
    let last = null;
    const values = hist.map(h => {
      const x = h.p2p_share[name];
      if (x !== undefined && x !== null) last = x * 100;
      return last;
    });
    const first = values.find(x => x !== null) ?? 0;
    return values.map(x => x ?? first);
  };
  draw(document.getElementById("vshare"), names.map((name, i) => ({
    name, color: COLORS[i % COLORS.length], values: carried(name),
  })), document.getElementById("vshare-legend"));
  draw(document.getElementById("vcount"), names.map((name, i) => ({
    name, color: COLORS[i % COLORS.length], values: hist.map(h => h.viewers[name] ?? 0),
  })), document.getElementById("vcount-legend"));
  document.querySelector("#viewers tbody").innerHTML = v.streams.map(s =>
    `<tr data-stream="${esc(s.stream)}" data-share="${s.p2p_share ?? ""}"><td>${esc(s.stream)}</td>` +
    `<td>${s.viewers}</td><td>${s.p2p_share === null ? "-" : (s.p2p_share * 100).toFixed(1) + " %"}</td>` +
    `<td>${mb(s.http_bytes)}</td><td>${mb(s.p2p_bytes)}</td><td>${mb(s.uploaded_bytes)}</td>` +
    `<td>${s.peers}</td><td>${s.stalls}</td>` +
    `<td>${s.startup.mean === null ? "-" : s.startup.mean.toFixed(2)}</td><td>${s.reports}</td></tr>`
  ).join("");
  document.body.dataset.viewerSamples = String(hist.length);
}
refresh();
setInterval(refresh, 1000);
</script>
</body></html>
"""
