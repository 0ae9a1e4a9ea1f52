// Load generator for the awareness and join-storm scenarios (loadtests/harness/scenarios/
// awareness.py, joinstorm.py): raw y-websocket protocol clients, driven over stdio exactly like
// gen.mjs (one JSON event per line on stdout, one command per line on stdin).
//
// Usage: node gen_storm.mjs CONFIG.json
//
// Scenarios (config.scenario):
//   awareness: config.urls (N clients of one room), config.hz, config.step_s. Every client
//     syncs and sets an editor-like awareness state (y-prosemirror's: user {name, color},
//     cursor {anchor, head} as relative positions). On "go" each client moves its cursor
//     `hz` times a second for step_s, at its own phase of the second with jitter; the state
//     carries `cursor.t`, performance.now() at send (all clients share this process's clock).
//     config.sample_indices receive fully: they decode every awareness entry and record, for
//     each entry with a clock they have not seen, now - cursor.t. The other clients only count
//     frames and bytes (rawws.mjs's counting mode: no parsing, no copy). After sending, waits
//     up to config.drain_s until every sampled receiver has every other client's final clock;
//     the pairs still missing it are lost.
//   joinstorm: config.loader_url, config.check_url, config.joiner_urls, config.probe_urls (a
//     writer and its readers in an unrelated room). "go" 1: the loader builds a note of
//     config.doc_bytes in a Y.XmlFragment (paragraphs and headings of text, some bold, as
//     y-prosemirror stores them), config.chunk_bytes per update, then confirms with a sync
//     step 1 round trip. "go" 2: one fresh client joins and checks the note, and this process
//     applies the state a few times to warm V8 up, then drops it. "go" 3: the probe writer
//     starts (config.probe_rate edits/s, its readers time each edit) and runs config.quiet_ms
//     alone, then "quiet" is emitted. "go" 4: the joiners open the note, evenly spread over
//     config.window_ms, each with an empty document; each times WebSocket created -> open ->
//     the server's sync step 2 received, comparing it with the check join's as it arrives
//     (nothing is kept unless it differs). The storm ends when every joiner has its step 2
//     or failed; the probe's edits sent meanwhile are the storm's. "go" 5: every distinct
//     step 2 is applied to a fresh Y.Doc (config.verify_applies times, the median timed) and
//     checked against the loaded note: not during the storm, where applying 150 copies of a
//     20 MB note would take this one process a minute and delay every other joiner's receipt.

import { performance, PerformanceObserver } from 'node:perf_hooks'
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
import { RawWebSocket } from './rawws.mjs'

const MAX_PAYLOAD = 2 ** 30

const closeCodes = {}

// y-protocols' encodeAwarenessUpdate for one client, without an Awareness instance.
function awarenessMessage (clientId, clock, stateJson) {
  const encoder = encoding.createEncoder()
  encoding.writeVarUint(encoder, MESSAGE_AWARENESS)
  const inner = encoding.createEncoder()
  encoding.writeVarUint(inner, 1)
  encoding.writeVarUint(inner, clientId)
  encoding.writeVarUint(inner, clock)
  encoding.writeVarString(inner, stateJson)
  encoding.writeVarUint8Array(encoder, encoding.toUint8Array(inner))
  return encoding.toUint8Array(encoder)
}

function percentile (sorted, p) {
  if (sorted.length === 0) return null
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[rank]
}

function summary (values) {
  const sorted = Float64Array.from(values).sort()
  return {
    count: sorted.length,
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    p99: percentile(sorted, 99),
    max: sorted.length ? sorted[sorted.length - 1] : null
  }
}

