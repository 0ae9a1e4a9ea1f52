// Load generator for collab: raw y-websocket protocol clients with real Yjs encodings.
//
// Usage: node gen.mjs CONFIG.json. Driven by loadtests/run.py over stdio: it writes one JSON
// event per line on stdout and waits for a "go" line on stdin before each measured phase, so
// the driver can sample the server's CPU and memory exactly at phase boundaries.
//
// Every client is given its full WebSocket URL by the driver (collab's carry `?token=`; the
// baseline servers take none), so the generator is the same against every server.
//
// Scenarios (config.scenario):
//   fanout: config.rooms[r] = {urls: [C URLs]}; client 0 of each room is the writer.
//           For each rate in config.rates_per_writer the writer sends `rate` Y.Map edits per
//           second for config.step_s; each edit carries [step, seq, performance.now()], and
//           every receiver decodes it and records the edit-to-peer latency.
//           config.writers_per_room (default 1): clients 0..W-1 of each room write, and every
//           client (writers too) records the edits of the others; `hotroom` is this with one
//           big room and several writers. A writer ignores its own edits when a server echoes
//           them back (the Node and pycrdt-websocket servers send an update to every client).
//   idle:   config.rooms[r] = {urls}; every connection syncs and sets one awareness state, then
//           the connections stay open until "quit". Waits config.awareness_timeout_ms at most
//           for every peer to see every other's state (servers that do not send the states
//           they hold to a newcomer never complete it).
//   bigdoc: config.urls (1 loader + N probes), config.trace (path of a gzipped
//           editing trace). On "go" the loader replays the trace into a Y.Text through its
//           connection, config.patches_per_txn patches per transaction (one sync Update each),
//           then confirms with a sync step 1 round trip. On the next "go" the N probes connect
//           one after another (one "go" each), each with an empty Y.Doc: open -> sync step 2
//           received -> applied; the applied text is checked against the trace's endContent.
//           Before the probes the client applies the loaded state config.client_warmups times
//           locally (no server), so no probe times V8 optimising Yjs.

import { readFileSync } from 'node:fs'
import { gunzipSync } from 'node:zlib'
import { performance } from 'node:perf_hooks'
import WebSocket from 'ws'
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import * as syncProtocol from 'y-protocols/sync'
import {
  EMPTY_DOC,
  MESSAGE_AWARENESS,
  MESSAGE_SYNC,
  TICK_MS,
  command,
  config,
  emit,
  sleep,
  syncStep1,
  syncStep2,
  updateMessage,
  withDeadline
} from './gen_shared.mjs'

const closeCodes = {}

// Same bytes as y-protocols' encodeAwarenessUpdate for one client, without an Awareness
// instance (which would start a timer per connection).
function awarenessMessage (clientId, clock, state) {
  const encoder = encoding.createEncoder()
  encoding.writeVarUint(encoder, MESSAGE_AWARENESS)
  const inner = encoding.createEncoder()
  encoding.writeVarUint(inner, 1)
  encoding.writeVarUint(inner, clientId)
  encoding.writeVarUint(inner, clock)
  encoding.writeVarString(inner, JSON.stringify(state))
  encoding.writeVarUint8Array(encoder, encoding.toUint8Array(inner))
  return encoding.toUint8Array(encoder)
}

function awarenessClientIds (payload) {
  const decoder = decoding.createDecoder(payload)
  const count = decoding.readVarUint(decoder)
  const ids = []
  for (let i = 0; i < count; i++) {
    ids.push(decoding.readVarUint(decoder))
    decoding.readVarUint(decoder)
    decoding.readVarString(decoder)
  }
  return ids
}

