// Counters the harness reads with Playwright (window.p2pmlStats). Loaded as a classic script
// before the player module so that the tracker WebSocket wrapper is in place before
// p2p-media-loader opens its first socket.
"use strict";
(function () {
  const stats = {
    version: null,          // p2p-media-loader version of this page
    ready: false,           // the player parsed the manifest
    error: null,            // set when the page could not start (bad query, missing MSE ...)
    manifest: null,
    level: null,            // level playing: hls.js level / Shaka variant by bandwidth
    httpBytes: 0,           // core onChunkDownloaded, downloadSource "http"
    p2pBytes: 0,            // core onChunkDownloaded, downloadSource "p2p"
    uploadedBytes: 0,       // core onChunkUploaded
    byPeer: {},             // remote peer id -> {downloaded, uploaded}
    peersConnected: [],     // remote peer ids connected now
    peersSeen: [],          // every remote peer id that ever connected
    peerConnects: 0,
    peerCloses: 0,
    peerErrors: [],
    segmentsHttp: 0,        // core onSegmentLoaded by source
    segmentsP2P: 0,
    segmentErrors: [],
    p2pSegments: {},        // segment URL -> SHA-256 hex of the bytes received over P2P
    ownPeerIds: {},         // info hash -> this page's peer id (from its own tracker announces)
    trackerMessages: 0,
    trackerErrors: [],
    trackerWarnings: [],
    stalls: 0,              // hls.js BUFFER_STALLED_ERROR / Shaka "buffering" after playback first started
    startupStalls: 0,       // the same before playback started
    stallPositions: [],     // video.currentTime at each of those
    waitingAfterStart: 0,   // <video> "waiting" events after playback first started
    playing: false,
    startedAt: null,        // ms since page load when playback first started
    position: 0,            // video.currentTime
    buffered: 0,            // seconds buffered ahead of the position
    ended: false,
    fatalErrors: [],
  };
  window.p2pmlStats = stats;

  // bittorrent-tracker (bundled in the core) sends JSON announces over a browser WebSocket; the
  // page's own peer id per info hash is only visible there (SPEC a.2).
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    if (typeof data === "string") {
      stats.trackerMessages += 1;
      try {
        const msg = JSON.parse(data);
        if (msg && msg.action === "announce" && msg.info_hash && msg.peer_id) {
          stats.ownPeerIds[msg.info_hash] = msg.peer_id;
        }
      } catch (e) {
        // not JSON: not a tracker message
      }
    }
    return send.call(this, data);
  };
})();
