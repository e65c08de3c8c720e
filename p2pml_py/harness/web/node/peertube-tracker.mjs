// A PeerTube instance's tracker for interop tests: the npm bittorrent-tracker Server behind the
// same filter and routes PeerTube puts in front of it (server/core/controllers/tracker.ts in
// Chocobozzz/PeerTube), on 127.0.0.1.
//
// Usage (from the directory whose node_modules/ holds bittorrent-tracker and ws):
//   node peertube-tracker.mjs KNOWN_HASHES.json [--interval-ms N] [--block-ms N]
//
// KNOWN_HASHES.json: a JSON array of info hashes in hex (40 lowercase digits), the form the
// tracker's filter sees: PeerTube stores hex(utf8(p2p-media-loader's 20-char info hash)).
//
// What PeerTube does, and so this script:
// * the tracker Server runs with http, udp and ws off; one HTTP server routes to it:
//   GET /tracker/announce and /tracker/scrape -> onHttpRequest (bencoded answers), the WebSocket
//   upgrade of /tracker/socket -> a ws WebSocketServer({noServer: true}) -> onWebSocketConnection;
// * filter(infoHash, params, cb): a known hash passes; an unknown one is refused with
//   "Unknown infoHash <hex> requested by ip <ip>", and over a WebSocket the IP is also blocked
//   (3 minutes, TRACKER_RATE_LIMITS.BLOCK_IP_LIFETIME) and the socket closed on the next tick;
//   over HTTP nothing is blocked;
// * a blocked IP's upgrade of /tracker/socket is answered "HTTP/1.1 403 Forbidden" and dropped.
// The block list is bounded like PeerTube's LRU (LRU_CACHE.TRACKER_IPS.MAX_SIZE = 100000).
//
// stdout: one JSON line per event -- {"port": N} once listening, then {"event": ...}:
//   announce {info_hash_hex, peer_id_hex, ip, type, known}  (every announce the filter sees)
//   blocked {ip}      an IP put on the block list
//   refused {ip}      a blocked IP's WebSocket upgrade answered 403
//   reloaded {count}  the known-hash file was read again (SIGHUP or a "reload" stdin line)
//   unblocked {count} the block list was cleared (an "unblock" stdin line)
//   warning {message} / error {message}  the tracker Server's own events
// Exits when stdin closes (the test process went away) or on SIGTERM.
//
// Packages are loaded from <cwd>/node_modules (see tracker-server.mjs for why).
import { readFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { createInterface } from 'node:readline'

const load = path => import(pathToFileURL(join(process.cwd(), 'node_modules', ...path)).href)
const { default: TrackerServer } = await load(['bittorrent-tracker', 'server.js'])
const { WebSocketServer } = await load(['ws', 'wrapper.mjs'])

const out = obj => process.stdout.write(JSON.stringify(obj) + '\n')

const args = process.argv.slice(2)
const knownPath = args[0]
if (!knownPath) {
  process.stderr.write(
    'usage: peertube-tracker.mjs KNOWN_HASHES.json [--interval-ms N] [--block-ms N]\n'
  )
  process.exit(2)
}
const option = (name, fallback) => {
  const i = args.indexOf(name)
  if (i < 0) return fallback
  const value = Number(args[i + 1])
  if (!Number.isFinite(value) || value <= 0) {
    process.stderr.write(`${name}: expected a positive number, got ${args[i + 1]}\n`)
    process.exit(2)
  }
  return value
}
const intervalMs = option('--interval-ms', undefined)
const blockMs = option('--block-ms', 3 * 60 * 1000)
const BLOCK_MAX = 100000

let known = new Set()
function reload () {
  const list = JSON.parse(readFileSync(knownPath, 'utf8'))
  if (!Array.isArray(list) || !list.every(h => typeof h === 'string' && /^[0-9a-f]{40}$/.test(h))) {
    throw new Error(`${knownPath}: expected a JSON array of 40-digit lowercase hex info hashes`)
  }
  known = new Set(list)
  out({ event: 'reloaded', count: known.size })
}
reload()

// ip -> expiry (ms since epoch); Map keeps insertion order, so the first key is the oldest.
const blocked = new Map()
function block (ip) {
  blocked.delete(ip)
  blocked.set(ip, Date.now() + blockMs)
  while (blocked.size > BLOCK_MAX) blocked.delete(blocked.keys().next().value)
  out({ event: 'blocked', ip })
}
function isBlocked (ip) {
  const expiry = blocked.get(ip)
  if (expiry === undefined) return false
  if (expiry > Date.now()) return true
  blocked.delete(ip)
  return false
}

const stripMapped = ip => String(ip || '').replace(/^::ffff:/, '')

const tracker = new TrackerServer({
  http: false,
  udp: false,
  ws: false,
  stats: false,
  interval: intervalMs,
  filter (infoHash, params, cb) {
    const ip = params.type === 'ws' ? params.ip : params.httpReq.ip
    const isKnown = known.has(infoHash)
    out({
      event: 'announce',
      info_hash_hex: infoHash,
      peer_id_hex: params.peer_id,
      ip,
      type: params.type,
      known: isKnown
    })
    if (isKnown) return cb()
    cb(new Error(`Unknown infoHash ${infoHash} requested by ip ${ip}`))
    if (params.type === 'ws') {
      block(ip)
      // PeerTube closes on the next tick so the failure reason goes out first.
      setTimeout(() => params.socket.close(), 0)
    }
  }
})
tracker.on('error', err => out({ event: 'error', message: err.message }))
tracker.on('warning', err => out({ event: 'warning', message: err.message }))

const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, clientTracking: false })
wss.on('connection', (ws, req) => {
  // PeerTube sets ws.ip itself (proxy-addr) and never sets upgradeReq, so bittorrent-tracker
  // keeps these instead of reading the request.
  ws.ip = stripMapped(req.socket.remoteAddress)
  ws.port = req.socket.remotePort
  ws.addr = `${ws.ip}:${ws.port}`
  ws.headers = req.headers
  tracker.onWebSocketConnection(ws)
})