// A minimal y-websocket peer. `doc` is the writer's document; receivers share EMPTY_DOC and
// never apply what they receive (they only decode the timestamps in it).
class Peer {
  constructor (url, { doc = null, onUpdate = null, onAwareness = null } = {}) {
    this.doc = doc
    this.onUpdate = onUpdate
    this.onAwareness = onAwareness
    this.synced = false
    this.closed = false
    this.ws = new WebSocket(url, { perMessageDeflate: false })
    this.ws.binaryType = 'nodebuffer'
    this.ready = new Promise((resolve, reject) => {
      this.resolveReady = resolve
      this.ws.on('error', (error) => reject(error))
      this.ws.on('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)))
    })
    this.ws.on('open', () => this.ws.send(syncStep1(this.doc ?? EMPTY_DOC)))
    this.ws.on('message', (data) => this.receive(data))
    this.ws.on('close', (code) => {
      this.closed = true
      closeCodes[code] = (closeCodes[code] ?? 0) + 1
    })
  }

  receive (data) {
    const decoder = decoding.createDecoder(data)
    const type = decoding.readVarUint(decoder)
    if (type === MESSAGE_SYNC) {
      const syncType = decoding.readVarUint(decoder)
      if (syncType === syncProtocol.messageYjsSyncStep1) {
        this.ws.send(syncStep2(this.doc ?? EMPTY_DOC, decoding.readVarUint8Array(decoder)))
      } else if (syncType === syncProtocol.messageYjsSyncStep2) {
        const update = decoding.readVarUint8Array(decoder)
        if (this.doc) Y.applyUpdate(this.doc, update, 'server')
        if (this.onStep2) {
          const resolve = this.onStep2
          this.onStep2 = null
          resolve()
        }
        if (!this.synced) {
          this.synced = true
          this.resolveReady()
        }
      } else if (syncType === syncProtocol.messageYjsUpdate) {
        if (this.doc) Y.applyUpdate(this.doc, decoding.readVarUint8Array(decoder), 'server')
        if (this.onUpdate) this.onUpdate(data)
      }
    } else if (type === MESSAGE_AWARENESS && this.onAwareness) {
      this.onAwareness(awarenessClientIds(decoding.readVarUint8Array(decoder)))
    }
  }

  close () {
    if (!this.closed) this.ws.close(1000)
  }
}

async function openAll (specs, concurrency, timeoutMs) {
  const peers = new Array(specs.length)
  let next = 0
  let failed = 0
  const errors = {}
  async function worker () {
    while (next < specs.length) {
      const index = next++
      const peer = specs[index]()
      peers[index] = peer
      try {
        await withDeadline(peer.ready, timeoutMs, 'sync step 2 from the server')
      } catch (error) {
        failed++
        errors[error.message] = (errors[error.message] ?? 0) + 1
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, specs.length) }, worker))
  return { peers, failed, errors }
}

function percentile (sorted, p) {
  if (sorted.length === 0) return null
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[rank]
}

// An edit's value is the string `@lt;<step>;<seq>;<sentAt>;<writer's Yjs client id>#`. Yjs
// writes a string value as one contiguous UTF-8 run inside the update, so receivers find the
// edits by scanning the frame's bytes for the marker instead of decoding the update into
// structs: that keeps the generator's cost per received update low (one core of it must keep
// up with every server at every step). Servers that merge updates put several edits in one
// frame; all are found.
const EDIT_MARKER = Buffer.from('@lt;', 'latin1')
const EDIT_END = 0x23 // '#'

function editValue (step, seq, clientId) {
  return `@lt;${step};${seq};${performance.now().toFixed(3)};${clientId}#`
}

// Records every edit found in an update frame. Edits made by Yjs client `ownClientId` (a
// writer's own, echoed back by some servers) are not counted.
function makeRecorder (steps, ownClientId = null) {
  const own = ownClientId === null ? null : String(ownClientId)
  return (frame) => {
    const now = performance.now()
    let at = frame.indexOf(EDIT_MARKER)
    while (at !== -1) {
      const end = frame.indexOf(EDIT_END, at)
      if (end === -1) return
      const [stepIndex, , sentAt, clientId] = frame.toString('latin1', at + EDIT_MARKER.length, end).split(';')
      const step = steps[Number(stepIndex)]
      if (step && clientId !== own && clientId !== undefined) {
        step.received++
        step.latencies.push(now - Number(sentAt))
      }
      at = frame.indexOf(EDIT_MARKER, end)
    }
  }
}

