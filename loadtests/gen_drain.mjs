// Load generator for the drain scenario (loadtests/harness/scenarios/drain.py): clients on
// two collab instances A and B, writers editing all along, and A stopped with SIGTERM.
//
// Usage: node gen_drain.mjs CONFIG.json, driven over stdio like gen.mjs: one JSON event per
// line on stdout, one command per line on stdin.
//
// config.clients[i] = {room, home: 'a'|'b', writer, urls: {a, b}}; config.check_urls[room]
// (on B); config.rate_per_writer; config.max_backoff_ms; config.window_s;
// config.connect_concurrency, config.connect_timeout_ms, config.verify_timeout_ms.
//
// Each client behaves like the stock y-websocket provider (y-websocket 3.1, src/y-websocket.js):
// on open it sends sync step 1, answers the server's step 1 with step 2, sends its document's
// changes as updates while connected, and after a close reconnects after
// min(2^n * 100, maxBackoffTime) ms, where n counts the closes since the last sync step 2
// (so 200 ms after a synced connection closes, then 400, 800...; no jitter). A client closed
// by A after the SIGTERM reconnects to B, as a load balancer would send it (A no longer
// accepts). Writers keep editing while disconnected, as a user keeps typing; those edits
// reach B in the writer's sync step 2 when it reconnects.
//
// Each edit sets a key of its own (`<writer>:<seq>`) of the Y.Map `drain` to
// `@lt;<writer>;<seq>;<performance.now()>#`; receivers find the markers in update frames
// (as gen.mjs does) and record the edit-to-peer latency of edits from writers homed on B to
// clients homed on B: the survivor's own editing, which the drained clients' reconnects
// must not stall.
//
// Commands: "go" (writers start), "measure" (start of the steady window), "mark" (A is about
// to get SIGTERM: the drain window starts), "stop" (writers stop; then every client must be
// synced, every writer confirms with a sync step 1 round trip, and a checker per room reads
// the document from B: every key a writer made must be there), "quit".
// Events: ready, marked, resynced (every client homed on A has synced on B), verified,
// report, done.

