// The native reference of the seeder benchmark (issue 6): node-datachannel (libdatachannel:
// libjuice ICE, usrsctp SCTP, C++ threads) doing what benchmarks/seeder.py does with aiortc --
// one sender process streaming 2 MiB "segments" in 64 KiB messages to N receivers that live in
// other processes -- so the Python rows can be given as ratios to it (benchmarks/native.py).
//
//   node benchmarks/native_dc.mjs sender --receivers 10 --workers 3 --duration 10
//       connects the receivers, streams for --duration seconds, prints ONE JSON line (the result)
//   node benchmarks/native_dc.mjs receivers
//       a receiver worker; the sender spawns these itself and talks to them over stdin/stdout
//
// Modules come from interop/node_modules (interop/package.json pins node-datachannel; its
// prebuilt binary arrives as the @node-datachannel/<platform> optional dependency), or from the
// interop directory given by --interop / P2PML_INTEROP.
//
// Signalling: JSON lines over the pipes between the sender and its worker processes. Every wait
// is bounded; receivers exit when their stdin closes, the sender kills its workers on exit.
//
// Measured by the sender over a fixed window of --duration seconds, starting once every receiver
// is connected and acknowledged "go": bytes the receivers got in that window (they count; their
// count is read back at the end), the sender's CPU time (process.cpuUsage: user + system, all of
// its threads; the system part separately) and the receiver workers' (the same, over their
// window), the sender's RSS and peak RSS (VmRSS/VmHWM from /proc/self/status, the peak reset before
// the window like benchmarks/seeder.py does), offer-to-open latency per connection (from creating
// the PeerConnection and its data channel, which makes the offer, to the channel's open event),
// and the longest gap between two messages at any receiver during the window (counted from its
// first message in the window; silence until the window's end counts as a gap too).

import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

const SCRIPT = fileURLToPath(import.meta.url);
const HIGH_WATERMARK = 1024 * 1024; // stop queueing above this (our Python sender's watermark)
const LOW_WATERMARK = 512 * 1024; // onBufferedAmountLow fires when the queue drains to this
const CONNECT_TIMEOUT_MS = 15000;
const GATHER_TIMEOUT_MS = 5000;

// libjuice never gathers loopback addresses (RFC 8445 5.1.1.1: "Addresses from a loopback
// interface MUST NOT be included"), so inside the benchmark's network namespace, where lo is the
// only interface, a default PeerConnection offers no candidate at all and never connects. With
// bindAddress set, libjuice binds its UDP socket to that one address and offers it as the only
// host candidate: "a=candidate:1 1 UDP ... 127.0.0.1 <port> typ host". No STUN/TURN servers, so
// no traffic leaves 127.0.0.0/8.
export const RTC_CONFIG = { iceServers: [], bindAddress: '127.0.0.1' };

function parseArgs(argv) {
  const options = {
    mode: argv[0] || 'sender',
    receivers: 1,
    workers: 3,
    duration: 10,
    segmentSize: 2 * 1024 * 1024,
    messageSize: 64 * 1024,
    interop: process.env.P2PML_INTEROP || path.resolve(path.dirname(SCRIPT), '..', 'interop'),
  };
  const names = {
    '--receivers': 'receivers',
    '--workers': 'workers',
    '--duration': 'duration',
    '--segment-size': 'segmentSize',
    '--message-size': 'messageSize',
    '--interop': 'interop',
  };
  for (let i = 1; i < argv.length; i += 2) {
    const key = names[argv[i]];
    if (!key || i + 1 >= argv.length) throw new Error(`bad argument ${argv[i]}`);
    options[key] = key === 'interop' ? argv[i + 1] : Number(argv[i + 1]);
  }
  for (const key of ['receivers', 'workers', 'duration', 'segmentSize', 'messageSize']) {
    if (!(options[key] > 0)) throw new Error(`--${key} must be a positive number`);
  }
  options.receivers = Math.min(Math.floor(options.receivers), 1000);
  options.workers = Math.max(1, Math.min(Math.floor(options.workers), options.receivers));
  options.messageSize = Math.min(Math.floor(options.messageSize), 256 * 1024);
  return options;
}

