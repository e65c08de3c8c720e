// Runs the real npm bittorrent-tracker Server (WebSocket only) on 127.0.0.1 for interop tests.
// Usage: node tracker-server.mjs [intervalMs]
// Prints one JSON line {"port": N} once listening, then one JSON line per server event.
// Exits when stdin closes (the test process went away) or on SIGTERM.
import Server from 'bittorrent-tracker/server'

const intervalMs = Number(process.argv[2] || 0) || undefined
const server = new Server({ udp: false, http: false, ws: true, stats: false, interval: intervalMs })
const out = obj => process.stdout.write(JSON.stringify(obj) + '\n')

server.on('error', err => out({ event: 'error', message: err.message }))
server.on('warning', err => out({ event: 'warning', message: err.message }))
server.on('start', peerId => out({ event: 'start', peer_id_hex: peerId }))
server.on('stop', peerId => out({ event: 'stop', peer_id_hex: peerId }))

server.listen(0, '127.0.0.1', () => {
  out({ port: server.http.address().port })
})

const shutdown = () => server.close(() => process.exit(0))
process.stdin.on('end', shutdown)
process.stdin.resume()
process.on('SIGTERM', shutdown)
