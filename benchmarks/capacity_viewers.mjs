// Viewers of the capacity benchmark (benchmarks/capacity.py): node-datachannel peers that join a
// seed in a burst, as browsers joining a swarm do, then each play in real time -- one segment per
// segment duration D -- from that seed. One worker process holds many viewers; the orchestrator
// starts --workers of them on the CPU(s) the seed does not use.
//
//   node benchmarks/capacity_viewers.mjs [--interop DIR]
//
// Protocol with benchmarks/capacity.py, one JSON object per line:
//   stdin  {"type": "config", "url", "count", "index", "size", "segment_duration", "segments",
//           "announce", "connect_timeout", "grace"}
//            segments: [{"request", "data", "done", "absent", "digest"}] by segment id: the
//            SegmentRequest this viewer sends for it and the SegmentData /
//            SegmentDataSendingCompleted / SegmentAbsent commands the seed answers with (hex,
//            encoded by p2pml_py.wire in Python; request id = segment % 1000), and its SHA-256.
//            announce: this viewer's own (empty) SegmentsAnnouncement, sent once open.
//   stdout {"loaded": true}                      once configured and warmed up (nothing timed)
//   stdin  {"type": "connect"}                   the barrier: every viewer starts joining now
//   stdout {"connected": true, "open_ms": [...], "errors": {reason: n}, "announced": n}
//            once every viewer is open or gave up (connect_timeout seconds after it started)
//   stdin  {"type": "play", "duration": SECONDS}
//   stdout {"done": true, "total", "completed", "late", ...}     (see play() below)
//   then it waits for stdin to close (or {"type": "quit"}) and leaves.
//
// Joining, a browser's order: new PeerConnection, createDataChannel (a 40-hex-char label,
// ordered), ICE gathering (non-trickle: the offer carries the one 127.0.0.1 candidate, via
// bindAddress), POST /offer {"peer_id", "sdp"} to the seed, setRemoteDescription(answer), wait
// for the channel's open event. offer->open = from creating the PeerConnection to that event.
//
// Playing: viewer v requests segment (start_v + k) mod S at t0 + phase_v + k*D (phase_v random in
// [0, D), so the viewers are spread like viewers that joined over time), strictly one request at
// a time (a player's one download per peer): a request still running when the next is due delays
// it, and that one is already late. Per request: time to first byte (request sent -> SegmentData
// command or first data byte), the longest gap between its messages, completion (its due time ->
// SegmentDataSendingCompleted), size and SHA-256. late = completion > D, or never completed.
// Requests due after --duration seconds are not made; one still running then may finish within
// "grace" seconds (after that it is abandoned and late).

import { createHash, randomBytes } from 'node:crypto';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

import {
  RTC_CONFIG,
  gathered,
  loadModule,
  send,
  warmUp,
  withTimeout,
  workerControl,
} from './native_dc.mjs';

const SCRIPT = fileURLToPath(import.meta.url);
const MAX_VIEWERS = 5000;
const MAX_ERRORS_KEPT = 50;
const PEER_ID_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

function isCommand(message) {
  if (message.length < 8) return false;
  const head = message.toString('latin1', 0, 4);
  const tail = message.toString('latin1', message.length - 4);
  return (head === 'cstr' || head === 'dstr') && (tail === 'cend' || tail === 'dend');
}

// A browser's peer id: "-PM0203-" (p2p-media-loader 2.3) and 12 random characters.
function peerId() {
  const bytes = randomBytes(12);
  let id = '-PM0203-';
  for (const b of bytes) id += PEER_ID_CHARS[b % PEER_ID_CHARS.length];
  return id;
}

function reasonOf(error) {
  const text = String(error?.message ?? error);
  return text.replace(/[0-9a-f]{8,}/g, '…').replace(/\d+(\.\d+)?/g, 'N').slice(0, 120);
}

async function postJson(url, body, ms) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(Math.max(1, Math.ceil(ms))),
  });
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.json();
}


// -- one viewer's messages ----------------------------------------------------------------------

