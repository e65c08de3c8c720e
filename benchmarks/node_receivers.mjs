// node-datachannel receivers for the *Python* seeder (issue 6): cheap native receivers, so that a
// benchmark row measures what the seeder can serve rather than what Python (aiortc) receivers
// can take in. One worker process holds several receivers; benchmarks/native.py starts
// --workers of them, like the Python receiver workers (benchmarks/receiver.py).
//
//   node benchmarks/node_receivers.mjs [--interop DIR]
//
// Protocol with benchmarks/native.py, one JSON object per line:
//   stdin  {"type": "config", "url", "count", "index", "size", "requests", "digests"}
//            requests: [{"segment": n, "hex": "<SegmentRequest bytes>"}], encoded by
//            p2pml_py.wire in Python (as for the Chromium receivers); digests: SHA-256 by segment
//   stdout {"loaded": true}                    once started, configured and warmed up (warmUp)
//   stdin  {"type": "connect"}         once every worker has started (their start-up is not timed)
//   stdout {"ready": true, "open_ms": [...], "errors": [...]}     once every receiver is connected
//   stdin  {"type": "go", "duration": SECONDS}
//   stdout {"done": true, "cpu_s", "bytes", "segments", "corrupt", "failures", "max_gap_s", ...}
//   then it waits for stdin to close (or {"type": "quit"}) and leaves.
//
// Each receiver does what the Chromium receiver does (benchmarks/chromium.py): POST /offer, answer
// with POST /answer, wait for the data channel the seeder opened, then in a loop send the
// SegmentRequest for segment n, collect the data messages (command chunks -- cstr|dstr .. cend|dend
// -- are skipped), check the segment's size and SHA-256, next segment, until the window ends.

import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import path from 'node:path';
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
const CONNECT_TIMEOUT_MS = 20000; // the seeder's own open_timeout is 20 s
// A download that gets no byte for this long has failed, as a Python receiver's does
// (benchmarks/receiver.py: SessionConfig(receive_timeout=2.0)). The receiver then stops: the
// seeder may still send the rest of that segment, which would be taken for the next one.
const STALL_MS = 2000;

function isCommand(message) {
  if (message.length < 8) return false;
  const head = message.toString('latin1', 0, 4);
  const tail = message.toString('latin1', message.length - 4);
  return (head === 'cstr' || head === 'dstr') && (tail === 'cend' || tail === 'dend');
}

async function postJson(url, body) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? '' : JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.json();
}

// ICE: the seeder (aiortc) gathers before /offer returns, so its offer already carries its host
// candidates on 127.0.0.1; we answer with our one candidate, 127.0.0.1 via bindAddress (libjuice
// never offers loopback addresses by itself, see RTC_CONFIG in native_dc.mjs). Holding the
// offer's candidates back until the answer is applied (what native_dc.mjs's sender must do with
// a libdatachannel peer) is not needed here: libjuice starts its checks at once, and aioice
// answers checks that come before the answer (it queues them as "early checks" until connect()),
// and the DTLS ClientHello that follows waits in aioice's receive queue until aiortc's DTLS
// transport starts, so nothing is lost and no retransmission timer is waited for.
async function connect(nd, config, index) {
  const started = performance.now();
  const offer = await postJson(`${config.url}/offer`);
  const pc = new nd.PeerConnection(`receiver-${config.index + index}`, RTC_CONFIG);
  const peer = {
    pc,
    dc: null,
    index: config.index + index,
    bytes: 0, // whole segments
    dataBytes: 0, // every segment byte that arrived during the window, partial segments too
    segments: 0,
    corrupt: 0,
    maxGap: 0,
    last: 0,
    waiting: false,
    got: 0,
    hash: null,
    done: null,
    closed: false,
    failed: '',
  };
  try {
    const opened = new Promise((resolve) => {
      pc.onDataChannel((dc) => {
        peer.dc = dc;
        dc.onMessage((message) => onMessage(peer, message));
        dc.onClosed(() => {
          peer.closed = true;
          peer.done?.(false);
        });
        resolve(); // libdatachannel announces a remote channel once it is open
      });
    });
    pc.setRemoteDescription(offer.sdp, 'offer'); // answers by itself (auto-negotiation)
    await gathered(pc);
    // The seeder replies once its side of the channel is open.
    await withTimeout(
      postJson(`${config.url}/answer`, { id: offer.id, sdp: pc.localDescription().sdp }),
      CONNECT_TIMEOUT_MS,
      'answer',
    );
    await withTimeout(opened, CONNECT_TIMEOUT_MS, 'data channel');
    return { peer, openMs: performance.now() - started };
  } catch (error) {
    try {
      pc.close();
    } catch {
      // failed anyway
    }
    throw error;
  }
}


