// Runs the real npm bittorrent-tracker Client (its WebSocketTracker talks to the tracker exactly
// as in a browser) with the signalling-only WebRTC stub of stub-webrtc.mjs.
// Usage: node tracker-client.mjs '{"announce": "ws://...", "infoHash": "<20 chars>",
//                                  "peerId": "<20 chars>", "numwant": 5}'
// Prints JSON lines for client events; reads commands from stdin: "scrape", "stop", "destroy".
import { register } from 'node:module'
import readline from 'node:readline'

register('./stub-webrtc-hooks.mjs', import.meta.url)
const { default: Client } = await import('bittorrent-tracker')

const opts = JSON.parse(process.argv[2])
const out = obj => process.stdout.write(JSON.stringify(obj) + '\n')
const hex = s => Buffer.from(s, 'latin1').toString('hex')

const client = new Client({
  infoHash: hex(opts.infoHash),
  peerId: hex(opts.peerId),
  announce: [opts.announce],
  port: 6881
})

client.on('error', err => out({ event: 'error', message: err.message }))
client.on('warning', err => out({ event: 'warning', message: err.message }))
client.on('update', data => out({
  event: 'update',
  complete: data.complete,
  incomplete: data.incomplete,
  interval: data.interval,
  info_hash_hex: data.infoHash
}))
client.on('scrape', data => out({
  event: 'scrape',
  complete: data.complete,
  incomplete: data.incomplete,
  downloaded: data.downloaded,
  info_hash_hex: data.infoHash
}))
client.on('peer', peer => {
  out({ event: 'peer', peer_id: Buffer.from(peer.id, 'hex').toString('latin1'), initiator: peer.initiator })
  peer.on('error', () => {})
})

const numwant = opts.numwant ?? 5
client.start({ numwant })
out({ event: 'started' })

const rl = readline.createInterface({ input: process.stdin })
rl.on('line', line => {
  const cmd = line.trim()
  if (cmd === 'scrape') client.scrape()
  else if (cmd === 'stop') client.stop()
  else if (cmd === 'destroy') client.destroy(() => { out({ event: 'destroyed' }); process.exit(0) })
})
rl.on('close', () => client.destroy(() => process.exit(0)))
