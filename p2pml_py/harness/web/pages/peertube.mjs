// A PeerTube watch page, reduced to what matters for P2P: hls.js + p2p-media-loader configured
// the way PeerTube's player configures them (client/src/assets/player/shared/
// player-options-builder/hls-options-builder.ts in Chocobozzz/PeerTube, PeerTube 7.1 - 8.x with
// p2p-media-loader 2.2.x), from the video's API object as the player gets it.
//
// Query:
//   video=URL           the video's API URL (GET /api/v1/videos/{id}) (required)
//   password=TEXT       sent as x-peertube-video-password to the API, the SHA-256 list and the
//                       media (PeerTube's requiresPassword)
//   level=N             lock hls.js to level N (PeerTube's player uses ABR; tests pin a level so
//                       that every page is in the same swarm); absent = ABR
//   validateHttp=0      do not validate segments downloaded over HTTP (PeerTube validates both)
//   p2p=0               isP2PDisabled (PeerTube's "P2P disabled" setting)
//   core.KEY=VALUE      core config overrides (JSON when it parses), after PeerTube's
//   hls.KEY=VALUE       hls.js config overrides, after PeerTube's
//
// PeerTube's settings: swarmId = streamingPlaylists[0].playlistUrl; announceTrackers = the
// trackerUrls that start with "ws"; validateP2PSegment and validateHTTPSegment = a
// SegmentValidator on segmentsSha256Url (segment-validator.ts, below); VOD highDemandTimeWindow 15
// and segmentMemoryStorageLimit 1024, live highDemandTimeWindow 4; hls.js capLevelToPlayerSize and
// liveSyncDurationCount 5. No STUN servers (loopback only).
//
// Counters: window.p2pmlStats (stats.js) plus stats.peertube = {swarmId, playlistUrl,
// segmentsSha256Url, announceTrackers, listFetches, refetches, validatedP2P, validatedHttp,
// failedP2P, failedHttp, failures: [{source, file, range, reason}] (first 100)}.
import Hls from "hls.js";
import { HlsJsP2PEngine } from "p2p-media-loader-hlsjs";
import { countCoreEvents, countStall, countVideo, prefixed } from "./common.mjs";

const MAX_RETRIES = 10; // segment-validator.ts maxRetries
const RETRY_DELAY_MS = 500;
const MAX_FAILURES_KEPT = 100;