import { performance } from 'node:perf_hooks'
import WebSocket from 'ws'
import * as Y from 'yjs'
import * as decoding from 'lib0/decoding'
import * as syncProtocol from 'y-protocols/sync'
import {
  EMPTY_DOC,
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

const MAP_NAME = 'drain'
const EDIT_MARKER = Buffer.from('@lt;', 'latin1')
const EDIT_END = 0x23 // '#'
const SLOW_MS = 100

async function until (predicate, timeoutMs, what) {
  const deadline = performance.now() + timeoutMs
  while (!predicate()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what}`)
    await sleep(20)
  }
}

function percentiles (values) {
  const sorted = Float64Array.from(values).sort()
  const at = (p) => sorted.length
    ? sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]
    : null
  let slow = 0
  for (const value of sorted) if (value > SLOW_MS) slow++
  return {
    count: sorted.length,
    // Share of values over SLOW_MS (latencies: deliveries a user would notice as lag).
    slow_pct: sorted.length ? (100 * slow) / sorted.length : null,
    p50: at(50),
    p95: at(95),
    p99: at(99),
    max: sorted.length ? sorted[sorted.length - 1] : null
  }
}

// -- state shared by every client --------------------------------------------------------------

const clients = []
const writers = []
let markedAt = null
let stopping = false
let resyncedAt = null
let movedCount = 0
let resyncedCount = 0
const homedOnA = config.clients.filter((spec) => spec.home === 'a').length
const errors = {}
// Latencies (ms) of edits from writers homed on B to clients homed on B, with receipt times.
const latencyAt = []
const latencyMs = []

function countError (message) {
  errors[message] = (errors[message] ?? 0) + 1
}

class Client {
  constructor (index, spec) {
    this.index = index
    this.spec = spec
    this.at = spec.home
    this.attempts = 0
    this.ws = null
    this.synced = false
    this.everSynced = null
    this.onStep2 = null
    this.closes = []
    this.connects = 0
    this.moved = false
    this.closedByA = null
    this.resyncedAt = null
    // For clients moved to B: when each attempt started and when the upgrade completed.
    this.attemptsAfterMove = []
    this.doc = spec.writer ? new Y.Doc() : null
    if (this.doc) {
      this.writer = writers.length
      writers.push(this)
      this.map = this.doc.getMap(MAP_NAME)
      this.seq = 0
      this.phase = Math.random()
      this.doc.on('update', (update, origin) => {
        if (origin !== 'server' && this.ws && this.ws.readyState === WebSocket.OPEN) {
          this.ws.send(updateMessage(update))
        }
      })
    }
    this.ready = new Promise((resolve) => { this.resolveReady = resolve })
  }

  connect () {
    this.connects++
    const ws = new WebSocket(this.spec.urls[this.at], { perMessageDeflate: false })
    ws.binaryType = 'nodebuffer'
    this.ws = ws
    this.synced = false
    const attempt = this.moved ? { start: performance.now(), open: null } : null
    if (attempt) this.attemptsAfterMove.push(attempt)
    ws.on('open', () => {
      if (attempt) attempt.open = performance.now()
      ws.send(syncStep1(this.doc ?? EMPTY_DOC))
    })
    ws.on('message', (data) => { if (this.ws === ws) this.receive(data) })
    // A refused or failed connection: 'close' follows, and the provider's backoff with it.
    ws.on('error', (error) => countError(String(error.message).slice(0, 80)))
    ws.on('close', (code) => { if (this.ws === ws) this.closed(code) })
  }

  closed (code) {
    const now = performance.now()
    this.ws = null
    this.synced = false
    this.closes.push({ t: now, code, at: this.at })
    if (stopping) return
    if (markedAt !== null && this.at === 'a') {
      this.moved = true
      this.closedByA = { t: now, code }
      this.at = 'b'
      movedCount++
    }
    // Every close counts as an unsuccessful attempt; a sync step 2 resets the count.
    this.attempts++
    setTimeout(() => this.connect(), Math.min(2 ** this.attempts * 100, config.max_backoff_ms))
  }

  receive (data) {
    const decoder = decoding.createDecoder(data)
    if (decoding.readVarUint(decoder) !== MESSAGE_SYNC) return
    const syncType = decoding.readVarUint(decoder)
    if (syncType === syncProtocol.messageYjsSyncStep1) {
      this.ws.send(syncStep2(this.doc ?? EMPTY_DOC, decoding.readVarUint8Array(decoder)))
    } else if (syncType === syncProtocol.messageYjsSyncStep2) {
      const update = decoding.readVarUint8Array(decoder)
      if (this.doc) Y.applyUpdate(this.doc, update, 'server')
      this.synced = true
      this.attempts = 0
      if (this.everSynced === null) {
        this.everSynced = performance.now()
        this.resolveReady()
      }
      if (this.moved && this.resyncedAt === null && this.at === 'b') {
        this.resyncedAt = performance.now()
        resyncedCount++
        if (resyncedCount === homedOnA) {
          resyncedAt = this.resyncedAt
          emit({ event: 'resynced', after_mark_s: (resyncedAt - markedAt) / 1000 })
        }
      }
      if (this.onStep2) {
        const resolve = this.onStep2
        this.onStep2 = null
        resolve()
      }
    } else if (syncType === syncProtocol.messageYjsUpdate) {
      const update = decoding.readVarUint8Array(decoder)
      if (this.doc) Y.applyUpdate(this.doc, update, 'server')
      if (this.spec.home === 'b' && !this.moved) this.record(data)
    }
  }

  record (frame) {
    const now = performance.now()
    let at = frame.indexOf(EDIT_MARKER)
    while (at !== -1) {
      const end = frame.indexOf(EDIT_END, at)
      if (end === -1) return
      const [writer, , sentAt] = frame.toString('latin1', at + EDIT_MARKER.length, end).split(';')
      const from = writers[Number(writer)]
      if (from && from.spec.home === 'b' && from !== this) {
        latencyAt.push(now)
        latencyMs.push(now - Number(sentAt))
      }
      at = frame.indexOf(EDIT_MARKER, end)
    }
  }

  edit () {
    const seq = this.seq++
    this.map.set(`${this.writer}:${seq}`, `@lt;${this.writer};${seq};${performance.now().toFixed(3)}#`)
  }

  confirm () {
    // The server answers a sync step 1 after everything it received before on the
    // connection: what this writer sent is applied once the step 2 comes.
    return new Promise((resolve) => {
      this.onStep2 = resolve
      this.ws.send(syncStep1(this.doc))
    })
  }

  close () {
    if (this.ws) this.ws.close(1000)
  }
}