// A seeded PRNG (mulberry32): the same config builds the same note and the same cursors.
function random (seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

// The event loop's lateness, sampled by a 5 ms ticker: how late this process handled what
// arrived (every receipt time below is at least this late when the process was busy).
function lagMonitor () {
  const monitor = { late: 0, maxMs: 0 }
  let last = performance.now()
  const timer = setInterval(() => {
    const now = performance.now()
    const lag = now - last - TICK_MS
    if (lag > TICK_MS) monitor.late++
    if (lag > monitor.maxMs) monitor.maxMs = lag
    last = now
  }, TICK_MS)
  monitor.stop = () => clearInterval(timer)
  return monitor
}

// Garbage collection in this process while `gcWatch.on`: pauses, their total and longest.
const gcWatch = { on: false, count: 0, totalMs: 0, maxMs: 0 }
new PerformanceObserver((list) => {
  if (!gcWatch.on) return
  for (const entry of list.getEntries()) {
    gcWatch.count++
    gcWatch.totalMs += entry.duration
    if (entry.duration > gcWatch.maxMs) gcWatch.maxMs = entry.duration
  }
}).observe({ entryTypes: ['gc'] })

// A y-websocket connection: answers the server's sync step 1 from `doc` (an empty one by
// default), resolves `ready` on the server's sync step 2, hands every other frame to
// `onFrame(data)`. `onStep2(data, now)` replaces the default first-step-2 handling.
class Conn {
  constructor (url, { doc = EMPTY_DOC, onFrame = null, onStep2 = null, onOpen = null } = {}) {
    this.doc = doc
    this.onFrame = onFrame
    this.onStep2 = onStep2
    this.synced = false
    this.closed = false
    this.closeCode = null
    this.created = performance.now()
    this.ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: MAX_PAYLOAD })
    this.ws.binaryType = 'nodebuffer'
    this.ready = new Promise((resolve, reject) => {
      this.resolveReady = resolve
      this.rejectReady = reject
      this.ws.on('error', (error) => reject(error))
      this.ws.on('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)))
    })
    this.ws.on('open', () => {
      this.opened = performance.now()
      this.ws.send(syncStep1(this.doc))
      if (onOpen) onOpen(this)
    })
    this.ws.on('message', (data) => this.receive(data))
    this.ws.on('close', (code) => {
      this.closed = true
      this.closeCode = code
      closeCodes[code] = (closeCodes[code] ?? 0) + 1
      this.rejectReady(new Error(`closed ${code} before sync step 2`))
    })
  }

  receive (data) {
    if (this.synced && !(data[0] === MESSAGE_SYNC && data[1] === syncProtocol.messageYjsSyncStep1)) {
      if (this.onFrame) this.onFrame(data)
      return
    }
    const decoder = decoding.createDecoder(data)
    const type = decoding.readVarUint(decoder)
    if (type !== MESSAGE_SYNC) {
      if (this.onFrame) this.onFrame(data)
      return
    }
    const syncType = decoding.readVarUint(decoder)
    if (syncType === syncProtocol.messageYjsSyncStep1) {
      this.ws.send(syncStep2(this.doc, decoding.readVarUint8Array(decoder)))
    } else if (syncType === syncProtocol.messageYjsSyncStep2) {
      const now = performance.now()
      if (this.onStep2) {
        this.onStep2(data, now)
      } else if (this.doc !== EMPTY_DOC) {
        Y.applyUpdate(this.doc, decoding.readVarUint8Array(decoder), 'server')
      }
      this.synced = true
      this.resolveReady()
    } else if (this.onFrame) {
      this.onFrame(data)
    }
  }

  send (message) {
    if (!this.closed && this.ws.readyState === WebSocket.OPEN) this.ws.send(message)
  }

  close () {
    if (!this.closed) this.ws.close(1000)
  }
}

// The same y-websocket connection on rawws.mjs's RawWebSocket (the awareness clients):
// `countOnly` after sync makes it count frames and bytes into `counters` without reading them.
class RawConn {
  constructor (url, { onFrame = null, onOpen = null, counters = null, countOnly = false } = {}) {
    this.onFrame = onFrame
    this.synced = false
    this.closeCode = null
    this.created = performance.now()
    this.ready = new Promise((resolve, reject) => {
      this.resolveReady = resolve
      this.rejectReady = reject
    })
    this.ws = new RawWebSocket(url, {
      counters,
      onOpen: () => {
        this.opened = performance.now()
        this.ws.send(syncStep1(EMPTY_DOC))
        if (onOpen) onOpen(this)
      },
      onMessage: (data) => this.receive(data, countOnly),
      onClose: (code, error) => {
        this.closeCode = code
        closeCodes[code] = (closeCodes[code] ?? 0) + 1
        this.rejectReady(error ?? new Error(`closed ${code} before sync step 2`))
      }
    })
  }

  get closed () {
    return this.ws.closed
  }

  receive (data, countOnly) {
    if (!this.synced && data[0] === MESSAGE_SYNC) {
      const decoder = decoding.createDecoder(data)
      decoding.readVarUint(decoder)
      const syncType = decoding.readVarUint(decoder)
      if (syncType === syncProtocol.messageYjsSyncStep1) {
        this.ws.send(syncStep2(EMPTY_DOC, decoding.readVarUint8Array(decoder)))
      } else if (syncType === syncProtocol.messageYjsSyncStep2) {
        this.synced = true
        if (countOnly) this.ws.countOnly()
        this.resolveReady()
      }
      return
    }
    if (this.onFrame) this.onFrame(data)
  }

