// Runs the real npm bittorrent-tracker Server (WebSocket only) on 127.0.0.1 for interop tests.
// Usage (from the directory whose node_modules/ holds bittorrent-tracker):
//   node tracker-server.mjs [intervalMs]
// Prints one JSON line {"port": N} once listening, then one JSON line per server event.
// Exits when stdin closes (the test process went away) or on SIGTERM.
//
// The package is loaded from <cwd>/node_modules, not resolved from this file's location: this
// script ships inside the Python package (p2pml_py/harness/web/node/) while the npm packages are
// installed elsewhere (interop/ in a checkout, `p2pml-py harness setup`'s cache otherwise), and
// interop/node/tracker-server.mjs is a symlink to it (node resolves imports from the real path).
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'

const serverModule = join(process.cwd(), 'node_modules', 'bittorrent-tracker', 'server.js')
const { default: Server } = await import(pathToFileURL(serverModule).href)

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
