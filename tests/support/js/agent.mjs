// A long-running Node.js process that drives real Yjs clients (Y.Doc + the stock y-websocket
// WebsocketProvider) for the Python test suite.
//
// Protocol: one JSON object per line on stdin, `{"id": 1, "cmd": "...", ...args}`; one JSON line
// per reply on stdout, `{"id": 1, "ok": true, "result": ...}` or `{"id": 1, "ok": false,
// "error": "..."}`. Commands run concurrently and may reply out of order. Nothing else is ever
// written to stdout; diagnostics go to stderr. Run with no arguments (`node agent.mjs`); the
// packages resolve from tests/node_modules (`npm ci --prefix tests`).

import { createRequire } from 'node:module'
import { readFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { gunzipSync } from 'node:zlib'

import WebSocket from 'ws'
import { WebsocketProvider } from 'y-websocket'
import * as Y from 'yjs'

// stdout carries replies only: anything a library logs goes to stderr.
console.log = console.error
console.info = console.error
console.debug = console.error
// y-websocket reads the global when `resyncInterval` is set; Node 20 has none.
globalThis.WebSocket ??= WebSocket
// Each provider adds a process 'exit' listener; many clients are expected.
process.setMaxListeners(0)

const LOCAL_ORIGIN = 'agent'
const CLOSE_WAIT_MS = 2000
const MAX_MESSAGE_VALUE_CHARS = 4000

class CommandError extends Error {}

/** @type {Map<string, Client>} */
const clients = new Map()

class Client {
  /**
   * @param {string} name
   * @param {Y.Doc} doc
   * @param {WebsocketProvider} provider
   */
  constructor (name, doc, provider) {
    this.name = name
    this.doc = doc
    this.provider = provider
    /** @type {Array<Record<string, unknown>>} */
    this.events = []
    /** @type {Set<() => void>} called after every recorded event */
    this.eventListeners = new Set()
    /** @type {Set<(reason: Error) => void>} pending waits, rejected on destroy */
    this.cancellers = new Set()
  }

  /** @param {Record<string, unknown>} event */
  record (event) {
    this.events.push({ ...event, t_ms: Date.now() })
    for (const listener of [...this.eventListeners]) listener()
  }
}

// ---------------------------------------------------------------------------------------------
// argument checking

const TYPE_CHECKS = {
  string: (v) => typeof v === 'string',
  integer: (v) => Number.isSafeInteger(v) && v >= 0,
  number: (v) => typeof v === 'number' && Number.isFinite(v),
  boolean: (v) => typeof v === 'boolean',
  object: (v) => v !== null && typeof v === 'object' && !Array.isArray(v),
  array: (v) => Array.isArray(v),
  any: (v) => v !== undefined,
  'object|null': (v) => v === null || (typeof v === 'object' && !Array.isArray(v)),
  'string|null': (v) => v === null || typeof v === 'string'
}

/**
 * Checks `args` against `spec` ({name: type}, a trailing '?' on the type marks it optional) and
 * returns only the declared arguments. Unknown arguments are rejected so that typos fail loudly.
 *
 * @param {string} where
 * @param {Record<string, unknown>} args
 * @param {Record<string, string>} spec
 */
const checkArgs = (where, args, spec) => {
  const unknown = Object.keys(args).filter((k) => !(k in spec))
  if (unknown.length > 0) {
    throw new CommandError(`${where}: unknown argument(s) ${unknown.join(', ')}; expected ${describeSpec(spec)}`)
  }
  /** @type {Record<string, any>} */
  const out = {}
  for (const [name, rawType] of Object.entries(spec)) {
    const optional = rawType.endsWith('?')
    const type = optional ? rawType.slice(0, -1) : rawType
    const value = args[name]
    if (value === undefined) {
      if (!optional) throw new CommandError(`${where}: missing argument '${name}' (${type})`)
      continue
    }
    if (!TYPE_CHECKS[type](value)) {
      throw new CommandError(`${where}: argument '${name}' must be ${type === 'integer' ? 'a non-negative integer' : type}, got ${truncate(JSON.stringify(value))}`)
    }
    out[name] = value
  }
  return out
}

/** @param {Record<string, string>} spec */
const describeSpec = (spec) => '{' + Object.entries(spec).map(([k, t]) => `${k}: ${t}`).join(', ') + '}'

/** @param {string | undefined} text */
const truncate = (text, max = MAX_MESSAGE_VALUE_CHARS) => {
  if (text === undefined) return 'undefined'
  return text.length <= max ? text : `${text.slice(0, max)}... (${text.length} chars)`
}

/** @param {string} name */
const getClient = (name) => {
  const client = clients.get(name)
  if (client === undefined) {
    const known = [...clients.keys()]
    throw new CommandError(`no client named '${name}' (known: ${known.length > 0 ? known.join(', ') : 'none'})`)
  }
  return client
}

/** @param {string} hex */
const fromHex = (hex) => {
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(hex)) throw new CommandError('not an even-length hex string')
  return new Uint8Array(Buffer.from(hex, 'hex'))
}