async function openAll (list, concurrency, timeoutMs) {
  let next = 0
  async function worker () {
    while (next < list.length) {
      const client = list[next++]
      client.connect()
      try {
        await withDeadline(client.ready, timeoutMs, 'sync step 2')
      } catch (error) {
        countError(`connect: ${error.message}`)
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, list.length) }, worker))
}

async function checkRoom (url, expected) {
  // A fresh client on B reads the room's document; returns the keys it lacks.
  const doc = new Y.Doc()
  const ws = new WebSocket(url, { perMessageDeflate: false })
  ws.binaryType = 'nodebuffer'
  await new Promise((resolve, reject) => {
    ws.on('open', () => ws.send(syncStep1(EMPTY_DOC)))
    ws.on('error', reject)
    ws.on('message', (data) => {
      const decoder = decoding.createDecoder(data)
      if (decoding.readVarUint(decoder) !== MESSAGE_SYNC) return
      const syncType = decoding.readVarUint(decoder)
      if (syncType === syncProtocol.messageYjsSyncStep2) {
        Y.applyUpdate(doc, decoding.readVarUint8Array(decoder))
        resolve()
      } else if (syncType === syncProtocol.messageYjsSyncStep1) {
        ws.send(syncStep2(EMPTY_DOC, decoding.readVarUint8Array(decoder)))
      }
    })
  })
  ws.close(1000)
  const present = doc.getMap(MAP_NAME)
  return expected.filter((key) => !present.has(key))
}