function onMessage(viewer, message) {
  if (typeof message === 'string') message = Buffer.from(message);
  else if (!Buffer.isBuffer(message)) message = Buffer.from(message);
  const now = performance.now();
  const dl = viewer.dl;
  if (isCommand(message)) {
    if (!dl) {
      // The seed's announcement (on open), or the completion of a download we gave up on.
      viewer.announced = true;
      return;
    }
    if (message.equals(dl.seg.data)) {
      dl.header = true;
      dl.touch(now);
    } else if (message.equals(dl.seg.done)) {
      dl.touch(now);
      dl.finish(now);
    } else if (message.equals(dl.seg.absent)) {
      dl.fail('absent', now);
    } else {
      viewer.announced = true; // another announcement
    }
    return;
  }
  if (!dl || !dl.header) {
    viewer.strayBytes += message.length; // leftovers of an abandoned download
    return;
  }
  dl.touch(now);
  dl.got += message.length;
  dl.hash.update(message);
}

// -- joining ------------------------------------------------------------------------------------

function sha256FingerprintOnly(sdp) {
  const lines = sdp.split('\r\n');
  if (!lines.some((l) => l.startsWith('a=fingerprint:sha-256 '))) return sdp;
  return lines.filter((l) => !l.startsWith('a=fingerprint:') || l.startsWith('a=fingerprint:sha-256 ')).join('\r\n');
}

// One try: resolves once the channel is open; rejects with a RetryableFailure when the peer
// connection failed before that (see connect()).
class RetryableFailure extends Error {}

async function attempt(nd, config, viewer, left) {
  const pc = new nd.PeerConnection(`viewer-${viewer.index}`, RTC_CONFIG);
  viewer.pc = pc;
  try {
    // A browser's channel: 40 random hex chars, ordered, reliable.
    const dc = pc.createDataChannel(randomBytes(20).toString('hex'), {});
    viewer.dc = dc;
    const opened = new Promise((resolve, reject) => {
      dc.onOpen(resolve);
      dc.onError((error) => reject(new RetryableFailure(`data channel error: ${error}`)));
      dc.onClosed(() => {
        if (viewer.dc !== dc) return; // an earlier try's channel
        viewer.closed = viewer.open;
        viewer.dl?.fail('closed', performance.now());
        reject(new RetryableFailure('data channel closed before open'));
      });
      pc.onStateChange((state) => {
        if (state === 'failed') reject(new RetryableFailure('peer connection failed before open'));
      });
    });
    opened.catch(() => {});
    dc.onMessage((message) => {
      if (viewer.dc === dc) onMessage(viewer, message);
    });
    await withTimeout(gathered(pc), left(), 'ICE gathering');
    const answer = await postJson(`${config.url}/offer`, { peer_id: viewer.peerId, sdp: pc.localDescription().sdp }, left());
    if (answer.declined) throw new Error('offer declined by the seed');
    if (answer.error || !answer.sdp) throw new Error(`seed: ${answer.error ?? 'no answer'}`);
    try {
      pc.setRemoteDescription(sha256FingerprintOnly(answer.sdp), 'answer');
    } catch (error) {
      // The same race, lost earlier: the handshake failed and the transports were closed while
      // setRemoteDescription() was still adding the answer's candidates ("Got a remote candidate
      // without ICE transport").
      throw new RetryableFailure(String(error?.message ?? error));
    }
    await withTimeout(opened, left(), 'data channel open');
  } catch (error) {
    try {
      pc.close();
    } catch {
      // failed anyway
    }
    throw error;
  }
}

// Joining, and a race in libdatachannel 0.24.5 (this viewer's library; browsers do not have it).
// Its setRemoteDescription() gives the ICE agent the answer before it keeps the answer for the
// DTLS fingerprint check. The Python seed (aioice) checks our offer's candidate at once, so our
// ICE agent completes as soon as it has the answer, and the seed's DTLS ClientHello may come
// before the answer is kept: the DTLS transport then starts with the default fingerprint
// algorithm (sha-256) or checks the certificate with no description at all, and the handshake
// fails ("DTLS alert: unknown CA ... certificate verify failed" with P2PML_NATIVE_DC_LOG=Info; or,
// when that happens before setRemoteDescription() is done, "Got a remote candidate without ICE
// transport" from it). Two remedies, on this side only:
//  * aiortc's answer lists sha-256, sha-384 and sha-512 fingerprints, and libdatachannel
//    apparently keeps a later one; given only the sha-256 line (sha256FingerprintOnly), the
//    transport's default algorithm is the right one even when it starts early -- measured:
//    retries in a 50-viewer burst went from 8-22 % of the viewers to 0-4 %;
//  * a try whose peer connection still fails before the channel opens is made again (at most
//    MAX_ATTEMPTS tries, within connect_timeout), with a new PeerConnection and offer and the
//    same peer id, as a browser gets another chance at the next tracker announce. Retries are
//    counted and reported by reason; offer->open runs from the first try. Retries are counted and reported by reason; offer->open runs from the first try.
const MAX_ATTEMPTS = 3;