async function fanout () {
  const steps = config.rates_per_writer.map((rate) => ({ rate, sent: 0, received: 0, latencies: [] }))
  const recorder = makeRecorder(steps)
  const writersPerRoom = config.writers_per_room ?? 1
  const totalWriters = config.rooms.length * writersPerRoom
  const writers = []
  const specs = []
  config.rooms.forEach((room, r) => {
    room.urls.forEach((url, c) => {
      specs.push(() => {
        if (c < writersPerRoom) {
          const doc = new Y.Doc()
          // A writer with peers that also write records their edits (it applies them too).
          const onUpdate = writersPerRoom > 1 ? makeRecorder(steps, doc.clientID) : null
          const peer = new Peer(url, { doc, onUpdate })
          doc.on('update', (update, origin) => {
            if (origin !== 'server' && !peer.closed) peer.ws.send(updateMessage(update))
          })
          const phase = (r * writersPerRoom + c) / totalWriters
          // Each writer sets its own key: concurrent sets of one key would conflict, and the
          // losing edit reaches peers as deleted content without its timestamp.
          const key = c === 0 ? 't' : `t${c}`
          writers.push({ peer, map: doc.getMap('lt'), key, phase, seq: 0, clientId: doc.clientID })
          return peer
        }
        return new Peer(url, { onUpdate: recorder })
      })
    })
  })
  const opened = await openAll(specs, config.connect_concurrency, config.connect_timeout_ms)
  // Receivers per edit: every other client of the room.
  const receivers = config.rooms.reduce((n, room) => n + room.urls.length - 1, 0)
  emit({ event: 'ready', connections: specs.length, failed: opened.failed, errors: opened.errors })
  if (opened.failed > 0) return

  for (let s = 0; s < steps.length; s++) {
    const step = steps[s]
    if ((await command()) !== 'go') return
    const perWriter = Math.round(step.rate * config.step_s)
    const started = performance.now()
    let lateTicks = 0
    let maxLagMs = 0
    for (const writer of writers) writer.seq = 0
    // One ticker for all writers: each sends what is due by now, staggered by its phase.
    await new Promise((resolve) => {
      let last = started
      const timer = setInterval(() => {
        const now = performance.now()
        const lag = now - last - TICK_MS
        if (lag > TICK_MS) lateTicks++
        if (lag > maxLagMs) maxLagMs = lag
        last = now
        const elapsedS = (now - started) / 1000
        let done = true
        for (const writer of writers) {
          const due = Math.min(perWriter, Math.floor(elapsedS * step.rate + writer.phase))
          while (writer.seq < due && !writer.peer.closed) {
            writer.map.set(writer.key, editValue(s, writer.seq++, writer.clientId))
            step.sent++
          }
          if (writer.seq < perWriter && !writer.peer.closed) done = false
        }
        if (done) {
          clearInterval(timer)
          resolve()
        }
      }, TICK_MS)
    })
    const sendEnded = performance.now()
    const expected = step.sent * (config.rooms[0].urls.length - 1)
    const drainDeadline = sendEnded + config.drain_s * 1000
    while (step.received < expected && performance.now() < drainDeadline) await sleep(10)
    const ended = performance.now()
    const sorted = Float64Array.from(step.latencies).sort()
    emit({
      event: 'step',
      index: s,
      rate_per_writer: step.rate,
      writers: writers.length,
      receivers,
      send_s: (sendEnded - started) / 1000,
      total_s: (ended - started) / 1000,
      sent: step.sent,
      expected,
      received: step.received,
      latency_ms: {
        p50: percentile(sorted, 50),
        p95: percentile(sorted, 95),
        p99: percentile(sorted, 99),
        max: sorted.length ? sorted[sorted.length - 1] : null
      },
      generator_late_ticks: lateTicks,
      generator_max_tick_lag_ms: maxLagMs,
      closed: { ...closeCodes },
      open_connections: opened.peers.filter((p) => !p.closed).length
    })
    step.latencies = []
  }
  await command()
  for (const peer of opened.peers) peer.close()
}