/** @param {Uint8Array} bytes */
const toHex = (bytes) => Buffer.from(bytes).toString('hex')

/**
 * Structural equality of JSON-like values; object key order does not matter.
 * @param {any} a
 * @param {any} b
 * @returns {boolean}
 */
const deepEqual = (a, b) => {
  if (a === b) return true
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false
  if (Array.isArray(a) !== Array.isArray(b)) return false
  if (Array.isArray(a)) return a.length === b.length && a.every((x, i) => deepEqual(x, b[i]))
  if (a instanceof Uint8Array || b instanceof Uint8Array) {
    return a instanceof Uint8Array && b instanceof Uint8Array && Buffer.from(a).equals(Buffer.from(b))
  }
  const ka = Object.keys(a)
  const kb = Object.keys(b)
  return ka.length === kb.length && ka.every((k) => Object.hasOwn(b, k) && deepEqual(a[k], b[k]))
}

// ---------------------------------------------------------------------------------------------
// document edits and reads

/** @param {number} index @param {number} length @param {number} size @param {string} what */
const checkRange = (index, length, size, what) => {
  if (index + length > size) {
    throw new CommandError(`${what}: range [${index}, ${index + length}) is outside the current length ${size}`)
  }
}

/**
 * Each edit: the argument spec (besides `client`) and a function applying it to a Y.Doc, inside
 * whatever transaction is current.
 * @type {Record<string, {spec: Record<string, string>, apply: (doc: Y.Doc, a: Record<string, any>) => void}>}
 */