async function connect(nd, config, viewer) {
  const started = performance.now();
  const deadline = started + config.connect_timeout * 1000;
  const left = () => deadline - performance.now();
  for (let n = 1; n <= MAX_ATTEMPTS; n++) {
    try {
      await attempt(nd, config, viewer, left);
      viewer.open = true;
      viewer.openMs = performance.now() - started;
      viewer.dc.sendMessageBinary(config.announceBytes); // a browser announces what it has
      return;
    } catch (error) {
      const text = String(error?.name === 'TimeoutError' ? 'timeout: POST /offer' : error?.message ?? error);
      if (error instanceof RetryableFailure && n < MAX_ATTEMPTS && left() > 0) {
        viewer.retries.push(text);
        continue;
      }
      viewer.error = text;
      return;
    }
  }
}

// -- playing ------------------------------------------------------------------------------------

function download(viewer, seg, due, limit, stats) {
  return new Promise((resolve) => {
    const sent = performance.now();
    const dl = {
      seg,
      header: false,
      got: 0,
      hash: createHash('sha256'),
      first: 0, // when the first message of this download arrived
      last: sent,
      maxGap: 0,
      settled: false,
      touch(now) {
        if (!this.first) this.first = now;
        else if (now - this.last > this.maxGap) this.maxGap = now - this.last;
        this.last = now;
      },
      end(outcome, now) {
        if (this.settled) return;
        this.settled = true;
        clearTimeout(timer);
        viewer.dl = null;
        // The longest wait for a byte in this download: to its first message, between two, and
        // (when it did not complete) from the last one to when it was given up.
        const ttfb = this.first ? this.first - sent : now - sent;
        let wait = Math.max(ttfb, this.maxGap);
        if (outcome !== 'ok') wait = Math.max(wait, now - this.last);
        if (this.first) stats.ttfb.push(Math.round(ttfb * 10) / 10);
        stats.maxWaitMs = Math.max(stats.maxWaitMs, wait);
        resolve({ outcome, completion: now - due });
      },
      finish(now) {
        const ok = this.got === viewer.size && this.hash.digest('hex') === seg.digest;
        if (!ok) stats.corrupt++;
        stats.bytes += this.got;
        this.end(ok ? 'ok' : 'corrupt', now);
      },
      fail(reason, now) {
        this.end(reason, now);
      },
    };
    viewer.dl = dl;
    const timer = setTimeout(() => dl.fail('timeout', performance.now()), Math.max(0, limit - sent));
    try {
      if (viewer.closed) throw new Error('closed');
      viewer.dc.sendMessageBinary(seg.request);
    } catch {
      dl.fail('closed', performance.now());
    }
  });
}

async function playOne(viewer, config, t0, end, limit, stats) {
  const D = config.segment_duration * 1000;
  const phase = Math.random() * D;
  const count = config.segments.length;
  for (let k = 0; k < 1_000_000; k++) {
    const due = t0 + phase + k * D;
    if (due >= end) break;
    stats.total++;
    if (viewer.failed) {
      stats.late++;
      stats.missed++;
      continue;
    }
    const wait = due - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait)); // the play schedule
    if (performance.now() >= limit) {
      viewer.failed = 'unfinished';
      stats.late++;
      stats.missed++;
      continue;
    }
    const seg = config.segments[(viewer.start + k) % count];
    const { outcome, completion } = await download(viewer, seg, due, limit, stats);
    if (outcome === 'ok' || outcome === 'corrupt') {
      stats.completed++;
      stats.completion.push(Math.round(completion));
      if (completion > D) stats.late++;
      continue;
    }
    stats.late++;
    stats.failures[outcome] = (stats.failures[outcome] || 0) + 1;
    // After a closed channel or a download given up, leftovers of it could be taken for the
    // next segment's bytes: this viewer stops (what is left of its window counts as late).
    if (outcome !== 'absent') viewer.failed = outcome;
  }
}

