// What every interop page shares, whatever the player: the query parsing of the p2p-media-loader
// core config, the core-event counters and the <video> counters on window.p2pmlStats (stats.js).

// pingback=URL: the viewer-stats module shipped with p2pml-py (p2pml_py/web/pingback.js), loaded
// from the collector it reports to (URL's directory + "pingback.js"), before any player starts;
// pingbackInterval=MS sets its report interval. See attachPingbackFromQuery.
const pingbackUrl = new URLSearchParams(location.search).get("pingback");
const pingbackModule = pingbackUrl
  ? await import(new URL("pingback.js", pingbackUrl).href).catch((e) => {
      window.p2pmlStats.fatalErrors.push(`pingback.js: ${e}`);
      return null;
    })
  : null;

// With pingback=URL: attach the module to the player; its handle is window.p2pmlPingback.
export function attachPingbackFromQuery(query, engine, video, manifestUrl) {
  if (!pingbackModule) return;
  const intervalMs = query.has("pingbackInterval") ? Number(query.get("pingbackInterval")) : 5000;
  window.p2pmlPingback = pingbackModule.attachPingback({
    engine, video, url: pingbackUrl, manifestUrl, intervalMs,
  });
}

export function parseValue(text) {
  try {
    return JSON.parse(text);
  } catch (e) {
    return text;
  }
}

async function sha256Hex(data) {
  const digest = await crypto.subtle.digest("SHA-256", data);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

function peerEntry(stats, peerId) {
  let entry = stats.byPeer[peerId];
  if (!entry) {
    entry = { downloaded: 0, uploaded: 0 };
    stats.byPeer[peerId] = entry;
  }
  return entry;
}

// Options of one prefix ("hls.", "shaka.") from the query, values parsed as JSON when they parse.
export function prefixed(query, prefix) {
  const options = {};
  for (const [key, value] of query.entries()) {
    if (key.startsWith(prefix)) options[key.slice(prefix.length)] = parseValue(value);
  }
  return options;
}

// The p2p-media-loader core config of the query: tracker=, swarmId=, sha=1, core.KEY=VALUE.
export function coreConfig(query, stats) {
  const core = { rtcConfig: { iceServers: [] } };
  const trackers = query.getAll("tracker");
  if (trackers.length > 0) core.announceTrackers = trackers;
  if (query.has("swarmId")) core.swarmId = query.get("swarmId");
  Object.assign(core, prefixed(query, "core."));
  if (query.get("sha") === "1") {
    core.validateP2PSegment = async (url, byteRange, data) => {
      const key = byteRange ? `${url}|${byteRange.start}-${byteRange.end}` : url;
      stats.p2pSegments[key] = await sha256Hex(data);
      return true;
    };
  }
  return core;
}

// Counts bytes by source and peers from the core's events (the same events in 2.2 and 2.3, and
// in the hls.js and Shaka integrations: engine.addEventListener forwards to the core).
export function countCoreEvents(engine, stats) {
  engine.addEventListener("onChunkDownloaded", (bytes, source, peerId) => {
    if (source === "p2p") {
      stats.p2pBytes += bytes;
      if (peerId) peerEntry(stats, peerId).downloaded += bytes;
    } else {
      stats.httpBytes += bytes;
    }
  });
  engine.addEventListener("onChunkUploaded", (bytes, peerId) => {
    stats.uploadedBytes += bytes;
    if (peerId) peerEntry(stats, peerId).uploaded += bytes;
  });
  engine.addEventListener("onPeerConnect", ({ peerId }) => {
    stats.peerConnects += 1;
    if (!stats.peersConnected.includes(peerId)) stats.peersConnected.push(peerId);
    if (!stats.peersSeen.includes(peerId)) stats.peersSeen.push(peerId);
    peerEntry(stats, peerId);
  });
  engine.addEventListener("onPeerClose", ({ peerId }) => {
    stats.peerCloses += 1;
    stats.peersConnected = stats.peersConnected.filter((id) => id !== peerId);
  });
  engine.addEventListener("onPeerError", ({ peerId, error }) => {
    stats.peerErrors.push(`${peerId}: ${error}`);
  });
  engine.addEventListener("onSegmentLoaded", ({ downloadSource }) => {
    if (downloadSource === "p2p") stats.segmentsP2P += 1;
    else stats.segmentsHttp += 1;
  });
  engine.addEventListener("onSegmentError", ({ error, downloadSource, peerId }) => {
    stats.segmentErrors.push(`${downloadSource} ${peerId ?? ""}: ${error && error.type}`);
  });
  engine.addEventListener("onTrackerError", ({ error }) => {
    stats.trackerErrors.push(String(error));
  });
  engine.addEventListener("onTrackerWarning", ({ warning }) => {
    stats.trackerWarnings.push(String(warning));
  });
}

// A stall the viewer notices: the player ran dry after playback first started. Before that, a
// player may report one while it appends the first segments.
export function countStall(stats, video) {
  if (stats.startedAt !== null) stats.stalls += 1;
  else stats.startupStalls += 1;
  stats.stallPositions.push(video.currentTime);
}

// <video> counters: playing, position, buffer ahead, waiting events; the status line.
export function countVideo(video, stats) {
  video.addEventListener("playing", () => {
    if (!stats.playing && stats.startedAt === null) stats.startedAt = performance.now();
    stats.playing = true;
  });
  video.addEventListener("waiting", () => {
    if (stats.startedAt !== null) stats.waitingAfterStart += 1;
    stats.playing = false;
  });
  video.addEventListener("ended", () => {
    stats.ended = true;
    stats.playing = false;
  });
  const update = () => {
    stats.position = video.currentTime;
    const ranges = video.buffered;
    stats.buffered = 0;
    for (let i = 0; i < ranges.length; i++) {
      if (ranges.start(i) <= video.currentTime && video.currentTime <= ranges.end(i)) {
        stats.buffered = ranges.end(i) - video.currentTime;
      }
    }
    document.getElementById("status").textContent = JSON.stringify(
      { http: stats.httpBytes, p2p: stats.p2pBytes, up: stats.uploadedBytes, peers: stats.peersConnected.length },
    );
  };
  video.addEventListener("timeupdate", update);
  setInterval(update, 500);
}
