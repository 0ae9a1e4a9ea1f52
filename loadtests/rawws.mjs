// A minimal WebSocket client (RFC 6455, client side, no extensions) on a plain TCP socket,
// for gen_storm.mjs's awareness scenario: hundreds of clients in one process each receive
// hundreds of small frames a second, and most of them only need to count them.
//
// `ws` parses every frame into a Buffer and emits an event for it: a few microseconds a
// frame, which at 500 clients x 499 peers a second is more than the generator's core. Here a
// connection in counting mode (`countOnly()`) walks the frame headers of each chunk the
// socket reads and adds up frames and payload bytes, without copying or decoding anything;
// the more frames queue up between two reads, the cheaper each. Pings are answered, a close
// frame ends the connection. In the default mode each complete data message is handed to
// `onMessage(buffer)`; a message `streamIf` claims goes to its sink piece by piece instead
// (gen_storm.mjs's joiners compare a 20 MB sync step 2 with the expected bytes as it arrives,
// rather than hold 150 copies).

import net from 'node:net'
import { randomBytes, randomFillSync } from 'node:crypto'

const OP_CONTINUATION = 0x0
const OP_CLOSE = 0x8
const OP_PING = 0x9
const OP_PONG = 0xa
const MASKS = Buffer.alloc(4096)
// Every connection reads into this one buffer (net's `onread`: no allocation and no stream
// machinery per read). Each read is handled before the next one starts, so anything kept past
// the read that brought it is copied out first.
const READ_BUFFER = Buffer.allocUnsafe(256 * 1024)