async function main () {
  config.clients.forEach((spec, index) => clients.push(new Client(index, spec)))
  const started = performance.now()
  await openAll(clients, config.connect_concurrency, config.connect_timeout_ms)
  const failed = clients.filter((client) => client.everSynced === null).length
  emit({ event: 'ready', connections: clients.length, failed, errors: { ...errors }, connect_s: (performance.now() - started) / 1000 })
  if (failed > 0) return
  if ((await command()) !== 'go') return

  const goAt = performance.now()
  let lateTicks = []
  let last = goAt
  const ticker = setInterval(() => {
    const now = performance.now()
    const lag = now - last - TICK_MS
    if (lag > TICK_MS) lateTicks.push([now, lag])
    last = now
    const elapsedS = (now - goAt) / 1000
    for (const writer of writers) {
      const due = Math.floor(elapsedS * config.rate_per_writer + writer.phase)
      while (writer.seq < due) writer.edit()
    }
  }, TICK_MS)

  if ((await command()) !== 'measure') return
  const measureAt = performance.now()
  if ((await command()) !== 'mark') return
  markedAt = performance.now()
  emit({ event: 'marked' })
  if ((await command()) !== 'stop') return
  const stopAt = performance.now()
  clearInterval(ticker)

  // Every client back and synced, every writer's edits applied, then the documents read.
  const verifyStarted = performance.now()
  let verifyError = null
  try {
    await until(() => clients.every((client) => client.synced), config.verify_timeout_ms, 'every client synced')
    await withDeadline(Promise.all(writers.map((writer) => writer.confirm())), config.verify_timeout_ms, 'writers confirmed')
  } catch (error) {
    verifyError = String(error.message)
  }
  const expectedByRoom = new Map()
  for (const writer of writers) {
    const own = [...writer.map.keys()].filter((key) => key.startsWith(`${writer.writer}:`))
    if (own.length !== writer.seq) verifyError = `writer ${writer.writer} lost its own edits`
    const list = expectedByRoom.get(writer.spec.room) ?? []
    list.push(...own)
    expectedByRoom.set(writer.spec.room, list)
  }
  let missing = 0
  const missingRooms = []
  for (const [room, expected] of expectedByRoom) {
    const lacking = await withDeadline(checkRoom(config.check_urls[room], expected), config.verify_timeout_ms, `reading ${room}`)
    missing += lacking.length
    if (lacking.length) missingRooms.push({ room, missing: lacking.length, example: lacking[0] })
  }
  emit({ event: 'verified', edits: writers.reduce((n, w) => n + w.seq, 0), missing, missing_rooms: missingRooms.slice(0, 10), error: verifyError, verify_s: (performance.now() - verifyStarted) / 1000 })

  const inWindow = (from, to) => {
    const values = []
    for (let i = 0; i < latencyAt.length; i++) {
      if (latencyAt[i] >= from && latencyAt[i] < to) values.push(latencyMs[i])
    }
    return percentiles(values)
  }
  const windowEnd = markedAt + config.window_s * 1000
  const moved = clients.filter((client) => client.moved)
  const rel = (t) => (t - markedAt) / 1000
  const closeCodes = {}
  for (const client of clients) {
    for (const close of client.closes) {
      if (close.t >= markedAt && close.t < stopAt) {
        const key = `${client.spec.home}:${close.code}`
        closeCodes[key] = (closeCodes[key] ?? 0) + 1
      }
    }
  }
  const notResynced = moved.filter((client) => client.resyncedAt === null).length
  emit({
    event: 'report',
    writers: writers.length,
    edits: writers.reduce((n, w) => n + w.seq, 0),
    homed_on_a: homedOnA,
    moved: movedCount,
    resynced: resyncedCount,
    not_resynced: notResynced + (homedOnA - movedCount),
    all_resynced_s: resyncedAt === null ? null : rel(resyncedAt),
    closed_by_a_s: percentiles(moved.map((client) => rel(client.closedByA.t))),
    resynced_s: percentiles(moved.filter((c) => c.resyncedAt !== null).map((c) => rel(c.resyncedAt))),
    close_to_resync_ms: percentiles(moved.filter((c) => c.resyncedAt !== null).map((c) => c.resyncedAt - c.closedByA.t)),
    // Of the attempt that succeeded: connection started -> upgrade done -> sync step 2.
    connect_to_open_ms: percentiles(moved.filter((c) => c.resyncedAt !== null).map((c) => {
      const last = c.attemptsAfterMove[c.attemptsAfterMove.length - 1]
      return last.open - last.start
    })),
    open_to_resync_ms: percentiles(moved.filter((c) => c.resyncedAt !== null).map((c) => {
      const last = c.attemptsAfterMove[c.attemptsAfterMove.length - 1]
      return c.resyncedAt - last.open
    })),
    reconnect_attempts_max: Math.max(0, ...moved.map((client) => client.connects - 1)),
    reconnect_attempts_total: moved.reduce((n, client) => n + client.connects - 1, 0),
    close_codes: closeCodes,
    errors: { ...errors },
    latency_b_ms: {
      steady: inWindow(measureAt, markedAt),
      drain_window: inWindow(markedAt, windowEnd),
      until_resynced: inWindow(markedAt, resyncedAt ?? windowEnd),
      after_window: inWindow(windowEnd, stopAt)
    },
    steady_s: (markedAt - measureAt) / 1000,
    generator_late_ticks_in_window: lateTicks.filter(([t]) => t >= markedAt && t < windowEnd).length,
    generator_max_tick_lag_in_window_ms: Math.max(0, ...lateTicks.filter(([t]) => t >= markedAt && t < windowEnd).map(([, lag]) => lag))
  })
  lateTicks = []
  await command()
  stopping = true
  for (const client of clients) client.close()
}

try {
  await main()
  emit({ event: 'done' })
  await sleep(200)
  process.exit(0)
} catch (error) {
  emit({ event: 'error', message: String(error?.stack ?? error) })
  process.exit(1)
}