const EDITS = {
  text_insert: {
    spec: { root: 'string', index: 'integer', text: 'string', attributes: 'object?' },
    apply: (doc, a) => {
      const ytext = doc.getText(a.root)
      checkRange(a.index, 0, ytext.length, 'text_insert')
      ytext.insert(a.index, a.text, a.attributes)
    }
  },
  text_delete: {
    spec: { root: 'string', index: 'integer', length: 'integer' },
    apply: (doc, a) => {
      const ytext = doc.getText(a.root)
      checkRange(a.index, a.length, ytext.length, 'text_delete')
      ytext.delete(a.index, a.length)
    }
  },
  map_set: {
    spec: { root: 'string', key: 'string', value: 'any' },
    apply: (doc, a) => { doc.getMap(a.root).set(a.key, a.value) }
  },
  map_set_array: {
    // a nested Y.Array (as `meta.assignees` and `meta.tags` are), not a plain JSON array
    spec: { root: 'string', key: 'string', values: 'array' },
    apply: (doc, a) => { doc.getMap(a.root).set(a.key, Y.Array.from(a.values)) }
  },
  map_delete: {
    spec: { root: 'string', key: 'string' },
    apply: (doc, a) => { doc.getMap(a.root).delete(a.key) }
  },
  array_push: {
    spec: { root: 'string', values: 'array' },
    apply: (doc, a) => { doc.getArray(a.root).push(a.values) }
  },
  array_insert: {
    spec: { root: 'string', index: 'integer', values: 'array' },
    apply: (doc, a) => {
      const yarray = doc.getArray(a.root)
      checkRange(a.index, 0, yarray.length, 'array_insert')
      yarray.insert(a.index, a.values)
    }
  },
  array_delete: {
    spec: { root: 'string', index: 'integer', length: 'integer' },
    apply: (doc, a) => {
      const yarray = doc.getArray(a.root)
      checkRange(a.index, a.length, yarray.length, 'array_delete')
      yarray.delete(a.index, a.length)
    }
  },
  xml_append_paragraph: {
    // as y-prosemirror writes a paragraph: <paragraph> element holding one XmlText
    spec: { root: 'string', text: 'string' },
    apply: (doc, a) => {
      const paragraph = new Y.XmlElement('paragraph')
      paragraph.insert(0, [new Y.XmlText(a.text)])
      doc.getXmlFragment(a.root).push([paragraph])
    }
  },
  xml_paragraph_insert: {
    // typing into the text of an existing paragraph (the `paragraph`-th child of the root)
    spec: { root: 'string', paragraph: 'integer', index: 'integer', text: 'string' },
    apply: (doc, a) => {
      const fragment = doc.getXmlFragment(a.root)
      checkRange(a.paragraph, 1, fragment.length, 'xml_paragraph_insert')
      const element = fragment.get(a.paragraph)
      const ytext = element instanceof Y.XmlElement ? element.get(0) : null
      if (!(ytext instanceof Y.XmlText)) {
        throw new CommandError(`xml_paragraph_insert: child ${a.paragraph} is not a paragraph holding text`)
      }
      checkRange(a.index, 0, ytext.length, 'xml_paragraph_insert')
      ytext.insert(a.index, a.text)
    }
  }
}

/** @type {Record<string, (doc: Y.Doc, name: string) => unknown>} */
const READERS = {
  text: (doc, name) => doc.getText(name).toString(),
  delta: (doc, name) => doc.getText(name).toDelta(),
  map: (doc, name) => doc.getMap(name).toJSON(),
  array: (doc, name) => doc.getArray(name).toJSON(),
  xml: (doc, name) => doc.getXmlFragment(name).toString()
}

/** @param {Record<string, unknown>} roots */
const checkRoots = (roots) => {
  for (const [name, kind] of Object.entries(roots)) {
    if (typeof kind !== 'string' || !Object.hasOwn(READERS, kind)) {
      throw new CommandError(`root '${name}': kind must be one of ${Object.keys(READERS).join(', ')}, got ${JSON.stringify(kind)}`)
    }
  }
}

/** @param {Y.Doc} doc @param {Record<string, string>} roots */
const readRoots = (doc, roots) => {
  /** @type {Record<string, unknown>} */
  const out = {}
  for (const [name, kind] of Object.entries(roots)) out[name] = READERS[kind](doc, name)
  return out
}

// ---------------------------------------------------------------------------------------------
// waiting

/**
 * Resolves with `check().value` as soon as `check().done`, re-checking whenever one of the
 * `subscriptions` fires; rejects after `timeoutMs` with `describe()` in the message, or when the
 * client is destroyed.
 *
 * @param {Client} client
 * @param {string} what
 * @param {number} timeoutMs
 * @param {() => {done: boolean, value?: any}} check
 * @param {Array<(listener: () => void) => () => void>} subscriptions each returns its unsubscribe
 * @param {() => string} describe
 */