async function idle () {
  const specs = []
  const roomWaits = []
  let completePeers = 0
  config.rooms.forEach((room) => {
    const roomSize = room.urls.length
    room.urls.forEach((url, c) => {
      specs.push(() => {
        const clientId = Math.floor(Math.random() * 0xffffffff)
        const seen = new Set([clientId])
        let resolveSeen
        roomWaits.push(new Promise((resolve) => {
          resolveSeen = () => {
            completePeers++
            resolve()
          }
        }))
        let complete = roomSize <= 1
        if (complete) resolveSeen()
        const peer = new Peer(url, {
          onAwareness: (ids) => {
            for (const id of ids) seen.add(id)
            if (!complete && seen.size >= roomSize) {
              complete = true
              resolveSeen()
            }
          }
        })
        peer.ws.on('open', () => {
          peer.ws.send(awarenessMessage(clientId, 1, {
            user: { name: `user ${c}`, color: '#f783ac' },
            cursor: null
          }))
        })
        return peer
      })
    })
  })
  const started = performance.now()
  const opened = await openAll(specs, config.connect_concurrency, config.connect_timeout_ms)
  const syncedAt = performance.now()
  let awarenessComplete = true
  try {
    await withDeadline(Promise.all(roomWaits), config.awareness_timeout_ms, 'awareness of every peer')
  } catch {
    awarenessComplete = false
  }
  emit({
    event: 'ready',
    connections: specs.length,
    failed: opened.failed,
    errors: opened.errors,
    awareness_complete: awarenessComplete,
    awareness_complete_peers: completePeers,
    connect_s: (performance.now() - started) / 1000,
    synced_s: (syncedAt - started) / 1000,
    closed: { ...closeCodes }
  })
  await command()
  emit({
    event: 'held',
    open_connections: opened.peers.filter((p) => p && !p.closed).length,
    closed: { ...closeCodes }
  })
  await command()
  for (const peer of opened.peers) if (peer) peer.close()
}

function syncStep1Awaiting (peer) {
  // The server answers a sync step 1 with a sync step 2 after everything it received before
  // on this connection: a round trip that confirms the earlier updates were applied.
  return new Promise((resolve) => {
    peer.onStep2 = resolve
    peer.ws.send(syncStep1(peer.doc))
  })
}