  send (message) {
    this.ws.send(message)
  }

  close () {
    this.ws.close(1000)
  }
}

// Opens `count` connections, `concurrency` at a time, each built by `make(index)`.
async function openAll (count, make, concurrency, timeoutMs) {
  const conns = new Array(count)
  let next = 0
  let failed = 0
  const errors = {}
  async function worker () {
    while (next < count) {
      const index = next++
      conns[index] = make(index)
      try {
        await withDeadline(conns[index].ready, timeoutMs, 'sync step 2 from the server')
      } catch (error) {
        failed++
        errors[error.message] = (errors[error.message] ?? 0) + 1
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker))
  return { conns, failed, errors }
}

// ---------------------------------------------------------------------------------------
// awareness

const COLORS = ['#30bced', '#6eeb83', '#ffbc42', '#ecd444', '#ee6352', '#9ac2c9', '#8acb88', '#1be7ff']

async function awareness () {
  const n = config.urls.length
  const rand = random(config.seed ?? 1)
  const sampled = new Set(config.sample_indices)
  // The note's text was written by a few authors: the relative positions point at their items.
  const authors = Array.from({ length: 4 }, () => Math.floor(rand() * 0xfffffffe) + 1)
  const usedIds = new Set()
  const counters = { frames: 0, bytes: 0 }
  const clients = []

  function relativePosition (clock) {
    // JSON.stringify of a Y.RelativePosition, as y-prosemirror's cursor plugin sets it.
    return { type: null, tname: null, item: { client: authors[clock % authors.length], clock }, assoc: 0 }
  }

  function stateJson (client, t) {
    const anchor = Math.floor(rand() * 60000)
    const head = rand() < 0.8 ? anchor : anchor + Math.floor(rand() * 200)
    return JSON.stringify({
      user: client.user,
      cursor: { anchor: relativePosition(anchor), head: relativePosition(head), t }
    })
  }

  let recording = false
  let moveLatencies = []
  function makeClient (index) {
    let clientId
    do clientId = Math.floor(rand() * 0xfffffffe) + 1
    while (usedIds.has(clientId))
    usedIds.add(clientId)
    const client = {
      index,
      clientId,
      clock: 1,
      user: { name: `User ${index}`, color: COLORS[index % COLORS.length] },
      // When its moves are due: its own phase of the period, plus jitter per move.
      phase: (index + rand()) / n,
      moves: 0,
      stateBytes: 0
    }
    if (sampled.has(index)) {
      // Receives fully: the latest clock seen of every other client.
      client.lastClock = new Map()
      client.entries = 0
      client.newEntries = 0
      client.staleEntries = 0
    }
    // Before it is synced (and for good, on a sampled receiver) every frame comes here.
    const onFrame = client.lastClock === undefined
      ? (data) => {
          counters.frames++
          counters.bytes += data.length
        }
      : (data) => {
          counters.frames++
          counters.bytes += data.length
          const now = performance.now()
          const decoder = decoding.createDecoder(data)
          if (decoding.readVarUint(decoder) !== MESSAGE_AWARENESS) return
          const inner = decoding.createDecoder(decoding.readVarUint8Array(decoder))
          const count = decoding.readVarUint(inner)
          for (let i = 0; i < count; i++) {
            const id = decoding.readVarUint(inner)
            const clock = decoding.readVarUint(inner)
            const json = decoding.readVarString(inner)
            if (id === clientId) continue // its own state, echoed back by some servers
            client.entries++
            if (clock <= (client.lastClock.get(id) ?? 0)) {
              client.staleEntries++
              continue
            }
            client.lastClock.set(id, clock)
            client.newEntries++
            // Clock 1 is the state set on connect; the moves are 2 and up.
            if (recording && clock >= 2 && json !== 'null') {
              const t = JSON.parse(json).cursor?.t
              if (typeof t === 'number') moveLatencies.push(now - t)
            }
          }
        }
    const conn = new RawConn(config.urls[index], {
      onFrame,
      counters,
      countOnly: client.lastClock === undefined,
      onOpen: (c) => {
        const json = stateJson(client, null)
        c.send(awarenessMessage(clientId, client.clock, json))
      }
    })
    client.conn = conn
    clients[index] = client
    return conn
  }

  const started = performance.now()
  const opened = await openAll(n, makeClient, config.connect_concurrency, config.connect_timeout_ms)
  const syncedAt = performance.now()
  const receivers = clients.filter((c) => c.lastClock !== undefined)
  // Every sampled receiver should see every other client's first state (servers that do not
  // send the states they hold to a newcomer never complete this: it is only reported).
  const awarenessDeadline = syncedAt + config.awareness_timeout_ms
  const seenAll = (c) => c.lastClock.size >= n - 1
  while (!receivers.every(seenAll) && performance.now() < awarenessDeadline) await sleep(20)
  emit({
    event: 'ready',
    connections: n,
    failed: opened.failed,
    errors: opened.errors,
    synced_s: (syncedAt - started) / 1000,
    awareness_s: (performance.now() - started) / 1000,
    initial_states_seen: receivers.map((c) => c.lastClock.size),
    closed: { ...closeCodes }
  })
  if (opened.failed > 0) return
  if ((await command()) !== 'go') return

  const movesPerClient = Math.round(config.hz * config.step_s)
  const periodMs = 1000 / config.hz
  const jitter = config.jitter ?? 0.25 // of a period, either way
  for (const c of clients) {
    c.nextDue = (k) => (k + c.phase + (rand() * 2 - 1) * jitter) * periodMs
    c.due = c.nextDue(0)
  }
  for (const c of receivers) {
    c.entries = 0
    c.newEntries = 0
    c.staleEntries = 0
  }
  const framesBefore = counters.frames
  const bytesBefore = counters.bytes
  moveLatencies = []
  recording = true
  const stepStart = performance.now()
  let sent = 0
  let sentBytes = 0
  let lateTicks = 0
  let maxLagMs = 0
  await new Promise((resolve) => {
    let last = stepStart
    const timer = setInterval(() => {
      const now = performance.now()
      const lag = now - last - TICK_MS
      if (lag > TICK_MS) lateTicks++
      if (lag > maxLagMs) maxLagMs = lag
      last = now
      const elapsed = now - stepStart
      let done = true
      for (const c of clients) {
        while (c.moves < movesPerClient && c.due <= elapsed && !c.conn.closed) {
          c.clock++
          c.moves++
          const json = stateJson(c, Number(performance.now().toFixed(3)))
          const message = awarenessMessage(c.clientId, c.clock, json)
          c.conn.send(message)
          sent++
          sentBytes += message.length
          c.stateBytes = json.length
          c.due = c.nextDue(c.moves)
        }
        if (c.moves < movesPerClient && !c.conn.closed) done = false
      }
      if (done) {
        clearInterval(timer)
        resolve()
      }
    }, TICK_MS)
  })
  const sendEnded = performance.now()
  const sendFrames = counters.frames - framesBefore
  const sendBytes = counters.bytes - bytesBefore
  emit({
    event: 'sent',
    sent,
    sent_bytes: sentBytes,
    send_s: (sendEnded - stepStart) / 1000,
    frames: sendFrames,
    bytes: sendBytes
  })

  // Drain: every sampled receiver must end with every other client's final clock.
  const finalClock = new Map(clients.map((c) => [c.clientId, c.clock]))
  const missing = (r) => {
    let count = 0
    for (const c of clients) {
      if (c !== r && (r.lastClock.get(c.clientId) ?? 0) < finalClock.get(c.clientId)) count++
    }
    return count
  }
  const drainDeadline = sendEnded + config.drain_s * 1000
  let lost = receivers.reduce((total, r) => total + missing(r), 0)
  while (lost > 0 && performance.now() < drainDeadline) {
    await sleep(20)
    lost = receivers.reduce((total, r) => total + missing(r), 0)
  }
  const ended = performance.now()
  recording = false
  const latency = summary(moveLatencies)
  const stateSizes = clients.map((c) => c.stateBytes).filter((b) => b > 0)
  emit({
    event: 'step',
    clients: n,
    hz: config.hz,
    moves_per_client: movesPerClient,
    sent,
    send_s: (sendEnded - stepStart) / 1000,
    total_s: (ended - stepStart) / 1000,
    drain_s: (ended - sendEnded) / 1000,
    frames: counters.frames - framesBefore,
    bytes: counters.bytes - bytesBefore,
    send_frames: sendFrames,
    send_bytes: sendBytes,
    state_json_bytes: stateSizes.length ? stateSizes.reduce((a, b) => a + b, 0) / stateSizes.length : null,
    sampled_receivers: receivers.length,
    // Every other client's moves, per sampled receiver: what it would get with no merging.
    sampled_moves_by_others: receivers.reduce((total, r) => total + sent - r.moves, 0),
    sampled_entries: receivers.reduce((total, r) => total + r.entries, 0),
    sampled_new_entries: receivers.reduce((total, r) => total + r.newEntries, 0),
    sampled_stale_entries: receivers.reduce((total, r) => total + r.staleEntries, 0),
    sampled_pairs: receivers.length * (n - 1),
    lost_pairs: lost,
    latency_ms: latency,
    generator_late_ticks: lateTicks,
    generator_max_tick_lag_ms: maxLagMs,
    closed: { ...closeCodes },
    open_connections: clients.filter((c) => !c.conn.closed).length
  })
  await command()
  for (const c of clients) c.conn.close()
}

// ---------------------------------------------------------------------------------------
// joinstorm

const WORDS = (
  'the of and to in is that for it as was with be by on not he this are or his from at which ' +
  'but have an they you were their one all we can her has there been if more when will would ' +
  'who so no meeting agenda review design draft budget quarter roadmap customer release ' +
  'follow up decision owner action item deadline risk estimate launch feedback research ' +
  'migration latency throughput schema database service deploy rollback incident postmortem ' +
  'onboarding hiring interview candidate proposal contract invoice vendor pricing forecast ' +
  'métrica équipe über naïve café résumé señal straße'
).split(' ')

// Builds paragraphs (y-prosemirror: <paragraph> elements holding an XmlText; every tenth a
// <heading level=2>, every fifth with a bold run) into `fragment`, `chunkBytes` of text per
// transaction, until `targetBytes` of updates were produced. Returns what it made.
async function buildNote (doc, fragment, targetBytes, chunkBytes, afterTransaction) {
  const rand = random(config.seed ?? 7)
  let paragraphs = 0
  let textChars = 0
  let updateBytes = 0
  const onUpdate = (update, origin) => {
    if (origin !== 'server') updateBytes += update.length
  }
  doc.on('update', onUpdate)
  // Bounded: every transaction adds at least one paragraph of at least 80 characters.
  while (updateBytes < targetBytes) {
    doc.transact(() => {
      let inChunk = 0
      const elements = []
      const texts = []
      while (inChunk < chunkBytes) {
        const heading = paragraphs % 10 === 0
        const words = []
        const length = heading ? 20 + Math.floor(rand() * 40) : 80 + Math.floor(rand() * 900)
        let chars = 0
        while (chars < length) {
          const word = WORDS[Math.floor(rand() * rand() * WORDS.length)]
          words.push(word)
          chars += word.length + 1
        }
        const text = words.join(' ') + (heading ? '' : '.')
        const element = new Y.XmlElement(heading ? 'heading' : 'paragraph')
        if (heading) element.setAttribute('level', '2')
        const xmlText = new Y.XmlText()
        element.insert(0, [xmlText])
        elements.push(element)
        texts.push(text)
        inChunk += Buffer.byteLength(text)
        textChars += text.length
        paragraphs++
      }
      fragment.insert(fragment.length, elements)
      elements.forEach((element, i) => {
        const xmlText = element.get(0)
        xmlText.insert(0, texts[i])
        if (i % 5 === 1 && texts[i].length > 40) xmlText.format(10, 20, { bold: true })
      })
    })
    await afterTransaction()
  }
  doc.off('update', onUpdate)
  return { paragraphs, textChars, updateBytes }
}

function noteShape (doc) {
  const fragment = doc.getXmlFragment(config.fragment_name)
  let textChars = 0
  let paragraphs = 0
  for (const element of fragment.toArray()) {
    paragraphs++
    const text = element.get(0)
    if (text) textChars += text.length
  }
  return { paragraphs, textChars }
}

function step2Payload (data) {
  const decoder = decoding.createDecoder(data)
  decoding.readVarUint(decoder)
  decoding.readVarUint(decoder)
  return decoding.readVarUint8Array(decoder)
}

// A joiner of the storm, on a RawWebSocket: its sync step 2 is compared, as the socket reads
// it, with `reference` (the check join's, whose note was verified); nothing is kept unless it
// differs, and then the bytes are kept to be applied and checked after the storm. (Keeping
// 150 copies of a 20 MB message would have this process touch 3 GB of fresh memory during
// the storm, which on this VM costs more than receiving it.)
class Joiner {
  constructor (url, reference) {
    this.created = performance.now()
    this.reference = reference
    this.parts = undefined // set when the bytes differ from the reference
    this.ready = new Promise((resolve, reject) => {
      this.resolveReady = resolve
      this.rejectReady = reject
    })
    this.ws = new RawWebSocket(url, {
      onOpen: () => {
        this.opened = performance.now()
        this.ws.send(syncStep1(EMPTY_DOC))
      },
      onMessage: (data) => this.receive(data),
      streamIf: (first) =>
        first[0] === MESSAGE_SYNC && first[1] === syncProtocol.messageYjsSyncStep2 &&
        this.received === undefined
          ? this.sink()
          : null,
      onClose: (code, error) => {
        closeCodes[code] = (closeCodes[code] ?? 0) + 1
        this.rejectReady(error ?? new Error(`closed ${code} before sync step 2`))
      }
    })
  }

  get closed () {
    return this.ws.closed
  }

  sink () {
    const reference = this.reference
    let offset = 0
    return {
      data: (slice) => {
        if (this.parts === undefined) {
          const end = offset + slice.length
          if (end > reference.length || !slice.equals(reference.subarray(offset, end))) {
            this.parts = [reference.subarray(0, offset), Buffer.from(slice)]
          }
        } else {
          this.parts.push(Buffer.from(slice)) // the slice is the socket's read buffer
        }
        offset += slice.length
      },
      end: () => this.step2(offset)
    }
  }

  step2 (bytes) {
    this.received = performance.now()
    this.bytes = bytes
    if (this.parts === undefined && bytes !== this.reference.length) {
      this.parts = [this.reference.subarray(0, bytes)]
    }
    this.resolveReady()
  }

  receive (data) {
    // Small whole messages: the server's sync step 1 (answered), awareness (ignored), or a
    // step 2 too short to stream.
    if (data[0] !== MESSAGE_SYNC) return
    if (data[1] === syncProtocol.messageYjsSyncStep1) {
      const decoder = decoding.createDecoder(data)
      decoding.readVarUint(decoder)
      decoding.readVarUint(decoder)
      this.ws.send(syncStep2(EMPTY_DOC, decoding.readVarUint8Array(decoder)))
    } else if (data[1] === syncProtocol.messageYjsSyncStep2 && this.received === undefined) {
      if (!data.equals(this.reference)) this.parts = [data]
      this.step2(data.length)
    }
  }

  // The step 2 received: the reference's bytes, or its own when they differed.
  message () {
    if (this.parts === undefined) return this.reference
    return Buffer.concat(this.parts)
  }

  close () {
    this.ws.close(1000)
  }
}

function makeProbe () {
  // An unrelated room: one writer at config.probe_rate edits/s, its readers time each edit
  // (a Y.Map value with the send time, found by scanning the update's bytes as gen.mjs does).
  const marker = Buffer.from('@st;', 'latin1')
  const edits = [] // [sentAt, deliveries]
  const deliveries = []
  const [writerUrl, ...readerUrls] = config.probe_urls
  const doc = new Y.Doc()
  const writer = new Conn(writerUrl, { doc })
  doc.on('update', (update, origin) => {
    if (origin !== 'server') writer.send(updateMessage(update))
  })
  const onFrame = (frame) => {
    const now = performance.now()
    let at = frame.indexOf(marker)
    while (at !== -1) {
      const end = frame.indexOf(0x23, at)
      if (end === -1) return
      const seq = Number(frame.toString('latin1', at + marker.length, end))
      if (edits[seq] !== undefined) {
        edits[seq][1]++
        deliveries.push([edits[seq][0], now - edits[seq][0]])
      }
      at = frame.indexOf(marker, end)
    }
  }
  const readers = readerUrls.map((url) => new Conn(url, { onFrame }))
  const map = doc.getMap('probe')
  let timer = null
  return {
    conns: [writer, ...readers],
    start () {
      const started = performance.now()
      timer = setInterval(() => {
        const due = Math.floor(((performance.now() - started) / 1000) * config.probe_rate)
        while (edits.length < due && !writer.closed) {
          const seq = edits.length
          const sentAt = performance.now()
          edits.push([sentAt, 0])
          map.set('t', `@st;${seq}#`)
        }
      }, TICK_MS)
    },
    stop () {
      clearInterval(timer)
    },
    // Latency of the edits sent in [from, to), and those of them not delivered to every reader.
    window (from, to) {
      const sent = edits.filter(([at]) => at >= from && at < to)
      return {
        edits: sent.length,
        expected: sent.length * readers.length,
        received: sent.reduce((total, [, n]) => total + n, 0),
        latency_ms: summary(deliveries.filter(([at]) => at >= from && at < to).map(([, ms]) => ms))
      }
    }
  }
}

// Builds the note through `loader` and confirms the server has all of it. Returns what was
// sent, the note's encoded state and its shape; the document itself is dropped, so that this
// process's heap is small again before the storm (a full GC then marks little).
async function loadNote (loader) {
  const doc = new Y.Doc()
  const fragment = doc.getXmlFragment(config.fragment_name)
  let updates = 0
  doc.on('update', (update, origin) => {
    if (origin === 'server') return
    updates++
    loader.send(updateMessage(update))
  })
  const loadStarted = performance.now()
  const built = await buildNote(doc, fragment, config.doc_bytes, config.chunk_bytes, async () => {
    if (loader.ws.bufferedAmount > 4 * config.chunk_bytes) {
      const until = performance.now() + config.connect_timeout_ms
      while (loader.ws.bufferedAmount > 0 && performance.now() < until) await sleep(1)
    }
    if (loader.closed) throw new Error(`the server closed the loader connection (${loader.closeCode})`)
  })
  const sentAt = performance.now()
  await withDeadline(new Promise((resolve) => {
    loader.synced = false // the next sync step 2 answers this step 1, after every update
    loader.onStep2 = () => resolve()
    loader.resolveReady = () => {}
    loader.send(syncStep1(doc))
  }), config.connect_timeout_ms, 'the loader\'s confirmation')
  loader.onStep2 = null
  if (loader.closed) throw new Error(`the server closed the loader connection (${loader.closeCode})`)
  const confirmedAt = performance.now()
  const state = Y.encodeStateAsUpdate(doc)
  const expected = noteShape(doc)
  doc.destroy()
  return {
    state,
    expected,
    summary: {
      paragraphs: built.paragraphs,
      text_chars: built.textChars,
      transactions: updates,
      update_bytes_sent: built.updateBytes,
      encoded_state_bytes: state.length,
      load_s: (sentAt - loadStarted) / 1000,
      confirm_s: (confirmedAt - sentAt) / 1000
    }
  }
}

async function joinstorm () {
  const loader = new Conn(config.loader_url)
  const probe = makeProbe()
  for (const conn of [loader, ...probe.conns]) {
    await withDeadline(conn.ready, config.connect_timeout_ms, 'sync step 2 (loader, probe)')
  }
  emit({ event: 'ready', connections: 1 + probe.conns.length, failed: 0, errors: {} })
  if ((await command()) !== 'go') return

  // 1. Load the note.
  const note = await loadNote(loader)
  const expected = note.expected
  emit({ event: 'loaded', ...note.summary, closed: { ...closeCodes } })
  if ((await command()) !== 'go') return

  // 2. One fresh client joins and checks the note; then V8 is warmed up on the same bytes.
  const check = { created: performance.now() }
  const checkDoc = new Y.Doc()
  const checker = new Conn(config.check_url, {
    onStep2: (data, now) => {
      check.received = now
      check.bytes = data.length
      check.data = data // the joiners compare theirs with it
      Y.applyUpdate(checkDoc, step2Payload(data), 'server')
      check.applied = performance.now()
    }
  })
  await withDeadline(checker.ready, config.connect_timeout_ms, 'the check join')
  const checked = noteShape(checkDoc)
  checker.close()
  checkDoc.destroy()
  if (checked.paragraphs !== expected.paragraphs || checked.textChars !== expected.textChars) {
    throw new Error(`the server's note differs: ${JSON.stringify(checked)} != ${JSON.stringify(expected)}`)
  }
  const warmupApplyMs = []
  for (let w = 0; w < config.client_warmups; w++) {
    const warm = new Y.Doc()
    const at = performance.now()
    Y.applyUpdate(warm, note.state)
    warmupApplyMs.push(performance.now() - at)
    warm.destroy()
  }
  note.state = null
  globalThis.gc?.() // with --expose-gc: start the storm on a small heap
  emit({
    event: 'checked',
    check_join_ms: check.received - check.created,
    check_apply_ms: check.applied - check.received,
    check_step2_bytes: check.bytes,
    client_warmup_apply_ms: warmupApplyMs
  })
  if ((await command()) !== 'go') return

  // 3. The probe alone.
  probe.start()
  const quietStart = performance.now()
  await sleep(config.quiet_ms)
  emit({ event: 'quiet' })
  if ((await command()) !== 'go') return

  // 4. The storm.
  const closedBefore = { ...closeCodes }
  const stormStart = performance.now()
  const lag = lagMonitor()
  gcWatch.on = true
  const joiners = []
  const n = config.joiner_urls.length
  const gapMs = n > 1 ? config.window_ms / (n - 1) : 0
  const finished = []
  for (let i = 0; i < n; i++) {
    const at = stormStart + i * gapMs
    const wait = at - performance.now()
    if (wait > 1) await sleep(wait)
    const joiner = { index: i, planned_ms: i * gapMs }
    joiner.conn = new Joiner(config.joiner_urls[i], check.data)
    joiners.push(joiner)
    finished.push(withDeadline(joiner.conn.ready, config.join_timeout_ms, 'sync step 2')
      .then(() => null, (error) => error.message))
  }
  const errors = await Promise.all(finished)
  const stormEnd = performance.now()
  lag.stop()
  gcWatch.on = false
  await sleep(config.probe_drain_ms) // the storm's last probe edits arrive
  probe.stop()
  const failures = {}
  errors.forEach((error, i) => {
    if (error !== null) {
      failures[error] = (failures[error] ?? 0) + 1
      joiners[i].error = error
    }
  })
  emit({
    event: 'storm',
    storm_s: (stormEnd - stormStart) / 1000,
    joiners: joiners.map((j) => ({
      planned_ms: j.planned_ms,
      connect_ms: j.conn.opened !== undefined ? j.conn.opened - j.conn.created : null,
      step2_ms: j.conn.received !== undefined ? j.conn.received - j.conn.created : null,
      step2_bytes: j.conn.bytes ?? null,
      same_as_check: j.conn.received !== undefined ? j.conn.parts === undefined : null,
      error: j.error ?? null
    })),
    failed: Object.values(failures).reduce((a, b) => a + b, 0),
    failures,
    probe_quiet: probe.window(quietStart, stormStart),
    probe_storm: probe.window(stormStart, stormEnd),
    generator_late_ticks: lag.late,
    generator_max_tick_lag_ms: lag.maxMs,
    generator_gc: { count: gcWatch.count, total_ms: gcWatch.totalMs, max_ms: gcWatch.maxMs },
    // Connections closed since the storm began (the check join's own close is before).
    closed: Object.fromEntries(Object.entries(closeCodes)
      .map(([code, n]) => [code, n - (closedBefore[code] ?? 0)])
      .filter(([, n]) => n > 0)),
    open_joiners: joiners.filter((j) => !j.conn.closed).length
  })
  if ((await command()) !== 'go') return

  // 5. Apply every distinct step 2 once, check it; identical bytes give the same note.
  const distinct = []
  let mismatched = 0
  for (const joiner of joiners) {
    if (joiner.conn.received === undefined) continue
    const data = joiner.conn.message()
    let known = distinct.find((d) => d.data === data || (d.data.length === data.length && d.data.equals(data)))
    if (known === undefined) {
      // The median of a few applies: one alone varies with what this process did before.
      const times = []
      let shape = null
      for (let k = 0; k < config.verify_applies; k++) {
        const joinedDoc = new Y.Doc()
        const at = performance.now()
        Y.applyUpdate(joinedDoc, step2Payload(data), 'server')
        times.push(performance.now() - at)
        shape ??= noteShape(joinedDoc)
        joinedDoc.destroy()
      }
      const applyMs = times.sort((x, y) => x - y)[Math.floor((times.length - 1) / 2)]
      known = {
        data,
        apply_ms: applyMs,
        ok: shape.paragraphs === expected.paragraphs && shape.textChars === expected.textChars,
        joiners: 0
      }
      distinct.push(known)
    }
    known.joiners++
    joiner.apply_ms = known.apply_ms
    joiner.ok = known.ok
    if (!known.ok) mismatched++
    joiner.conn.parts = undefined
  }
  emit({
    event: 'verified',
    distinct_payloads: distinct.length,
    mismatched,
    apply_ms: joiners.map((j) => j.apply_ms ?? null),
    ok: joiners.map((j) => j.ok ?? false)
  })
  distinct.length = 0
  await command()
  for (const conn of [loader, ...probe.conns, ...joiners.map((j) => j.conn)]) conn.close()
}

const scenarios = { awareness, joinstorm }
try {
  await scenarios[config.scenario]()
  emit({ event: 'done' })
  await sleep(200) // let the close frames go out
  process.exit(0)
} catch (error) {
  emit({ event: 'error', message: String(error?.stack ?? error) })
  process.exit(1)
}