const wait = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function sha256Hex(data) {
  const digest = await crypto.subtle.digest("SHA-256", data);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

// PeerTube's SegmentValidator: the list is fetched once (again when a name is missing, up to 10
// times 500 ms apart); the key is the last path component of the URL without its query; a string
// value is the digest, an object value is indexed by "<start>-<end>" of the segment's byte range.
// Returns false on any mismatch (PeerTube logs the mismatch as a client error).
class SegmentValidator {
  constructor(url, headers, stats) {
    this.url = url;
    this.headers = headers;
    this.stats = stats;
    this.list = null;
  }

  load() {
    this.stats.peertube.listFetches += 1;
    this.list = fetch(this.url, { headers: this.headers })
      .then((res) => res.json())
      .catch(() => ({}));
  }

  fail(source, file, range, reason) {
    const pt = this.stats.peertube;
    if (source === "p2p") pt.failedP2P += 1;
    else pt.failedHttp += 1;
    if (pt.failures.length < MAX_FAILURES_KEPT) pt.failures.push({ source, file, range, reason });
    return false;
  }

  async validate(source, url, byteRange, data, retry = 1) {
    if (this.list === null) this.load();
    const file = url.split("?")[0].split("/").pop();
    const value = (await this.list)[file];
    if (!value && retry > MAX_RETRIES) return this.fail(source, file, "", "unknown segment name");
    if (!value) {
      this.stats.peertube.refetches += 1;
      await wait(RETRY_DELAY_MS);
      this.load();
      return this.validate(source, url, byteRange, data, retry + 1);
    }
    let expected;
    let range = "";
    if (typeof value === "string") {
      expected = value;
    } else {
      if (!byteRange) return this.fail(source, file, "", "no byte range for a byte-range entry");
      range = `${byteRange.start}-${byteRange.end}`;
      expected = value[range];
    }
    if (expected === undefined) return this.fail(source, file, range, "unknown byte range");
    const actual = await sha256Hex(data);
    if (actual !== expected) {
      return this.fail(source, file, range, `expected ${expected}, got ${actual}`);
    }
    if (source === "p2p") {
      this.stats.peertube.validatedP2P += 1;
      this.stats.p2pSegments[range ? `${url}|${range}` : url] = actual;
    } else {
      this.stats.peertube.validatedHttp += 1;
    }
    return true;
  }
}

export async function start(version) {
  const stats = window.p2pmlStats;
  const query = new URLSearchParams(location.search);
  const api = query.get("video");
  stats.peertube = {
    swarmId: null,
    playlistUrl: null,
    segmentsSha256Url: null,
    announceTrackers: [],
    listFetches: 0,
    refetches: 0,
    validatedP2P: 0,
    validatedHttp: 0,
    failedP2P: 0,
    failedHttp: 0,
    failures: [],
  };
  const fail = (message) => {
    stats.error = message;
    stats.version = version;
  };
  if (!api) return fail("no video= in the page URL");
  if (!Hls.isSupported()) return fail("hls.js: MediaSource not supported");

  const password = query.get("password");
  const headers = password === null ? {} : { "x-peertube-video-password": password };
  let video;
  try {
    const response = await fetch(api, { headers });
    if (!response.ok) return fail(`GET ${api}: ${response.status}`);
    video = await response.json();
  } catch (e) {
    return fail(`GET ${api}: ${e}`);
  }
  const hlsPlaylist = (video.streamingPlaylists || []).find((p) => p.type === 1);
  if (!hlsPlaylist) return fail("the video has no HLS streaming playlist");

  const pt = stats.peertube;
  pt.playlistUrl = hlsPlaylist.playlistUrl;
  pt.swarmId = hlsPlaylist.playlistUrl;
  pt.segmentsSha256Url = hlsPlaylist.segmentsSha256Url || null;
  pt.announceTrackers = (video.trackerUrls || []).filter((t) => t.startsWith("ws"));
  stats.manifest = hlsPlaylist.playlistUrl;

  const validator = pt.segmentsSha256Url
    ? new SegmentValidator(pt.segmentsSha256Url, headers, stats)
    : null;
  const validateHttp = query.get("validateHttp") !== "0";
  const serverOrigin = new URL(api).origin;
  const core = {
    announceTrackers: pt.announceTrackers,
    rtcConfig: { iceServers: [] },
    swarmId: pt.swarmId,
    // No SHA-256 list: PeerTube disables P2P.
    isP2PDisabled: query.get("p2p") === "0" || validator === null,
    isP2PUploadDisabled: false,
    ...(video.isLive
      ? { highDemandTimeWindow: 4 }
      : { highDemandTimeWindow: 15, segmentMemoryStorageLimit: 1024 }),
  };
  if (validator) {
    core.validateP2PSegment = (url, byteRange, data) =>
      validator.validate("p2p", url, byteRange, data);
    if (validateHttp) {
      core.validateHTTPSegment = (url, byteRange, data) =>
        validator.validate("http", url, byteRange, data);
    }
  }
  if (password !== null) {
    core.httpRequestSetup = (segmentUrl, _segmentByteRange, signal, requestByteRange) => {
      const h = new Headers();
      if (requestByteRange) {
        h.set("Range", `bytes=${requestByteRange.start}-${requestByteRange.end ?? ""}`);
      }
      if (new URL(segmentUrl).origin === serverOrigin) h.set("x-peertube-video-password", password);
      return Promise.resolve(new Request(segmentUrl, { headers: h, signal }));
    };
  }
  Object.assign(core, prefixed(query, "core."));

  const level = query.has("level") ? Number(query.get("level")) : -1;
  const hlsConfig = {
    capLevelToPlayerSize: true,
    liveSyncDurationCount: 5,
    ...(password === null
      ? {}
      : {
          xhrSetup: (xhr, url) => {
            if (new URL(url).origin === serverOrigin) {
              xhr.setRequestHeader("x-peertube-video-password", password);
            }
          },
        }),
    ...prefixed(query, "hls."),
  };
  if (level >= 0) hlsConfig.startLevel = level;

  const videoElement = document.getElementById("video");
  const HlsWithP2P = HlsJsP2PEngine.injectMixin(Hls);
  const hls = new HlsWithP2P({ ...hlsConfig, p2p: { core } });
  const engine = hls.p2pEngine;
  window.p2pmlPlayer = { hls, engine, video: videoElement, validator };

  countCoreEvents(engine, stats);
  hls.on(Hls.Events.ERROR, (_event, data) => {
    if (data.details === Hls.ErrorDetails.BUFFER_STALLED_ERROR) countStall(stats, videoElement);
    if (data.fatal) stats.fatalErrors.push(`${data.type}: ${data.details}`);
  });
  hls.on(Hls.Events.MANIFEST_PARSED, () => {
    stats.ready = true;
    if (level >= 0) hls.loadLevel = level;
    videoElement.play().catch((e) => stats.fatalErrors.push(`play(): ${e}`));
  });
  hls.on(Hls.Events.LEVEL_SWITCHED, (_event, data) => {
    stats.level = data.level;
  });
  countVideo(videoElement, stats);

  hls.attachMedia(videoElement);
  hls.loadSource(hlsPlaylist.playlistUrl);
  stats.version = version; // last: the harness waits for it, then reads error
}