async function bigdoc () {
  const trace = JSON.parse(gunzipSync(readFileSync(config.trace)).toString('utf8'))
  const [loaderUrl, ...probeUrls] = config.urls
  const doc = new Y.Doc()
  const text = doc.getText(config.text_name)
  const loader = new Peer(loaderUrl, { doc })
  await withDeadline(loader.ready, config.connect_timeout_ms, 'loader sync step 2')
  let updates = 0
  let updateBytes = 0
  doc.on('update', (update, origin) => {
    if (origin === 'server' || loader.closed) return
    updates++
    updateBytes += update.length
    loader.ws.send(updateMessage(update))
  })
  emit({ event: 'ready', connections: 1, failed: 0, errors: {} })
  if ((await command()) !== 'go') return

  const started = performance.now()
  let patches = 0
  const txns = trace.txns
  let i = 0
  // Bounded: one pass over the trace, flushing the socket between transactions.
  while (i < txns.length) {
    doc.transact(() => {
      let inTxn = 0
      while (i < txns.length && inTxn < config.patches_per_txn) {
        for (const [pos, del, ins] of txns[i].patches) {
          if (del > 0) text.delete(pos, del)
          if (ins.length > 0) text.insert(pos, ins)
          inTxn++
          patches++
        }
        i++
      }
    })
    if (loader.ws.bufferedAmount > 1 << 20) {
      const waitUntil = performance.now() + config.connect_timeout_ms
      while (loader.ws.bufferedAmount > 0 && performance.now() < waitUntil) await sleep(1)
    }
    if (loader.closed) throw new Error('the server closed the loader connection')
  }
  const sentAt = performance.now()
  await withDeadline(syncStep1Awaiting(loader), config.connect_timeout_ms, 'loader confirmation')
  const confirmedAt = performance.now()
  const finalText = text.toString()
  if (finalText !== trace.endContent) throw new Error('the replayed text differs from endContent')
  const encodedV1 = Y.encodeStateAsUpdate(doc)
  const encodedV2 = Y.encodeStateAsUpdateV2(doc)
  emit({
    event: 'loaded',
    patches,
    transactions: updates,
    update_bytes_sent: updateBytes,
    replay_s: (sentAt - started) / 1000,
    confirm_s: (confirmedAt - sentAt) / 1000,
    text_chars: finalText.length,
    encoded_update_bytes: encodedV1.length,
    encoded_update_v2_bytes: encodedV2.length,
    closed: { ...closeCodes }
  })

  // The probes time the Node client's own apply of the sync step 2 too. Its first applies of
  // a document this size run before V8 has optimised Yjs's decoder (90 ms, then 45, 27, 10),
  // which would be measured as the server's. So the same bytes are applied here first, with
  // no server involved.
  const warmupApplyMs = []
  for (let w = 0; w < config.client_warmups; w++) {
    const warmDoc = new Y.Doc()
    const warmStarted = performance.now()
    Y.applyUpdate(warmDoc, encodedV1)
    warmupApplyMs.push(performance.now() - warmStarted)
    warmDoc.destroy()
  }
  emit({ event: 'warmed', client_warmup_apply_ms: warmupApplyMs })

  for (const url of probeUrls) {
    // One phase per probe, so the driver samples the server around each join.
    if ((await command()) !== 'go') return
    const probeDoc = new Y.Doc()
    const t = { created: performance.now() }
    const peer = new Peer(url, { doc: null })
    peer.ws.on('open', () => { t.open = performance.now() })
    // Replace the default handling of the first sync step 2: time receipt and apply.
    peer.receive = (data) => {
      const decoder = decoding.createDecoder(data)
      if (decoding.readVarUint(decoder) !== MESSAGE_SYNC) return
      const syncType = decoding.readVarUint(decoder)
      if (syncType === syncProtocol.messageYjsSyncStep1) {
        peer.ws.send(syncStep2(probeDoc, decoding.readVarUint8Array(decoder)))
      } else if (syncType === syncProtocol.messageYjsSyncStep2 && !peer.synced) {
        t.received = performance.now()
        const update = decoding.readVarUint8Array(decoder)
        t.bytes = data.length
        Y.applyUpdate(probeDoc, update, 'server')
        t.applied = performance.now()
        peer.synced = true
        peer.resolveReady()
      }
    }
    await withDeadline(peer.ready, config.connect_timeout_ms, 'probe sync step 2')
    const ok = probeDoc.getText(config.text_name).toString() === trace.endContent
    peer.close()
    probeDoc.destroy()
    // Let the server handle the close inside this probe's window.
    await sleep(config.probe_gap_ms)
    emit({
      event: 'probe',
      connect_ms: t.open - t.created,
      open_to_received_ms: t.received - t.open,
      apply_ms: t.applied - t.received,
      open_to_applied_ms: t.applied - t.open,
      step2_message_bytes: t.bytes,
      text_matches: ok,
      closed: { ...closeCodes }
    })
  }
  await command()
  loader.close()
}

const scenarios = { fanout, idle, bigdoc }
try {
  await scenarios[config.scenario]()
  emit({ event: 'done' })
  // Let the close frames go out, then leave without waiting for every close handshake.
  await sleep(200)
  process.exit(0)
} catch (error) {
  emit({ event: 'error', message: String(error?.stack ?? error) })
  process.exit(1)
}