const waitUntil = (client, what, timeoutMs, check, subscriptions, describe) => new Promise((resolve, reject) => {
  /** @type {Array<() => void>} */
  const unsubscribes = []
  let finished = false
  /** @type {NodeJS.Timeout | undefined} */
  let timer
  const finish = () => {
    finished = true
    clearTimeout(timer)
    for (const unsubscribe of unsubscribes) unsubscribe()
    client.cancellers.delete(cancel)
  }
  /** @param {Error} reason */
  const cancel = (reason) => {
    if (finished) return
    finish()
    reject(reason)
  }
  const test = () => {
    if (finished) return
    let outcome
    try {
      outcome = check()
    } catch (err) {
      cancel(err instanceof Error ? err : new Error(String(err)))
      return
    }
    if (outcome.done) {
      finish()
      resolve(outcome.value)
    }
  }
  // A burst of updates (many frames in one socket read) costs one check, not one each: reading a
  // large document per update would make a long replay quadratic.
  let scheduled = false
  const schedule = () => {
    if (scheduled || finished) return
    scheduled = true
    setImmediate(() => { scheduled = false; test() })
  }
  test()
  if (finished) return
  client.cancellers.add(cancel)
  for (const subscribe of subscriptions) unsubscribes.push(subscribe(schedule))
  timer = setTimeout(() => {
    test()
    if (finished) return
    let detail
    try {
      detail = describe()
    } catch (err) {
      detail = `(could not describe the state: ${err})`
    }
    cancel(new CommandError(`${what} timed out after ${timeoutMs} ms; ${detail}`))
  }, timeoutMs)
})

/** @param {{on: Function, off: Function}} emitter @param {string} event */
const on = (emitter, event) => (listener) => {
  emitter.on(event, listener)
  return () => emitter.off(event, listener)
}

/** @param {Client} client */
const onRecordedEvent = (client) => (listener) => {
  client.eventListeners.add(listener)
  return () => client.eventListeners.delete(listener)
}

/** @param {Client} client */
const awarenessStates = (client) => {
  /** @type {Record<string, unknown>} */
  const out = {}
  for (const [clientId, state] of client.provider.awareness.getStates()) out[String(clientId)] = state
  return out
}

/** @param {Client} client */
const connectionStatus = (client) => {
  const p = client.provider
  return p.wsconnected ? 'connected' : p.wsconnecting ? 'connecting' : 'disconnected'
}

/**
 * Closes what `provider` holds and waits (bounded) for the socket's closing handshake, so that
 * the server has seen the close when the command replies.
 * @param {Client} client
 * @param {(provider: WebsocketProvider) => void} action
 */
const closeAndWait = async (client, action) => {
  const ws = client.provider.ws
  const closed = ws === null || ws.readyState === WebSocket.CLOSED
    ? Promise.resolve(true)
    : new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), CLOSE_WAIT_MS)
      ws.once('close', () => { clearTimeout(timer); resolve(true) })
    })
  action(client.provider)
  return { closed: await closed }
}

/** @param {Client} client */
const destroyClient = async (client) => {
  clients.delete(client.name)
  for (const cancel of [...client.cancellers]) cancel(new CommandError(`client '${client.name}' was destroyed`))
  const result = await closeAndWait(client, (provider) => provider.destroy())
  client.provider.awareness.destroy()
  client.doc.destroy()
  return result
}

// ---------------------------------------------------------------------------------------------
// trace replay

/**
 * @param {Client} client
 * @param {{path: string, root: string, txns_per_transaction?: number}} a
 */