export function loadModule(interop) {
  const require = createRequire(path.join(interop, 'package.json'));
  const nd = require('node-datachannel');
  // The package's "exports" map hides its package.json; read it from where the module resolved.
  const main = require.resolve('node-datachannel');
  let version = '?';
  for (let dir = path.dirname(main), i = 0; i < 6; i++, dir = path.dirname(dir)) {
    try {
      const manifest = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8'));
      if (manifest.name === 'node-datachannel') {
        version = manifest.version;
        break;
      }
    } catch {
      // not this directory
    }
  }
  return { nd, version, library: nd.getLibraryVersion() };
}

export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timeout: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// Non-trickle signalling: wait until the description carries its candidate.
export function gathered(pc) {
  return withTimeout(
    new Promise((resolve) => {
      const check = () => {
        if (pc.gatheringState() === 'complete') resolve();
      };
      pc.onGatheringStateChange(check);
      check();
    }),
    GATHER_TIMEOUT_MS,
    'ICE gathering',
  );
}

export function memoryKiB() {
  const values = { rss_kib: 0, peak_kib: 0 };
  for (const line of readFileSync('/proc/self/status', 'ascii').split('\n')) {
    const [key, rest] = line.split(':');
    if (key === 'VmRSS') values.rss_kib = parseInt(rest, 10);
    if (key === 'VmHWM') values.peak_kib = parseInt(rest, 10);
  }
  return values;
}

function resetPeakMemory() {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
}

// The offer without its candidate lines, and those candidates, to send once the answer is in.
export function splitCandidates(sdp) {
  const lines = sdp.split(/\r?\n/);
  const candidates = lines.filter((l) => l.startsWith('a=candidate:')).map((l) => l.slice(2));
  const mid = lines.find((l) => l.startsWith('a=mid:'))?.slice(6) ?? '0';
  const kept = lines.filter((l) => !l.startsWith('a=candidate:') && l !== 'a=end-of-candidates');
  return { sdp: kept.join('\r\n'), candidates, mid };
}

export function send(stream, message) {
  stream.write(`${JSON.stringify(message)}\n`);
}

// JSON lines from a stream, one callback per object; stray non-JSON lines are ignored.
export function onLines(stream, callback) {
  const lines = readline.createInterface({ input: stream, crlfDelay: Infinity });
  lines.on('line', (line) => {
    let message;
    try {
      message = JSON.parse(line);
    } catch {
      return;
    }
    if (message && typeof message === 'object') callback(message);
  });
  return lines;
}

// A receiver worker, before anything is timed, this process's one-time costs: node's HTTP client (fetch loads it on
// first use) and libdatachannel's set-up, with one data channel between two peers of this
// process. Without it a worker's first connection took 330-480 ms (the seeder timed 130-200 ms
// of it from offer to open), the later ones 30-120 ms -- as the Python receivers' first did
// before p2pml_py.rtc.aiortc_backend.tuning.warm_up(). The offer's candidate follows the answer, as in
// native_dc.mjs.
const WARM_UP_TIMEOUT_MS = 20000;
export async function warmUp(nd, url) {
  const response = await withTimeout(fetch(`${url}/stats`), WARM_UP_TIMEOUT_MS, 'warm-up fetch');
  await response.json();
  const offerer = new nd.PeerConnection('warm-up-offerer', RTC_CONFIG);
  const answerer = new nd.PeerConnection('warm-up-answerer', RTC_CONFIG);
  try {
    const opened = new Promise((resolve) => answerer.onDataChannel(() => resolve()));
    offerer.createDataChannel('warm-up');
    await gathered(offerer);
    const { sdp, candidates, mid } = splitCandidates(offerer.localDescription().sdp);
    answerer.setRemoteDescription(sdp, 'offer');
    await gathered(answerer);
    offerer.setRemoteDescription(answerer.localDescription().sdp, 'answer');
    for (const candidate of candidates) answerer.addRemoteCandidate(candidate, mid);
    await withTimeout(opened, WARM_UP_TIMEOUT_MS, 'warm-up data channel');
  } finally {
    offerer.close();
    answerer.close();
  }
}