export class RawWebSocket {
  // `onMessage(buffer)` for each data message, `onOpen()`, `onClose(code)`.
  // `streamIf(firstTwoBytes)`: called at the start of each data message; a sink
  // `{data(slice), end()}` it returns gets the message's payload piece by piece as the socket
  // reads it (nothing is copied or kept: a slice is valid only during the call), null lets
  // the message be delivered whole.
  constructor (url, { onMessage = null, onOpen = null, onClose = null, counters = null, streamIf = null } = {}) {
    const parsed = new URL(url)
    this.onMessage = onMessage
    this.streamIf = streamIf
    this.sink = null
    this.onOpen = onOpen
    this.onClose = onClose
    this.counters = counters // {frames, bytes}: what counting mode adds up
    this.counting = false
    this.open = false
    this.closed = false
    this.closeCode = null
    this.handshake = Buffer.alloc(0)
    this.pending = null // a frame header split across two reads
    this.remaining = 0 // payload bytes of the current frame still to come
    this.opcode = 0
    this.fin = true
    this.collect = false // keep the current frame's payload
    this.parts = []
    this.messageOpcode = 0
    this.maskAt = MASKS.length
    this.socket = net.connect({
      port: Number(parsed.port),
      host: parsed.hostname,
      onread: {
        buffer: READ_BUFFER,
        callback: (nread, buffer) => {
          const chunk = buffer.subarray(0, nread)
          if (this.open) this.receive(chunk)
          else this.upgrade(chunk)
        }
      }
    })
    this.socket.setNoDelay(true)
    this.socket.on('connect', () => {
      const key = randomBytes(16).toString('base64')
      this.socket.write(
        `GET ${parsed.pathname}${parsed.search} HTTP/1.1\r\nHost: ${parsed.host}\r\n` +
        'Upgrade: websocket\r\nConnection: Upgrade\r\n' +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`
      )
    })
    this.socket.on('error', (error) => this.finish(1006, error))
    this.socket.on('close', () => this.finish(this.closeCode ?? 1006))
  }

  upgrade (chunk) {
    this.handshake = Buffer.concat([this.handshake, chunk])
    const end = this.handshake.indexOf('\r\n\r\n')
    if (end === -1) {
      if (this.handshake.length > 65536) this.finish(1002, new Error('no HTTP response end'))
      return
    }
    const status = this.handshake.toString('latin1', 0, this.handshake.indexOf('\r\n'))
    if (!/^HTTP\/1\.1 101 /.test(status)) {
      this.finish(1006, new Error(status.replace(/^HTTP\/1\.1 /, 'HTTP ')))
      this.socket.destroy()
      return
    }
    const rest = this.handshake.subarray(end + 4)
    this.handshake = null
    this.open = true
    if (this.onOpen) this.onOpen()
    if (rest.length > 0) this.receive(rest)
  }

  // From now on, data messages are counted into `counters` and not delivered.
  countOnly () {
    this.counting = true
  }

  receive (chunk) {
    if (this.pending !== null) {
      chunk = Buffer.concat([this.pending, chunk])
      this.pending = null
    }
    let i = 0
    const length = chunk.length
    while (i < length) {
      if (this.remaining > 0) {
        const take = Math.min(this.remaining, length - i)
        if (this.collect) {
          this.parts.push(Buffer.from(chunk.subarray(i, i + take))) // READ_BUFFER is reused
        } else if (this.sink !== null && this.opcode < OP_CLOSE) {
          this.sink.data(chunk.subarray(i, i + take))
        }
        i += take
        this.remaining -= take
        if (this.remaining === 0) this.frameEnd()
        continue
      }
      // A frame header: 2 bytes, then 2 or 8 of length (servers do not mask).
      if (length - i < 2) {
        this.pending = Buffer.from(chunk.subarray(i))
        return
      }
      const b0 = chunk[i]
      const b1 = chunk[i + 1]
      let size = b1 & 0x7f
      let header = 2
      if (size === 126) {
        if (length - i < 4) {
          this.pending = Buffer.from(chunk.subarray(i))
          return
        }
        size = chunk.readUInt16BE(i + 2)
        header = 4
      } else if (size === 127) {
        if (length - i < 10) {
          this.pending = Buffer.from(chunk.subarray(i))
          return
        }
        size = Number(chunk.readBigUInt64BE(i + 2))
        header = 10
      }
      i += header
      this.fin = (b0 & 0x80) !== 0
      this.opcode = b0 & 0x0f
      const control = this.opcode >= OP_CLOSE
      if (!control && this.opcode !== OP_CONTINUATION) this.messageOpcode = this.opcode
      if (this.counting && !control) {
        // Counting mode: skip the payload, count the message once it is complete.
        this.collect = false
        if (this.counters !== null) this.counters.bytes += size
      } else if (!control && this.sink !== null) {
        this.collect = false // a continuation of a streamed message
      } else if (!control && this.opcode !== OP_CONTINUATION && this.streamIf !== null &&
          size >= 2 && length - i >= 2) {
        this.sink = this.streamIf(chunk.subarray(i, i + 2))
        this.collect = this.sink === null
      } else {
        this.collect = true
      }
      this.remaining = size
      if (size === 0) this.frameEnd()
    }
  }

  frameEnd () {
    const opcode = this.opcode
    if (opcode >= OP_CLOSE) {
      const payload = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts)
      this.parts = []
      if (opcode === OP_PING) {
        this.sendFrame(OP_PONG, payload)
      } else if (opcode === OP_CLOSE) {
        this.closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005
        if (!this.closeSent) this.sendFrame(OP_CLOSE, payload.subarray(0, 2))
        this.socket.end()
      }
      return
    }
    if (!this.fin) return
    if (this.sink !== null) {
      const sink = this.sink
      this.sink = null
      sink.end()
      return
    }
    if (this.counting) {
      if (this.counters !== null) this.counters.frames++
      this.parts = []
      return
    }
    const message = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts)
    this.parts = []
    if (this.onMessage) this.onMessage(message)
  }

  nextMask () {
    if (this.maskAt + 4 > MASKS.length) {
      randomFillSync(MASKS)
      this.maskAt = 0
    }
    const mask = MASKS.subarray(this.maskAt, this.maskAt + 4)
    this.maskAt += 4
    return mask
  }

  sendFrame (opcode, payload) {
    if (this.closed || !this.open) return
    const size = payload.length
    const header = size < 126 ? 2 : size < 65536 ? 4 : 10
    const frame = Buffer.allocUnsafe(header + 4 + size)
    frame[0] = 0x80 | opcode
    if (size < 126) {
      frame[1] = 0x80 | size
    } else if (size < 65536) {
      frame[1] = 0x80 | 126
      frame.writeUInt16BE(size, 2)
    } else {
      frame[1] = 0x80 | 127
      frame.writeBigUInt64BE(BigInt(size), 2)
    }
    const mask = this.nextMask()
    mask.copy(frame, header)
    const at = header + 4
    for (let k = 0; k < size; k++) frame[at + k] = payload[k] ^ mask[k & 3]
    this.socket.write(frame)
  }

  send (payload) {
    this.sendFrame(0x2, payload)
  }

  close (code = 1000) {
    if (this.closed || !this.open || this.closeSent) return
    const payload = Buffer.alloc(2)
    payload.writeUInt16BE(code)
    this.sendFrame(OP_CLOSE, payload)
    this.closeSent = true
    setTimeout(() => this.socket.destroy(), 1000).unref()
  }

  finish (code, error = null) {
    if (this.closed) return
    this.closed = true
    this.closeCode = code
    if (this.onClose) this.onClose(code, error)
  }
}