const replayTrace = async (client, a) => {
  const perTransaction = a.txns_per_transaction ?? 1
  if (perTransaction < 1) throw new CommandError('replay_trace: txns_per_transaction must be >= 1')
  const raw = readFileSync(a.path)
  const isGzip = raw.length >= 2 && raw[0] === 0x1f && raw[1] === 0x8b
  const trace = JSON.parse((isGzip ? gunzipSync(raw) : raw).toString('utf8'))
  const { startContent = '', endContent, txns } = trace
  if (typeof startContent !== 'string' || !Array.isArray(txns)) {
    throw new CommandError('replay_trace: the trace needs a string startContent and a txns array')
  }
  // Trace positions count code points; JS strings index UTF-16 units. They agree while no
  // character outside the BMP is ever inserted.
  const astral = /[\uD800-\uDFFF]/
  if (astral.test(startContent)) throw new CommandError('replay_trace: startContent has characters outside the BMP')
  const doc = client.doc
  const ytext = doc.getText(a.root)
  if (ytext.length !== 0) throw new CommandError(`replay_trace: root '${a.root}' is not empty (${ytext.length} chars)`)
  const started = performance.now()
  let transactions = 0
  let patches = 0
  if (startContent.length > 0) {
    doc.transact(() => ytext.insert(0, startContent), LOCAL_ORIGIN)
    transactions++
    await new Promise(setImmediate)
  }
  for (let i = 0; i < txns.length; i += perTransaction) {
    const group = txns.slice(i, i + perTransaction)
    doc.transact(() => {
      for (const txn of group) {
        for (const [pos, del, ins] of txn.patches) {
          if (del > 0) ytext.delete(pos, del)
          if (ins !== undefined && ins.length > 0) {
            if (astral.test(ins)) throw new CommandError(`replay_trace: txn ${i} inserts characters outside the BMP`)
            ytext.insert(pos, ins)
          }
          patches++
        }
      }
    }, LOCAL_ORIGIN)
    transactions++
    // let the provider's socket write before the next group
    await new Promise(setImmediate)
  }
  const finalText = ytext.toString()
  return {
    transactions,
    patches,
    final_length: finalText.length,
    matches_end_content: typeof endContent === 'string' ? finalText === endContent : null,
    elapsed_ms: Math.round(performance.now() - started)
  }
}

// ---------------------------------------------------------------------------------------------
// commands

const CLIENT = { client: 'string' }
const WAIT = { client: 'string', timeout_ms: 'integer' }