// Closes the peer connection of every item of `peers` (objects with a .pc), whatever its state.
export function closePeers(peers) {
  for (const peer of peers) {
    try {
      peer.pc?.close();
    } catch {
      // closing anyway
    }
  }
}

// The control side of a worker process (node_receivers.mjs, capacity_viewers.mjs): JSON lines on
// stdin. `configured` resolves with the {"type": "config"} message and `signals[type]` with the
// first message of each type in `types`; {"type": "quit"} or the end of stdin (the orchestrator is
// done with us, or gone) closes `peers` and libdatachannel, then exits; so does an hour's wait.
export function workerControl(nd, peers, types) {
  let leaving = false;
  const quit = (code) => {
    if (leaving) return;
    leaving = true;
    closePeers(peers);
    nd.cleanup(); // joins libdatachannel's threads: exiting under them can abort the process
    process.exit(code);
  };
  process.stdin.on('end', () => quit(0));
  setTimeout(() => quit(1), 3600 * 1000).unref();
  const resolvers = {};
  const signals = {};
  for (const type of types) {
    signals[type] = new Promise((resolve) => {
      resolvers[type] = resolve;
    });
  }
  const configured = new Promise((resolve) => {
    onLines(process.stdin, (message) => {
      if (message.type === 'config') resolve(message);
      else if (message.type === 'quit') quit(0);
      else resolvers[message.type]?.(message);
    });
  });
  return { configured, signals, quit };
}

// ---------------------------------------------------------------------------------------------
// Receiver worker: answers offers, counts bytes and gaps.

async function receivers(options) {
  const { nd } = loadModule(options.interop);
  send(process.stdout, { type: 'ready' }); // process and module loaded: offers may come
  const peers = new Map();
  let measuring = false;
  let started = 0;
  let cpu0 = null;

  const onOffer = async ({ id, sdp }) => {
    const peer = { pc: null, bytes: 0, windowBytes: 0, last: 0, maxGap: 0, closed: false };
    peers.set(id, peer);
    try {
      const pc = new nd.PeerConnection(`receiver-${id}`, RTC_CONFIG);
      peer.pc = pc;
      pc.onDataChannel((dc) => {
        peer.dc = dc;
        dc.onMessage((message) => {
          const size = message.byteLength ?? message.length;
          peer.bytes += size;
          if (!measuring) return;
          const now = performance.now();
          if (peer.last && now - peer.last > peer.maxGap) peer.maxGap = now - peer.last;
          peer.last = now;
          peer.windowBytes += size;
        });
        dc.onClosed(() => {
          peer.closed = true;
        });
      });
      pc.setRemoteDescription(sdp, 'offer'); // answers by itself (auto-negotiation)
      await gathered(pc);
      send(process.stdout, { type: 'answer', id, sdp: pc.localDescription().sdp });
    } catch (error) {
      send(process.stdout, { type: 'answer', id, error: String(error) });
    }
  };

  onLines(process.stdin, (message) => {
    if (message.type === 'offer') {
      onOffer(message);
    } else if (message.type === 'candidates') {
      const peer = peers.get(message.id);
      try {
        for (const candidate of message.candidates) peer?.pc?.addRemoteCandidate(candidate, message.mid);
      } catch (error) {
        process.stderr.write(`native_dc receiver ${message.id}: ${error}\n`);
      }
    } else if (message.type === 'go') {
      started = performance.now();
      cpu0 = process.cpuUsage();
      for (const peer of peers.values()) {
        peer.windowBytes = 0;
        peer.maxGap = 0;
        peer.last = 0; // gaps count from the first message of the window
      }
      measuring = true;
      send(process.stdout, { type: 'going' });
    } else if (message.type === 'end') {
      measuring = false;
      const now = performance.now();
      const cpu = process.cpuUsage(cpu0 ?? undefined);
      const stats = [...peers.entries()].map(([id, peer]) => ({
        id,
        window_bytes: peer.windowBytes,
        bytes: peer.bytes,
        // Silence until the end counts too; a receiver that got nothing waited the whole window.
        max_gap_ms: Math.max(peer.maxGap, now - (peer.last || started)),
        closed: peer.closed,
      }));
      // This worker's CPU over the window (user + system, every thread), for all its receivers.
      send(process.stdout, { type: 'stats', receivers: stats, cpu_s: (cpu.user + cpu.system) / 1e6 });
    } else if (message.type === 'quit') {
      quit();
    }
  });
  const quit = () => {
    closePeers(peers.values());
    nd.cleanup(); // joins libdatachannel's threads: exiting under them can abort the process
    process.exit(0);
  };
  process.stdin.on('end', quit); // the sender went away
  setTimeout(quit, 3600 * 1000).unref();
}

