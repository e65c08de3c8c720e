// The interop player for Shaka Player + p2p-media-loader-shaka (published at 2.2.2 only; the
// import map points "p2p-media-loader-core" at the core of the same version). shaka-player's
// compiled build is a classic script that sets window.shaka. The query is player.mjs's, with
// shaka.KEY instead of hls.KEY:
//
//   manifest=URL, tracker=WS_URL, swarmId=ID, sha=1, core.KEY=VALUE   as in player.mjs
//   pingback=URL, pingbackInterval=MS                                  as in player.mjs
//   level=N           pin variant N of Shaka's variant tracks sorted by bandwidth (0 = lowest,
//                     chosen from the start; N > 0 is switched to once loaded); absent = ABR
//   shaka.KEY=VALUE   player.configure(KEY, VALUE) after the engine's own settings, VALUE parsed
//                     as JSON when it parses (shaka.manifest.defaultPresentationDelay=12)
//
// Counters are on window.p2pmlStats (stats.js); window.p2pmlPlayer = {player, engine, video}.
import { ShakaP2PEngine } from "p2p-media-loader-shaka";
import {
  attachPingbackFromQuery,
  coreConfig,
  countCoreEvents,
  countStall,
  countVideo,
  prefixed,
} from "./common.mjs";

function sortedTracks(player) {
  return player.getVariantTracks().sort((a, b) => a.bandwidth - b.bandwidth);
}

export function start(version) {
  const stats = window.p2pmlStats;
  stats.version = version;
  const query = new URLSearchParams(location.search);
  const manifest = query.get("manifest");
  const shaka = window.shaka;
  if (!manifest) {
    stats.error = "no manifest= in the page URL";
    return;
  }
  if (!shaka) {
    stats.error = "shaka-player did not load (window.shaka is missing)";
    return;
  }
  shaka.polyfill.installAll();
  if (!shaka.Player.isBrowserSupported()) {
    stats.error = "Shaka Player: browser not supported";
    return;
  }
  stats.manifest = manifest;
  const level = query.has("level") ? Number(query.get("level")) : -1;

  // Before any player exists: the engine's manifest parsers and http(s) scheme (its loader).
  ShakaP2PEngine.registerPlugins(shaka);
  const engine = new ShakaP2PEngine({ core: coreConfig(query, stats) }, shaka);
  const video = document.getElementById("video");
  const player = new shaka.Player();
  window.p2pmlPlayer = { player, engine, video };
  countCoreEvents(engine, stats);
  attachPingbackFromQuery(query, engine, video, manifest);

  player.addEventListener("error", (event) => {
    const error = event.detail;
    if (error && error.severity === shaka.util.Error.Severity.CRITICAL) {
      stats.fatalErrors.push(`shaka ${error.category}/${error.code}`);
    }
  });
  player.addEventListener("buffering", (event) => {
    if (event.buffering) countStall(stats, video);
  });
  const updateLevel = () => {
    const index = sortedTracks(player).findIndex((track) => track.active);
    stats.level = index >= 0 ? index : null;
  };
  for (const name of ["adaptation", "variantchanged", "trackschanged"]) {
    player.addEventListener(name, updateLevel);
  }
  countVideo(video, stats);

  const load = async () => {
    await player.attach(video);
    engine.bindShakaPlayer(player);
    if (level >= 0) {
      // ABR off; with a 1 bit/s estimate its first choice is the lowest-bandwidth variant
      // (not the browser's navigator.connection.downlink, which Shaka prefers by default).
      player.configure({
        abr: { enabled: false, defaultBandwidthEstimate: 1, useNetworkInformation: false },
      });
    }
    for (const [key, value] of Object.entries(prefixed(query, "shaka."))) {
      player.configure(key, value);
    }
    await player.load(manifest);
    stats.ready = true;
    if (level > 0) {
      const track = sortedTracks(player)[level];
      if (track) player.selectVariantTrack(track, /* clearBuffer= */ true);
      else stats.fatalErrors.push(`no variant ${level}`);
    }
    updateLevel();
    await video.play();
  };
  load().catch((e) => {
    const detail = e && e.code !== undefined ? `shaka ${e.category}/${e.code}` : String(e);
    stats.fatalErrors.push(`load: ${detail}`);
  });
}