async function play(viewers, config, duration) {
  const t0 = performance.now();
  const end = t0 + duration * 1000;
  const limit = end + config.grace * 1000;
  const cpu0 = process.cpuUsage();
  const stats = {
    total: 0,
    completed: 0,
    late: 0,
    missed: 0,
    corrupt: 0,
    bytes: 0,
    failures: {},
    ttfb: [],
    completion: [],
    maxWaitMs: 0,
  };
  const playing = viewers.filter((v) => v.open);
  await Promise.all(playing.map((v) => playOne(v, config, t0, end, limit, stats)));
  const cpu = process.cpuUsage(cpu0);
  return {
    done: true,
    elapsed: (performance.now() - t0) / 1000,
    viewers: playing.length,
    total: stats.total,
    completed: stats.completed,
    late: stats.late,
    missed: stats.missed,
    corrupt: stats.corrupt,
    bytes: stats.bytes,
    failures: stats.failures,
    ttfb_ms: stats.ttfb,
    completion_ms: stats.completion,
    max_wait_ms: Math.round(stats.maxWaitMs * 10) / 10,
    closed: playing.filter((v) => v.closed).length,
    not_announced: playing.filter((v) => !v.announced).length,
    stray_bytes: playing.reduce((sum, v) => sum + v.strayBytes, 0),
    cpu_s: (cpu.user + cpu.system) / 1e6,
  };
}

// -- the worker ---------------------------------------------------------------------------------

async function main() {
  const at = process.argv.indexOf('--interop');
  const interop =
    (at > 0 && process.argv[at + 1]) || process.env.P2PML_INTEROP || path.resolve(path.dirname(SCRIPT), '..', 'interop');
  const { nd } = loadModule(interop);
  const logLevel = process.env.P2PML_NATIVE_DC_LOG; // e.g. Debug: libdatachannel's log on stderr
  if (logLevel) {
    nd.initLogger(logLevel, (level, message) => {
      process.stderr.write(`${(performance.now() / 1000).toFixed(3)} ${level} ${message}\n`);
    });
  }
  const viewers = [];
  const { configured, signals } = workerControl(nd, viewers, ['connect', 'play']);
  const config = await withTimeout(configured, 60000, 'config');
  config.announceBytes = Buffer.from(config.announce, 'hex');
  config.segments = config.segments.map((s) => ({
    request: Buffer.from(s.request, 'hex'),
    data: Buffer.from(s.data, 'hex'),
    done: Buffer.from(s.done, 'hex'),
    absent: Buffer.from(s.absent, 'hex'),
    digest: s.digest,
  }));
  for (let i = 0; i < Math.min(config.count, MAX_VIEWERS); i++) {
    viewers.push({
      index: config.index + i,
      peerId: peerId(),
      start: Math.floor(Math.random() * config.segments.length),
      size: config.size,
      pc: null,
      dc: null,
      dl: null,
      open: false,
      openMs: 0,
      closed: false,
      announced: false,
      failed: '',
      error: '',
      strayBytes: 0,
      retries: [],
    });
  }
  await warmUp(nd, config.url);
  send(process.stdout, { loaded: true });
  await withTimeout(signals.connect, 600000, 'connect');
  // The join burst: every viewer of this worker at once.
  await Promise.all(viewers.map((viewer) => connect(nd, config, viewer)));
  const errors = {};
  let kept = 0;
  for (const viewer of viewers) {
    if (!viewer.error) continue;
    const reason = reasonOf(viewer.error);
    if (reason in errors || kept++ < MAX_ERRORS_KEPT) errors[reason] = (errors[reason] || 0) + 1;
    else errors.other = (errors.other || 0) + 1;
  }
  const retries = {};
  for (const viewer of viewers) {
    for (const reason of viewer.retries) retries[reasonOf(reason)] = (retries[reasonOf(reason)] || 0) + 1;
  }
  send(process.stdout, {
    connected: true,
    retries,
    open_ms: viewers.filter((v) => v.open).map((v) => Math.round(v.openMs * 10) / 10),
    errors,
    announced: viewers.filter((v) => v.open && v.announced).length,
    closed_before_play: viewers.filter((v) => v.open && v.closed).length,
  });
  const duration = Number((await withTimeout(signals.play, 600000, 'play')).duration);
  send(process.stdout, await play(viewers, config, duration));
}

main().catch((error) => {
  process.stderr.write(`capacity_viewers: ${error?.stack ?? error}\n`);
  send(process.stdout, { error: String(error?.message ?? error) });
  process.exit(1);
});