// ---------------------------------------------------------------------------------------------
// Sender: spawns the workers, connects every receiver, streams for a fixed window.

class Worker {
  constructor(options, index) {
    this.index = index;
    this.pending = new Map();
    this.waiters = [];
    // P2PML_BENCH_RECEIVER_CPUS (set by the Python orchestrator): keep receivers off the
    // sender's CPU, as the Python rows do.
    const cpus = process.env.P2PML_BENCH_RECEIVER_CPUS;
    const argv = [process.execPath, SCRIPT, 'receivers', '--interop', options.interop];
    this.process = spawn(cpus ? 'taskset' : argv[0], cpus ? ['-c', cpus, ...argv] : argv.slice(1), {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    this.exited = new Promise((resolve) => this.process.on('exit', resolve));
    const ready = new Promise((resolve) => this.waiters.push({ type: 'ready', resolve }));
    const died = this.exited.then((code) => {
      throw new Error(`receiver worker ${index} exited (${code}) before it was ready`);
    });
    died.catch(() => {});
    this.ready = withTimeout(Promise.race([ready, died]), 30000, `worker ${index} start`);
    this.process.on('error', () => {});
    this.process.stdin.on('error', () => {}); // EPIPE if it died: noticed by the timeouts
    onLines(this.process.stdout, (message) => {
      if (message.type === 'answer') {
        const resolve = this.pending.get(message.id);
        this.pending.delete(message.id);
        resolve?.(message);
      } else {
        const waiter = this.waiters.findIndex((w) => w.type === message.type);
        if (waiter >= 0) this.waiters.splice(waiter, 1)[0].resolve(message);
      }
    });
  }

  offer(id, sdp) {
    const answer = new Promise((resolve) => this.pending.set(id, resolve));
    send(this.process.stdin, { type: 'offer', id, sdp });
    return withTimeout(answer, CONNECT_TIMEOUT_MS, `answer from worker ${this.index}`);
  }

  candidates(id, candidates, mid) {
    send(this.process.stdin, { type: 'candidates', id, candidates, mid });
  }

  request(type, reply, ms) {
    const answer = new Promise((resolve) => this.waiters.push({ type: reply, resolve }));
    send(this.process.stdin, { type });
    return withTimeout(answer, ms, `${reply} from worker ${this.index}`);
  }

  stop() {
    try {
      send(this.process.stdin, { type: 'quit' });
      this.process.stdin.end();
    } catch {
      // already gone
    }
    const timer = setTimeout(() => this.process.kill('SIGKILL'), 3000);
    return this.exited.finally(() => clearTimeout(timer));
  }
}

function split(total, parts) {
  return Array.from({ length: parts }, (_, i) => Math.floor(total / parts) + (i < total % parts ? 1 : 0));
}

function failureReason(error) {
  const text = String(error?.message ?? error);
  if (text.startsWith('timeout')) return 'timeout';
  if (text.includes('closed')) return 'closed';
  return 'error';
}

async function sender(options) {
  const { nd, version, library } = loadModule(options.interop);
  const logLevel = process.env.P2PML_NATIVE_DC_LOG; // e.g. Debug: libdatachannel's log on stderr
  if (logLevel) {
    nd.initLogger(logLevel, (level, message) => {
      process.stderr.write(`${(performance.now() / 1000).toFixed(3)} ${level} ${message}\n`);
    });
  }
  const segment = Buffer.alloc(options.segmentSize);
  for (let i = 0; i < segment.length; i++) segment[i] = (i * 2654435761) >>> 24; // not all zeros

  const failures = {};
  const errors = []; // the first few messages, to tell what the failures were
  const fail = (reason, error) => {
    failures[reason] = (failures[reason] || 0) + 1;
    if (error !== undefined && errors.length < 5) errors.push(String(error?.message ?? error));
  };
  const peers = [];
  let running = false;

  const pump = (peer) => {
    if (!running || peer.closed) return;
    try {
      // Bounded: at most HIGH_WATERMARK / messageSize + 1 messages per call.
      for (let n = 0; n < 1024 && peer.dc.bufferedAmount() < HIGH_WATERMARK; n++) {
        const end = Math.min(peer.offset + options.messageSize, segment.length);
        peer.dc.sendMessageBinary(segment.subarray(peer.offset, end)); // copies; false = queued
        peer.queued += end - peer.offset;
        peer.offset = end >= segment.length ? 0 : end;
      }
    } catch (error) {
      if (!peer.closed) {
        peer.closed = true;
        fail(failureReason(error) === 'closed' ? 'closed' : 'send_error', error);
      }
    }
  };

  // The sender's candidate goes to the receiver only after the answer is applied (trickle ICE;
  // the offer carries none). The receiver is the DTLS client (a=setup:active in its answer), and
  // with the candidate in the offer it would connect before the answer had come back through the
  // signalling pipe: its ClientHello then reached a sender with no DTLS transport yet (dropped,
  // resent after libdatachannel's 1 s DTLS retransmission timeout), and with libdatachannel 0.24.5
  // about one connection in ten failed outright -- the client certificate was checked while the
  // answer's fingerprint was not stored yet ("DTLS alert: unknown CA ... certificate verify
  // failed", then "Got a remote candidate without ICE transport" from setRemoteDescription).
  // P2PML_NATIVE_DC_LOG=Debug (or Info) shows libdatachannel's log on stderr.
  const connect = async (worker, id) => {
    const started = performance.now();
    const peer = { id, pc: null, dc: null, offset: 0, queued: 0, closed: false, openMs: 0 };
    try {
      const pc = new nd.PeerConnection(`sender-${id}`, RTC_CONFIG);
      peer.pc = pc;
      const dc = pc.createDataChannel('0123456789abcdef0123456789abcdef01234567'); // makes the offer
      peer.dc = dc;
      const opened = new Promise((resolve, reject) => {
        dc.onOpen(resolve);
        dc.onError((error) => reject(new Error(`error: ${error}`)));
        dc.onClosed(() => {
          if (running && !peer.closed) fail('closed');
          peer.closed = true;
          reject(new Error('closed'));
        });
      });
      opened.catch(() => {});
      await gathered(pc);
      const { sdp, candidates, mid } = splitCandidates(pc.localDescription().sdp);
      const answer = await worker.offer(id, sdp);
      if (answer.error) throw new Error(`receiver: ${answer.error}`);
      pc.setRemoteDescription(answer.sdp, 'answer');
      worker.candidates(id, candidates, mid);
      await withTimeout(opened, CONNECT_TIMEOUT_MS, 'data channel open');
      peer.openMs = performance.now() - started;
      dc.setBufferedAmountLowThreshold(LOW_WATERMARK);
      dc.onBufferedAmountLow(() => pump(peer));
      return peer;
    } catch (error) {
      fail(failureReason(error), error);
      peer.closed = true;
      try {
        peer.pc?.close();
      } catch {
        // failed anyway
      }
      return null;
    }
  };

  const workers = split(options.receivers, options.workers).map((_, i) => new Worker(options, i));
  const counts = split(options.receivers, options.workers);
  const cleanup = async () => {
    running = false;
    closePeers(peers);
    await Promise.all(workers.map((w) => w.stop()));
    nd.cleanup(); // joins libdatachannel's threads: exiting under them can abort the process
  };

  try {
    await Promise.all(workers.map((w) => w.ready));
    const base = memoryKiB();
    let afterFirst = 0;
    // Like the Python benchmark: each worker's receivers one after the other, workers in parallel.
    let nextId = 0;
    await Promise.all(
      workers.map(async (worker, w) => {
        const ids = Array.from({ length: counts[w] }, () => nextId++);
        for (const id of ids) {
          const peer = await connect(worker, id);
          if (peer) {
            peers.push(peer);
            if (!afterFirst) afterFirst = memoryKiB().rss_kib;
          }
        }
      }),
    );
    const idle = memoryKiB();
    resetPeakMemory();

    await Promise.all(workers.map((w) => w.request('go', 'going', 10000)));
    // The orchestrator counts this process's instructions between these two lines.
    send(process.stdout, { type: 'window', at: 'start' });
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    running = true;
    const queued0 = peers.reduce((sum, p) => sum + p.queued, 0);
    for (const peer of peers) pump(peer);
    // A safety net: onBufferedAmountLow only fires on a downward crossing of the threshold.
    const tick = setInterval(() => peers.forEach(pump), 50);
    await new Promise((resolve) => setTimeout(resolve, options.duration * 1000));
    clearInterval(tick);
    const t1 = performance.now();
    const cpu1 = process.cpuUsage(cpu0);
    send(process.stdout, { type: 'window', at: 'end' });
    const end = memoryKiB();
    running = false;
    const queued = peers.reduce((sum, p) => sum + p.queued, 0) - queued0;
    const stats = await Promise.all(workers.map((w) => w.request('end', 'stats', 10000)));
    const received = stats.flatMap((s) => s.receivers);
    const connected = new Set(peers.map((p) => p.id));
    const mine = received.filter((r) => connected.has(r.id));
    const windowS = (t1 - t0) / 1000;
    return {
      node: process.version,
      node_datachannel: version,
      libdatachannel: library,
      receivers: options.receivers,
      workers: options.workers,
      connected: peers.length,
      segment_size: options.segmentSize,
      message_size: options.messageSize,
      window_s: windowS,
      received_bytes: mine.reduce((sum, r) => sum + r.window_bytes, 0),
      queued_bytes: queued,
      per_receiver_bytes: mine.map((r) => r.window_bytes),
      cpu_s: (cpu1.user + cpu1.system) / 1e6,
      sys_cpu_s: cpu1.system / 1e6,
      receivers_cpu_s: stats.reduce((sum, s) => sum + (s.cpu_s ?? 0), 0),
      open_ms: peers.map((p) => p.openMs),
      max_gap_ms: Math.max(0, ...mine.map((r) => r.max_gap_ms)),
      rss_base_kib: base.rss_kib,
      rss_after_first_kib: afterFirst,
      rss_idle_kib: idle.rss_kib,
      rss_end_kib: end.rss_kib,
      peak_kib: end.peak_kib,
      failures,
      errors,
    };
  } finally {
    await cleanup();
  }
}

async function main() {
  let options;
  try {
    options = parseArgs(process.argv.slice(2));
  } catch (error) {
    process.stdout.write(`${JSON.stringify({ error: String(error.message) })}\n`);
    process.exit(2);
  }
  if (options.mode === 'receivers') {
    try {
      await receivers(options);
    } catch (error) {
      process.stderr.write(`native_dc receivers: ${error.stack ?? error}\n`);
      process.exit(1);
    }
    return;
  }
  let result;
  try {
    const limit = setTimeout(() => {
      process.stdout.write(`${JSON.stringify({ error: 'timeout: the whole run' })}\n`);
      process.exit(1);
    }, (60 + options.duration + 3 * options.receivers) * 1000);
    limit.unref();
    result = await sender(options);
  } catch (error) {
    result = { error: String(error?.message ?? error) };
  }
  process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(result.error ? 1 : 0));
}

// Only when run as a script: benchmarks/node_receivers.mjs imports the helpers above.
if (process.argv[1] && path.resolve(process.argv[1]) === SCRIPT) main();