const server = createServer((req, res) => {
  const path = req.url.split('?')[0]
  const action = { '/tracker/announce': 'announce', '/tracker/scrape': 'scrape' }[path]
  if (req.method !== 'GET' || !action) {
    res.statusCode = 404
    res.end('Not Found')
    return
  }
  req.ip = stripMapped(req.socket.remoteAddress) // what express puts in req.ip
  tracker.onHttpRequest(req, res, { action })
})
server.on('upgrade', (req, socket, head) => {
  if (req.url !== '/tracker/socket') {
    socket.destroy()
    return
  }
  const ip = stripMapped(req.socket.remoteAddress)
  if (isBlocked(ip)) {
    out({ event: 'refused', ip })
    socket.write('HTTP/1.1 403 Forbidden\r\n\r\n')
    socket.destroy()
    return
  }
  wss.handleUpgrade(req, socket, head, ws => wss.emit('connection', ws, req))
})

server.listen(0, '127.0.0.1', () => out({ port: server.address().port }))

const command = line => {
  const text = line.trim()
  try {
    if (text === 'reload') reload()
    else if (text === 'unblock') {
      const count = blocked.size
      blocked.clear()
      out({ event: 'unblocked', count })
    } else if (text) out({ event: 'warning', message: `unknown command ${text}` })
  } catch (err) {
    out({ event: 'error', message: err.message })
  }
}
const shutdown = () => {
  tracker.close()
  server.close(() => process.exit(0))
  setTimeout(() => process.exit(0), 1000).unref()
}
createInterface({ input: process.stdin }).on('line', command).on('close', shutdown)
process.on('SIGHUP', () => command('reload'))
process.on('SIGTERM', shutdown)
