// The native seed of the capacity benchmark (benchmarks/capacity.py): node-datachannel
// (libdatachannel: libjuice ICE, usrsctp SCTP, C++ threads) doing the Python seeder's job with
// the same HTTP API, so the two can be measured the same way in the same run.
//
//   node --expose-gc benchmarks/capacity_native_seed.mjs --config FILE [--interop DIR]
//
// FILE (written by benchmarks/capacity.py): {"segments_file", "size", "announce": [hex],
// "requests": [{"request", "segment", "data", "done", "chunks"}], "lifetime"}: the segments' bytes
// (one after the other in segments_file), the SegmentsAnnouncement to send on open, and for every
// SegmentRequest a viewer may send (matched byte for byte) the SegmentData and
// SegmentDataSendingCompleted commands to answer with and the sizes of the data messages (65535
// bytes but where p2pml_py.wire.split_segment_data shortens one) -- all encoded by p2pml_py.wire.
//
// HTTP on 127.0.0.1 (prints {"port": N, ...} once listening):
//   POST /offer {"peer_id", "sdp"} -> {"sdp": answer}: a PeerConnection answers the viewer's offer.
//   GET /stats[?heap=1] -> cpu_s (user + system, every thread), rss/peak KiB, connected, drops,
//       bytes uploaded, offer->open ms; with heap=1, after a full GC, heap_bytes =
//       process.memoryUsage() heapUsed + external (V8's and Buffers'; libdatachannel's own C++
//       allocations are not in it -- the RSS is).
//   POST /quit
//
// Serving: on open, the announcement; on a SegmentRequest, the SegmentData command, the segment
// in its messages with bufferedAmount backpressure (at most HIGH_WATERMARK queued, resumed at
// LOW_WATERMARK, as native_dc.mjs), then SegmentDataSendingCompleted. A new request supersedes
// an upload still running (no completion for that one), as the Python seeder does.
//
// Candidates: the viewer's offer carries its candidate; this side answers and is the DTLS client
// (a=setup:active). Applied with the offer, that candidate would let libjuice connect and send
// the DTLS ClientHello before the viewer has our answer -- the race native_dc.mjs describes
// (a ClientHello dropped and resent after 1 s, or "DTLS alert: unknown CA" failures). So the
// offer's candidates are held back: ICE starts when the viewer, answer in hand, sends its checks
// to our candidate (libjuice learns the viewer's address from them as a peer-reflexive
// candidate), and only then does the handshake begin. The held-back candidates are added
// HELD_CANDIDATES_MS later anyway, in case those checks never come.

import { readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

import { RTC_CONFIG, closePeers, gathered, loadModule, memoryKiB, splitCandidates } from './native_dc.mjs';

const SCRIPT = fileURLToPath(import.meta.url);
const HIGH_WATERMARK = 1024 * 1024;
const LOW_WATERMARK = 512 * 1024;
const MAX_BODY = 1024 * 1024;
const HELD_CANDIDATES_MS = 5000;

function parseArgs(argv) {
  const options = { config: '', interop: process.env.P2PML_INTEROP || path.resolve(path.dirname(SCRIPT), '..', 'interop') };
  for (let i = 0; i < argv.length; i += 2) {
    if (argv[i] === '--config') options.config = argv[i + 1];
    else if (argv[i] === '--interop') options.interop = argv[i + 1];
    else throw new Error(`bad argument ${argv[i]}`);
  }
  if (!options.config) throw new Error('--config FILE is required');
  return options;
}

function readBody(request) {
  return new Promise((resolve, reject) => {
    const parts = [];
    let size = 0;
    request.on('data', (part) => {
      size += part.length;
      if (size > MAX_BODY) {
        reject(new Error('body too large'));
        request.destroy();
      } else parts.push(part);
    });
    request.on('end', () => resolve(Buffer.concat(parts).toString('utf8')));
    request.on('error', reject);
  });
}

function reply(response, status, value) {
  const body = JSON.stringify(value);
  response.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  response.end(body);
}

async function main() {
  const options = parseArgs(process.argv.slice(2));
  const config = JSON.parse(readFileSync(options.config, 'utf8'));
  const { nd, version, library } = loadModule(options.interop);
  const store = readFileSync(config.segments_file);
  const announce = config.announce.map((hex) => Buffer.from(hex, 'hex'));
  const requests = new Map(); // request bytes (hex) -> what to send
  let longestRequest = 0;
  for (const r of config.requests) {
    const offset = r.segment * config.size;
    requests.set(r.request, {
      data: Buffer.from(r.data, 'hex'),
      done: Buffer.from(r.done, 'hex'),
      segment: store.subarray(offset, offset + config.size),
      chunks: r.chunks,
    });
    longestRequest = Math.max(longestRequest, r.request.length / 2);
  }

  const peers = new Set();
  const uploading = new Set();
  const openMs = [];
  const drops = {};
  const offerErrors = {};
  let connected = 0;
  let bytesUploaded = 0;
  let segmentsUploaded = 0;
  let unknownMessages = 0;
  let next = 0;

  const drop = (peer, reason) => {
    if (peer.closed) return;
    peer.closed = true;
    uploading.delete(peer);
    if (peer.open) {
      connected--;
      drops[reason] = (drops[reason] || 0) + 1;
    }
  };

  const pump = (peer) => {
    const upload = peer.upload;
    if (!upload || peer.closed) {
      uploading.delete(peer);
      return;
    }
    try {
      // Bounded: at most one call's worth of the segment's messages.
      for (let n = 0; n < 4096 && upload.index < upload.entry.chunks.length; n++) {
        if (peer.dc.bufferedAmount() >= HIGH_WATERMARK) return; // onBufferedAmountLow resumes
        const end = upload.offset + upload.entry.chunks[upload.index];
        peer.dc.sendMessageBinary(upload.entry.segment.subarray(upload.offset, end));
        bytesUploaded += end - upload.offset;
        upload.offset = end;
        upload.index++;
      }
      if (upload.index >= upload.entry.chunks.length) {
        peer.dc.sendMessageBinary(upload.entry.done);
        segmentsUploaded++;
        peer.upload = null;
        uploading.delete(peer);
      }
    } catch (error) {
      drop(peer, 'send failed');
    }
  };

  const onMessage = (peer, message) => {
    if (typeof message === 'string') message = Buffer.from(message);
    else if (!Buffer.isBuffer(message)) message = Buffer.from(message);
    const entry = message.length <= longestRequest ? requests.get(message.toString('hex')) : undefined;
    if (!entry) {
      unknownMessages++; // the viewer's announcement
      return;
    }
    try {
      peer.upload = { entry, offset: 0, index: 0 }; // supersedes one still running
      peer.dc.sendMessageBinary(entry.data);
      uploading.add(peer);
      pump(peer);
    } catch (error) {
      drop(peer, 'send failed');
    }
  };

  const offer = async (body) => {
    const arrived = performance.now();
    const { sdp, candidates, mid } = splitCandidates(String(body.sdp));
    const peer = { id: String(body.peer_id), pc: null, dc: null, open: false, closed: false, upload: null };
    const pc = new nd.PeerConnection(`seed-${next++}`, RTC_CONFIG);
    peer.pc = pc;
    peers.add(peer);
    pc.onDataChannel((dc) => {
      // libdatachannel announces a remote channel once it is open.
      peer.dc = dc;
      if (peer.closed) return;
      peer.open = true;
      connected++;
      openMs.push(performance.now() - arrived);
      dc.onMessage((message) => onMessage(peer, message));
      dc.onClosed(() => drop(peer, 'connection closed'));
      dc.setBufferedAmountLowThreshold(LOW_WATERMARK);
      dc.onBufferedAmountLow(() => pump(peer));
      try {
        for (const message of announce) dc.sendMessageBinary(message);
      } catch (error) {
        drop(peer, 'send failed');
      }
    });
    pc.onStateChange((state) => {
      if (state === 'failed' || state === 'closed') drop(peer, `connection ${state}`);
    });
    try {
      pc.setRemoteDescription(sdp, 'offer'); // answers by itself (auto-negotiation)
      await gathered(pc);
      const held = setTimeout(() => {
        try {
          if (!peer.open && !peer.closed) for (const c of candidates) pc.addRemoteCandidate(c, mid);
        } catch {
          // the connection went away meanwhile
        }
      }, HELD_CANDIDATES_MS);
      held.unref();
      return { sdp: pc.localDescription().sdp };
    } catch (error) {
      const key = String(error?.message ?? error).slice(0, 80);
      offerErrors[key] = (offerErrors[key] || 0) + 1;
      peer.closed = true;
      peers.delete(peer);
      try {
        pc.close();
      } catch {
        // failed anyway
      }
      return { error: key };
    }
  };

  const stats = (heap) => {
    const cpu = process.cpuUsage();
    const values = {
      time: performance.now() / 1000,
      cpu_s: (cpu.user + cpu.system) / 1e6,
      ...memoryKiB(),
      connected,
      drops: { ...drops },
      bytes_uploaded: bytesUploaded,
      segments_uploaded: segmentsUploaded,
      open_ms: openMs.map((v) => Math.round(v * 100) / 100),
      offers_answered: next,
      offer_errors: { ...offerErrors },
      unknown_messages: unknownMessages,
    };
    if (heap) {
      globalThis.gc?.();
      const memory = process.memoryUsage();
      values.heap_bytes = memory.heapUsed + memory.external;
    }
    return values;
  };

  let quitting = false;
  const quit = () => {
    if (quitting) return;
    quitting = true;
    clearInterval(tick);
    closePeers(peers);
    server.close();
    nd.cleanup(); // joins libdatachannel's threads: exiting under them can abort the process
    process.exit(0);
  };

  const server = http.createServer(async (request, response) => {
    try {
      const url = new URL(request.url, 'http://127.0.0.1');
      if (request.method === 'POST' && url.pathname === '/offer') {
        const body = JSON.parse(await readBody(request));
        reply(response, 200, await offer(body));
      } else if (request.method === 'GET' && url.pathname === '/stats') {
        reply(response, 200, stats(url.searchParams.get('heap') === '1'));
      } else if (request.method === 'POST' && url.pathname === '/quit') {
        reply(response, 200, {});
        setImmediate(quit);
      } else {
        reply(response, 404, { error: 'not found' });
      }
    } catch (error) {
      reply(response, 400, { error: String(error?.message ?? error) });
    }
  });
  server.keepAliveTimeout = 60000;
  // A safety net: onBufferedAmountLow only fires on a downward crossing of the threshold.
  const tick = setInterval(() => uploading.forEach(pump), 100);
  setTimeout(quit, (config.lifetime || 900) * 1000).unref();
  process.on('SIGTERM', quit);
  // A join burst is hundreds of connections at once: a short backlog would drop SYNs.
  server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, () => {
    process.stdout.write(
      `${JSON.stringify({
        port: server.address().port,
        node: process.version,
        node_datachannel: version,
        libdatachannel: library,
      })}\n`,
    );
  });
}

main().catch((error) => {
  process.stderr.write(`capacity_native_seed: ${error?.stack ?? error}\n`);
  process.stdout.write(`${JSON.stringify({ error: String(error?.message ?? error) })}\n`);
  process.exit(1);
});