/** @type {Record<string, {spec: Record<string, string>, run: (a: Record<string, any>) => any}>} */
const COMMANDS = {
  ping: {
    spec: {},
    run: () => ({ pong: true, node: process.version, packages: packageVersions() })
  },
  list_clients: {
    spec: {},
    run: () => [...clients.keys()]
  },
  connect: {
    spec: {
      client: 'string',
      url: 'string',
      room: 'string',
      token: 'string|null?',
      connect: 'boolean?',
      params: 'object?',
      max_backoff_ms: 'integer?',
      resync_interval_ms: 'integer?',
      // set before connecting. Without it the stock initial state ({} at clock 0) is ignored by
      // peers that join later (until its 15 s renewal), as y-protocols' awareness is written.
      awareness: 'object|null?'
    },
    run: (a) => {
      if (clients.has(a.client)) throw new CommandError(`client '${a.client}' already exists; destroy it first`)
      const params = { ...(a.params ?? {}) }
      if (a.token !== undefined && a.token !== null) params.token = a.token
      const doc = new Y.Doc()
      const provider = new WebsocketProvider(a.url, a.room, doc, {
        WebSocketPolyfill: /** @type {any} */ (WebSocket),
        params,
        disableBc: true,
        connect: false,
        ...(a.max_backoff_ms !== undefined ? { maxBackoffTime: a.max_backoff_ms } : {}),
        ...(a.resync_interval_ms !== undefined ? { resyncInterval: a.resync_interval_ms } : {})
      })
      if (a.awareness !== undefined) provider.awareness.setLocalState(a.awareness)
      const client = new Client(a.client, doc, provider)
      provider.on('status', ({ status }) => client.record({ type: 'status', status }))
      provider.on('sync', (synced) => client.record({ type: 'sync', synced }))
      provider.on('connection-close', (event) => client.record({
        type: 'connection-close',
        // null event: the provider closed the socket itself (disconnect() or its watchdog)
        local: event == null,
        code: event?.code ?? null,
        reason: event?.reason === undefined ? null : String(event.reason),
        was_clean: event?.wasClean ?? null
      }))
      provider.on('connection-error', (event) => client.record({
        type: 'connection-error',
        message: event?.message ?? event?.error?.message ?? String(event?.type ?? 'error')
      }))
      provider.on('closed', ({ code, reason }) => client.record({ type: 'closed', code, reason }))
      clients.set(a.client, client)
      // connected only after the listeners are attached, so the first 'connecting' is recorded
      if (a.connect ?? true) provider.connect()
      return { client_id: doc.clientID }
    }
  },
  wait_synced: {
    spec: WAIT,
    run: async (a) => {
      const client = getClient(a.client)
      await waitUntil(client, 'wait_synced', a.timeout_ms,
        () => ({ done: client.provider.synced, value: null }),
        [on(client.provider, 'sync')],
        () => `status ${connectionStatus(client)}; events ${truncate(JSON.stringify(client.events.slice(-10)))}`)
      return { synced: true }
    }
  },
  disconnect: {
    spec: CLIENT,
    run: (a) => {
      const client = getClient(a.client)
      return closeAndWait(client, (provider) => provider.disconnect())
    }
  },
  reconnect: {
    spec: CLIENT,
    run: (a) => { getClient(a.client).provider.connect(); return null }
  },
  set_params: {
    // used by the next connection attempt (e.g. a new token before reconnect)
    spec: { client: 'string', params: 'object' },
    run: (a) => { getClient(a.client).provider.params = { ...a.params }; return null }
  },
  destroy: {
    spec: CLIENT,
    run: (a) => destroyClient(getClient(a.client))
  },
  status: {
    spec: CLIENT,
    run: (a) => {
      const client = getClient(a.client)
      const p = client.provider
      return { status: connectionStatus(client), synced: p.synced, should_connect: p.shouldConnect, url: p.url }
    }
  },
  wait_status: {
    spec: { ...WAIT, status: 'string' },
    run: async (a) => {
      if (!['connected', 'connecting', 'disconnected'].includes(a.status)) {
        throw new CommandError(`wait_status: status must be connected, connecting or disconnected, got '${a.status}'`)
      }
      const client = getClient(a.client)
      await waitUntil(client, 'wait_status', a.timeout_ms,
        () => ({ done: connectionStatus(client) === a.status, value: null }),
        [onRecordedEvent(client)],
        () => `status ${connectionStatus(client)}; events ${truncate(JSON.stringify(client.events.slice(-10)))}`)
      return { status: a.status }
    }
  },
  events: {
    spec: { client: 'string', clear: 'boolean?' },
    run: (a) => {
      const client = getClient(a.client)
      const events = client.events
      if (a.clear) client.events = []
      return events
    }
  },
  wait_event: {
    // resolves with the recorded events of `type` once there are at least `count` of them
    spec: { ...WAIT, type: 'string', count: 'integer?' },
    run: (a) => {
      const client = getClient(a.client)
      const count = a.count ?? 1
      const matching = () => client.events.filter((e) => e.type === a.type)
      return waitUntil(client, 'wait_event', a.timeout_ms,
        () => { const m = matching(); return { done: m.length >= count, value: m } },
        [onRecordedEvent(client)],
        () => `${matching().length} of ${count} '${a.type}' events; events ${truncate(JSON.stringify(client.events.slice(-10)))}`)
    }
  },
  transact: {
    spec: { client: 'string', ops: 'array' },
    run: (a) => {
      const client = getClient(a.client)
      const steps = a.ops.map((op, i) => {
        if (!TYPE_CHECKS.object(op) || typeof op.op !== 'string' || !Object.hasOwn(EDITS, op.op)) {
          throw new CommandError(`transact: ops[${i}] needs an "op" field, one of ${Object.keys(EDITS).join(', ')}`)
        }
        const { op: name, ...rest } = op
        const edit = EDITS[name]
        return { edit, args: checkArgs(`transact ops[${i}] ${name}`, rest, edit.spec) }
      })
      // An op failing mid-way leaves the ops before it applied (Yjs has no rollback).
      client.doc.transact(() => { for (const { edit, args } of steps) edit.apply(client.doc, args) }, LOCAL_ORIGIN)
      return { applied: steps.length }
    }
  },
  read: {
    spec: { client: 'string', roots: 'object' },
    run: (a) => {
      checkRoots(a.roots)
      return readRoots(getClient(a.client).doc, a.roots)
    }
  },
  wait_for: {
    spec: { ...WAIT, roots: 'object', expected: 'object' },
    run: (a) => {
      checkRoots(a.roots)
      const client = getClient(a.client)
      let last
      return waitUntil(client, 'wait_for', a.timeout_ms,
        () => { last = readRoots(client.doc, a.roots); return { done: deepEqual(last, a.expected), value: last } },
        [on(client.doc, 'update')],
        () => `last value ${truncate(JSON.stringify(last))}; expected ${truncate(JSON.stringify(a.expected))}`)
    }
  },
  client_id: {
    spec: CLIENT,
    run: (a) => getClient(a.client).doc.clientID
  },
  state_vector_hex: {
    spec: CLIENT,
    run: (a) => toHex(Y.encodeStateVector(getClient(a.client).doc))
  },
  state_hex: {
    // the Yjs v1 update of the whole state, or of what is missing from `state_vector_hex`
    spec: { client: 'string', state_vector_hex: 'string?' },
    run: (a) => {
      const doc = getClient(a.client).doc
      const sv = a.state_vector_hex === undefined ? undefined : fromHex(a.state_vector_hex)
      return toHex(Y.encodeStateAsUpdate(doc, sv))
    }
  },
  apply_update_hex: {
    // applied as a local change, so the provider sends it to the server
    spec: { client: 'string', update_hex: 'string' },
    run: (a) => { Y.applyUpdate(getClient(a.client).doc, fromHex(a.update_hex), LOCAL_ORIGIN); return null }
  },
  pending: {
    // what the doc received but could not integrate: `structs` maps each client whose structs
    // wait for a missing dependency to the lowest clock missing (null: none), `delete_set` says
    // whether deletions of content it lacks wait (both null/false: nothing pending)
    spec: CLIENT,
    run: (a) => {
      const store = getClient(a.client).doc.store
      const structs = store.pendingStructs
      return {
        structs: structs === null ? null : Object.fromEntries([...structs.missing].map(([client, clock]) => [String(client), clock])),
        delete_set: store.pendingDs !== null
      }
    }
  },
  set_awareness: {
    spec: { client: 'string', state: 'object|null' },
    run: (a) => { getClient(a.client).provider.awareness.setLocalState(a.state); return null }
  },
  set_awareness_field: {
    spec: { client: 'string', field: 'string', value: 'any' },
    run: (a) => {
      const awareness = getClient(a.client).provider.awareness
      // the stock setLocalStateField silently ignores a null local state
      if (awareness.getLocalState() === null) {
        throw new CommandError('set_awareness_field: the local awareness state is null; use set_awareness first')
      }
      awareness.setLocalStateField(a.field, a.value)
      return null
    }
  },
  awareness: {
    spec: CLIENT,
    run: (a) => awarenessStates(getClient(a.client))
  },
  wait_awareness: {
    // the set of client ids with a state (the local one included) equals expected_client_ids
    spec: { ...WAIT, expected_client_ids: 'array' },
    run: (a) => {
      const client = getClient(a.client)
      const expected = [...new Set(a.expected_client_ids.map(String))].sort()
      const ids = () => Object.keys(awarenessStates(client)).sort()
      return waitUntil(client, 'wait_awareness', a.timeout_ms,
        () => ({ done: deepEqual(ids(), expected), value: awarenessStates(client) }),
        [on(client.provider.awareness, 'change'), on(client.provider.awareness, 'update')],
        () => `client ids with a state ${JSON.stringify(ids())}; expected ${JSON.stringify(expected)}`)
    }
  },
  wait_awareness_states: {
    // all states ({"<clientID>": state}) deep-equal `expected`
    spec: { ...WAIT, expected: 'object' },
    run: (a) => {
      const client = getClient(a.client)
      return waitUntil(client, 'wait_awareness_states', a.timeout_ms,
        () => { const s = awarenessStates(client); return { done: deepEqual(s, a.expected), value: s } },
        [on(client.provider.awareness, 'change'), on(client.provider.awareness, 'update')],
        () => `states ${truncate(JSON.stringify(awarenessStates(client)))}; expected ${truncate(JSON.stringify(a.expected))}`)
    }
  },
  replay_trace: {
    spec: { client: 'string', path: 'string', root: 'string', txns_per_transaction: 'integer?' },
    run: (a) => replayTrace(getClient(a.client), a)
  },
  quit: {
    spec: {},
    run: () => { quitting = true; return null }
  }
}

