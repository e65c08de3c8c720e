// A minimal stand-in for the `webrtc-polyfill` module (node has no WebRTC here: its native
// backend, node-datachannel, needs a prebuilt binary that cannot be downloaded). It implements
// only what @thaunknown/simple-peer/lite.js calls while *signalling*: createOffer/createAnswer
// give fixed SDP text, ICE gathering "completes" at once, and every remote description that
// simple-peer applies is reported on stdout. No connection is ever made.
let counter = 0
const out = obj => process.stdout.write(JSON.stringify(obj) + '\n')

export class RTCSessionDescription {
  constructor (init) { this.type = init.type; this.sdp = init.sdp }
}

export class RTCIceCandidate {
  constructor (init) { Object.assign(this, init) }
}

class StubDataChannel {
  constructor (label) {
    this.label = label
    this.readyState = 'connecting'
    this.bufferedAmount = 0
    this.binaryType = 'blob'
  }

  send () { throw new Error('stub data channel cannot send') }
  close () { this.readyState = 'closed' }
}

export class RTCPeerConnection {
  constructor (config) {
    this.id = `stub${++counter}`
    this.config = config
    this.signalingState = 'stable'
    this.iceConnectionState = 'new'
    this.iceGatheringState = 'new'
    this.connectionState = 'new'
    this.localDescription = null
    this.remoteDescription = null
  }

  createDataChannel (label) { return new StubDataChannel(label) }

  async createOffer () {
    return { type: 'offer', sdp: `v=0\r\no=node-stub-offer ${this.id}\r\ns=-\r\n` }
  }

  async createAnswer () {
    const to = (this.remoteDescription?.sdp || '').split('\r\n')[1] || ''
    return { type: 'answer', sdp: `v=0\r\no=node-stub-answer ${this.id}\r\na=x-answer-to:${to}\r\n` }
  }

  async setLocalDescription (desc) {
    this.localDescription = new RTCSessionDescription(desc)
    this.iceGatheringState = 'complete'
    // Non-trickle: simple-peer waits for the end-of-candidates event before it signals.
    setTimeout(() => this.onicecandidate?.({ candidate: null }), 0)
  }

  async setRemoteDescription (desc) {
    this.remoteDescription = new RTCSessionDescription(desc)
    out({ event: 'remote_description', pc: this.id, type: desc.type, sdp: desc.sdp })
  }

  async addIceCandidate () {}
  addEventListener () {}
  removeEventListener () {}
  getStats (cb) { if (cb) cb([]); return Promise.resolve(new Map()) }
  close () { this.connectionState = 'closed'; this.signalingState = 'closed' }
}

export default { RTCPeerConnection, RTCSessionDescription, RTCIceCandidate }