function onMessage(peer, message) {
  if (typeof message === 'string') message = Buffer.from(message);
  const now = performance.now();
  if (peer.waiting && now - peer.last > peer.maxGap) peer.maxGap = now - peer.last;
  peer.last = now;
  if (isCommand(message) || !peer.hash) return; // commands; or bytes after the window
  peer.got += message.length;
  peer.dataBytes += message.length;
  peer.hash.update(message);
  if (peer.got >= peer.size) peer.done?.(true);
}

async function download(peer, request, size, digest, deadline) {
  peer.got = 0;
  peer.size = size;
  peer.hash = createHash('sha256');
  const finished = new Promise((resolve) => {
    peer.done = resolve;
  });
  const timer = setTimeout(() => peer.done?.('end'), Math.max(0, deadline - performance.now()));
  peer.waiting = true;
  peer.last = performance.now();
  try {
    peer.dc.sendMessageBinary(request);
    const result = await finished;
    if (result === true) {
      const ok = peer.got === size && peer.hash.digest('hex') === digest;
      if (!ok) peer.corrupt++;
      peer.bytes += size;
      peer.segments++;
      return true;
    }
    if (result === 'stall') {
      peer.maxGap = Math.max(peer.maxGap, performance.now() - peer.last);
      peer.failed = 'timeout';
    } else if (result === false) {
      peer.failed = 'closed';
    }
    return false;
  } catch (error) {
    peer.failed = peer.closed ? 'closed' : 'send_error';
    return false;
  } finally {
    clearTimeout(timer);
    peer.waiting = false;
    peer.done = null;
    peer.hash = null;
  }
}

async function run(peers, config, duration) {
  const requests = config.requests.map((r) => ({ segment: r.segment, bytes: Buffer.from(r.hex, 'hex') }));
  const deadline = performance.now() + duration * 1000;
  // One timer for all receivers: a download without a byte for STALL_MS has failed.
  const watchdog = setInterval(() => {
    const now = performance.now();
    for (const peer of peers) if (peer.waiting && now - peer.last > STALL_MS) peer.done?.('stall');
  }, 100);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  try {
    await Promise.all(
      peers.map(async (peer) => {
        for (let n = peer.index; n < peer.index + 1_000_000 && performance.now() < deadline; n++) {
          const request = requests[n % requests.length];
          const digest = config.digests[String(request.segment)];
          if (!(await download(peer, request.bytes, config.size, digest, deadline))) return;
        }
      }),
    );
  } finally {
    clearInterval(watchdog);
  }
  const cpu = process.cpuUsage(cpu0);
  const failures = {};
  for (const peer of peers) if (peer.failed) failures[peer.failed] = (failures[peer.failed] || 0) + 1;
  return {
    done: true,
    elapsed: (performance.now() - t0) / 1000,
    cpu_s: (cpu.user + cpu.system) / 1e6,
    sys_cpu_s: cpu.system / 1e6,
    bytes: peers.reduce((sum, p) => sum + p.bytes, 0),
    data_bytes: peers.reduce((sum, p) => sum + p.dataBytes, 0),
    segments: peers.reduce((sum, p) => sum + p.segments, 0),
    corrupt: peers.reduce((sum, p) => sum + p.corrupt, 0),
    failures,
    max_gap_s: Math.max(0, ...peers.map((p) => p.maxGap)) / 1000,
    per_receiver_bytes: peers.map((p) => p.bytes),
    closed: peers.filter((p) => p.closed).length,
  };
}

async function main() {
  const at = process.argv.indexOf('--interop');
  const interop =
    (at > 0 && process.argv[at + 1]) ||
    process.env.P2PML_INTEROP ||
    path.resolve(path.dirname(SCRIPT), '..', 'interop');
  const { nd } = loadModule(interop);
  const peers = [];
  let config = null;
  const { configured, signals } = workerControl(nd, peers, ['connect', 'go']);
  config = await withTimeout(configured, 60000, 'config');
  await warmUp(nd, config.url);
  send(process.stdout, { loaded: true });
  await withTimeout(signals.connect, 60000, 'connect');
  // Like benchmarks/receiver.py: this worker's receivers one after the other.
  const openMs = [];
  const errors = [];
  for (let i = 0; i < Math.min(config.count, 1000); i++) {
    try {
      const { peer, openMs: ms } = await connect(nd, config, i);
      peers.push(peer);
      openMs.push(ms);
    } catch (error) {
      errors.push(String(error?.message ?? error));
    }
  }
  send(process.stdout, { ready: true, open_ms: openMs, errors });
  const duration = Number((await withTimeout(signals.go, 600000, 'go')).duration);
  send(process.stdout, await run(peers, config, duration));
}

main().catch((error) => {
  process.stderr.write(`node_receivers: ${error?.stack ?? error}\n`);
  send(process.stdout, { error: String(error?.message ?? error) });
  process.exit(1);
});