for (const [name, edit] of Object.entries(EDITS)) {
  COMMANDS[name] = {
    spec: { client: 'string', ...edit.spec },
    run: ({ client: clientName, ...args }) => {
      const doc = getClient(clientName).doc
      doc.transact(() => edit.apply(doc, args), LOCAL_ORIGIN)
      return null
    }
  }
}

const packageVersions = () => {
  const require = createRequire(import.meta.url)
  /** @type {Record<string, string | null>} */
  const out = {}
  for (const name of ['yjs', 'y-websocket', 'y-protocols', 'lib0', 'ws']) {
    try {
      out[name] = JSON.parse(readFileSync(require.resolve(`${name}/package.json`), 'utf8')).version
    } catch {
      out[name] = null
    }
  }
  return out
}

// ---------------------------------------------------------------------------------------------
// the stdin/stdout loop

let quitting = false
let shuttingDown = false

/** @param {Record<string, unknown>} reply */
const send = (reply) => {
  let line
  try {
    line = JSON.stringify(reply)
  } catch (err) {
    line = JSON.stringify({ id: reply.id ?? null, ok: false, error: `reply is not JSON-serialisable: ${err}` })
  }
  return new Promise((resolve) => process.stdout.write(line + '\n', () => resolve(undefined)))
}

/** @param {string} line */
const handleLine = async (line) => {
  if (line.trim() === '') return
  let message
  try {
    message = JSON.parse(line)
  } catch (err) {
    console.error(`agent: invalid JSON on stdin: ${truncate(line, 200)}`)
    await send({ id: null, ok: false, error: `invalid JSON: ${err instanceof Error ? err.message : err}` })
    return
  }
  const id = message !== null && typeof message === 'object' && 'id' in message ? message.id : null
  try {
    if (!TYPE_CHECKS.object(message)) throw new CommandError('a command must be a JSON object')
    const { id: _id, cmd, ...args } = message
    if (typeof cmd !== 'string') throw new CommandError('missing "cmd" (string)')
    const command = Object.hasOwn(COMMANDS, cmd) ? COMMANDS[cmd] : undefined
    if (command === undefined) {
      throw new CommandError(`unknown command '${cmd}'; known: ${Object.keys(COMMANDS).sort().join(', ')}`)
    }
    const result = await command.run(checkArgs(cmd, args, command.spec))
    await send({ id, ok: true, result: result === undefined ? null : result })
  } catch (err) {
    if (!(err instanceof CommandError)) console.error(`agent: ${message?.cmd} failed:`, err)
    await send({ id, ok: false, error: err instanceof Error ? err.message : String(err) })
  }
  if (quitting) await shutdown(0)
}

/** @param {number} code */
const shutdown = async (code) => {
  if (shuttingDown) return
  shuttingDown = true
  await Promise.allSettled([...clients.values()].map(destroyClient))
  process.exit(code)
}

process.on('uncaughtException', (err) => console.error('agent: uncaught exception:', err))
process.on('unhandledRejection', (err) => console.error('agent: unhandled rejection:', err))

const input = createInterface({ input: process.stdin, crlfDelay: Infinity })
input.on('line', (line) => { handleLine(line) })
// the parent went away: nothing will ever ask for a reply again
input.on('close', () => { shutdown(0) })
