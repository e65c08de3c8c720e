// The interop player: hls.js + the p2p-media-loader hls.js integration of the version this
// page's import map points at. Everything comes from the page URL query:
//
//   manifest=URL              master playlist (required)
//   tracker=WS_URL            announce tracker; repeat for several (core announceTrackers)
//   swarmId=ID                optional core swarmId
//   level=N                   lock hls.js to level N (0 = lowest bitrate); -1 or absent = ABR
//   sha=1                     hash every segment received over P2P (core validateP2PSegment)
//   core.KEY=VALUE            any core config key, VALUE parsed as JSON when it parses
//                             (core.highDemandTimeWindow=4, core.isP2PUploadDisabled=true, ...)
//   hls.KEY=VALUE             any hls.js config key, same parsing (hls.liveSyncDurationCount=6)
//
// Counters are on window.p2pmlStats (see stats.js); window.p2pmlPlayer = {hls, video}.
import Hls from "hls.js";
import { HlsJsP2PEngine } from "p2p-media-loader-hlsjs";

function parseValue(text) {
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

export function start(version) {
  const stats = window.p2pmlStats;
  stats.version = version;
  const query = new URLSearchParams(location.search);
  const manifest = query.get("manifest");
  if (!manifest) {
    stats.error = "no manifest= in the page URL";
    return;
  }
  if (!Hls.isSupported()) {
    stats.error = "hls.js: MediaSource not supported";
    return;
  }
  stats.manifest = manifest;
  const level = query.has("level") ? Number(query.get("level")) : -1;

  const core = { rtcConfig: { iceServers: [] } };
  const trackers = query.getAll("tracker");
  if (trackers.length > 0) core.announceTrackers = trackers;
  if (query.has("swarmId")) core.swarmId = query.get("swarmId");
  const hlsConfig = {};
  for (const [key, value] of query.entries()) {
    if (key.startsWith("core.")) core[key.slice(5)] = parseValue(value);
    if (key.startsWith("hls.")) hlsConfig[key.slice(4)] = parseValue(value);
  }
  if (level >= 0) hlsConfig.startLevel = level;
  if (query.get("sha") === "1") {
    core.validateP2PSegment = async (url, byteRange, data) => {
      const key = byteRange ? `${url}|${byteRange.start}-${byteRange.end}` : url;
      stats.p2pSegments[key] = await sha256Hex(data);
      return true;
    };
  }

  const video = document.getElementById("video");
  const HlsWithP2P = HlsJsP2PEngine.injectMixin(Hls);
  const hls = new HlsWithP2P({ ...hlsConfig, p2p: { core } });
  window.p2pmlPlayer = { hls, video };
  const engine = hls.p2pEngine;

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

  hls.on(Hls.Events.ERROR, (_event, data) => {
    if (data.details === Hls.ErrorDetails.BUFFER_STALLED_ERROR) {
      // Before playback first started hls.js may report a stall while the first segments
      // are appended; what a viewer notices is a stall after playback started.
      if (stats.startedAt !== null) stats.stalls += 1;
      else stats.startupStalls += 1;
      stats.stallPositions.push(video.currentTime);
    }
    if (data.fatal) stats.fatalErrors.push(`${data.type}: ${data.details}`);
  });
  hls.on(Hls.Events.MANIFEST_PARSED, () => {
    stats.ready = true;
    // loadLevel pins the level without a buffer flush (hls.js manual level = ABR off).
    if (level >= 0) hls.loadLevel = level;
    video.play().catch((e) => stats.fatalErrors.push(`play(): ${e}`));
  });
  hls.on(Hls.Events.LEVEL_SWITCHED, (_event, data) => {
    stats.level = data.level;
  });

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

  hls.attachMedia(video);
  hls.loadSource(manifest);
}
