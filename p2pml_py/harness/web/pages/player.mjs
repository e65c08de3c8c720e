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
//   pingback=URL              report viewer stats to this collector (common.mjs; optional
//                             pingbackInterval=MS)
//
// Counters are on window.p2pmlStats (see stats.js); window.p2pmlPlayer = {hls, engine, video}.
import Hls from "hls.js";
import { HlsJsP2PEngine } from "p2p-media-loader-hlsjs";
import {
  attachPingbackFromQuery,
  coreConfig,
  countCoreEvents,
  countStall,
  countVideo,
  prefixed,
} from "./common.mjs";

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

  const core = coreConfig(query, stats);
  const hlsConfig = prefixed(query, "hls.");
  if (level >= 0) hlsConfig.startLevel = level;

  const video = document.getElementById("video");
  const HlsWithP2P = HlsJsP2PEngine.injectMixin(Hls);
  const hls = new HlsWithP2P({ ...hlsConfig, p2p: { core } });
  const engine = hls.p2pEngine;
  window.p2pmlPlayer = { hls, engine, video };

  countCoreEvents(engine, stats);
  attachPingbackFromQuery(query, engine, video, manifest);

  hls.on(Hls.Events.ERROR, (_event, data) => {
    if (data.details === Hls.ErrorDetails.BUFFER_STALLED_ERROR) {
      countStall(stats, video);
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

  countVideo(video, stats);

  hls.attachMedia(video);
  hls.loadSource(manifest);
}
