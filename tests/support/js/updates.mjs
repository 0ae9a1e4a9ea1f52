// What the real yjs encoder writes and what yjs reads, for the update reader's tests.
//
// Run `node updates.mjs` with one JSON request on stdin; one JSON reply goes to stdout:
//
//   {"cmd": "generate", "seeds": [1, 2, ...]}
//     For each seed, a random edit session of one to three Y.Docs (Y.Text with formats and
//     embeds, Y.Map with every value kind, Y.Array, Y.XmlFragment with elements and text)
//     whose clients exchange updates now and then. Reply: {"sessions": [{seed, roots,
//     updates: [{hex, origin, base, read}], json, state_vector}]}: every update the session
//     made (origin: each "transaction", each "sync" diff, "merge"s of Y.mergeUpdates, each
//     doc's "state" and "state-diff" from Y.encodeStateAsUpdate, a "diff-update" from
//     Y.diffUpdate), each with the state vector of a document it builds on (`base`) and
//     what yjs reads from it (`read`); `json` and `state_vector` are those of a fresh Y.Doc
//     that applied every transaction's update.
//
//   {"cmd": "apply", "cases": [{roots, base: [hex], updates: [hex]}]}
//     For each case, a fresh Y.Doc (client id 1) applies `base` then `updates`, catching
//     what throws. Reply: {"results": [{errors, state_vector, pending_structs, pending_ds,
//     json}]}.
//
//   {"cmd": "read", "updates": [hex]}
//     What yjs reads from each update (`read`, or {"error": message}).
//
// `read` is {state_vector: {client: clock}, structs: [[client, clock, length, kind]],
// delete_set: {client: [[clock, length]]}}; kind is "GC", "Skip" or the content's class.
// Roots are {name: kind}, kind one of text, map, array, xml; `json` holds for each root
// text: {string, delta}; map and array: their toJSON(); xml: the tree, each element
// {name, attributes, children}, each text {delta}, any other child {$value}. Values JSON
// cannot hold are tagged: {"$bytes": hex}, {"$bigint": decimal} (beyond 2**53; a smaller
// BigInt is a number, as pycrdt reads it), {"$float": "NaN"|"Infinity"|"-Infinity"|"-0"},
// {"$undefined": true}, {"$doc": guid}; integers beyond 2**53 are floats' shortest spelling.

import { readFileSync } from 'node:fs'

import * as prng from 'lib0/prng'
import * as Y from 'yjs'

console.log = console.error
console.info = console.error
console.debug = console.error
console.warn = console.error

const ROOTS = { t: 'text', m: 'map', a: 'array', x: 'xml' }

const toHex = bytes => Buffer.from(bytes).toString('hex')
const fromHex = hex => new Uint8Array(Buffer.from(hex, 'hex'))

const normalize = value => {
  if (value === undefined) return { $undefined: true }
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return value
  if (typeof value === 'number') {
    if (Number.isNaN(value)) return { $float: 'NaN' }
    if (value === Infinity) return { $float: 'Infinity' }
    if (value === -Infinity) return { $float: '-Infinity' }
    if (Object.is(value, -0)) return { $float: '-0' }
    return value
  }
  if (typeof value === 'bigint') {
    return value > -(2n ** 53n) && value < 2n ** 53n ? Number(value) : { $bigint: value.toString() }
  }
  if (value instanceof Uint8Array) return { $bytes: toHex(value) }
  if (value instanceof Y.Doc) return { $doc: value.guid }
  if (value instanceof Y.AbstractType) return normalize(value.toJSON())
  if (Array.isArray(value)) return value.map(normalize)
  const out = {}
  for (const key of Object.keys(value)) {
    // defined, not assigned: an own key `__proto__` stays a key
    Object.defineProperty(out, key, { value: normalize(value[key]), enumerable: true, writable: true, configurable: true })
  }
  return out
}

const readXml = node => {
  if (node instanceof Y.XmlText) return { delta: normalize(node.toDelta()) }
  if (node instanceof Y.XmlHook) return { hook: node.hookName }
  if (!(node instanceof Y.XmlElement || node instanceof Y.XmlFragment)) return { $value: normalize(node) }
  const children = node.toArray().map(readXml)
  if (node instanceof Y.XmlElement) {
    return { name: node.nodeName, attributes: normalize(node.getAttributes()), children }
  }
  return { children }
}

const readRoots = (doc, roots) => {
  const out = {}
  for (const [name, kind] of Object.entries(roots)) {
    try {
      if (kind === 'text') {
        const text = doc.getText(name)
        out[name] = { string: text.toString(), delta: normalize(text.toDelta()) }
      } else if (kind === 'map') {
        out[name] = normalize(doc.getMap(name).toJSON())
      } else if (kind === 'array') {
        out[name] = normalize(doc.getArray(name).toJSON())
      } else if (kind === 'xml') {
        out[name] = readXml(doc.getXmlFragment(name))
      } else {
        throw new Error(`unknown root kind ${kind}`)
      }
    } catch (error) {
      out[name] = { $error: String(error && error.message) }
    }
  }
  return out
}

const readUpdate = update => {
  const decoded = Y.decodeUpdate(update)
  const structs = decoded.structs.map(s => [
    s.id.client,
    s.id.clock,
    s.length,
    s.constructor === Y.Item ? s.content.constructor.name : s.constructor.name
  ])
  const deleteSet = {}
  decoded.ds.clients.forEach((ranges, client) => {
    deleteSet[client] = ranges.map(r => [r.clock, r.len])
  })
  const stateVector = {}
  Y.decodeStateVector(Y.encodeStateVectorFromUpdate(update)).forEach((clock, client) => {
    stateVector[client] = clock
  })
  return { state_vector: stateVector, structs, delete_set: deleteSet }
}

// ---- random edit sessions ----

const PIECES = [
  'a', 'b', 'hello', ' ', 'x y', '\n', 'é', 'ß', 'ümlaut', '中文', 'Ω', '😀', '👍🏽', '𝄞',
  '🇫🇷', 'e\u0301', '\u200d', '\ufeff', 'tab\t', '"quoted"', '<tag>', '&amp;'
]

const randomString = gen => {
  let out = ''
  const pieces = prng.int32(gen, 1, 4)
  for (let i = 0; i < pieces; i++) out += prng.oneOf(gen, PIECES)
  return out
}

const randomAttributes = gen => {
  const attrs = {}
  const choice = prng.int32(gen, 0, 5)
  if (choice === 1) attrs.bold = true
  if (choice === 2) attrs.italic = true
  if (choice === 3) attrs.color = prng.oneOf(gen, ['#f00', '#00ff00', 'blue'])
  if (choice === 4) attrs.link = { href: 'https://example.com/' + prng.word(gen, 1, 5) }
  if (choice === 5) { attrs.bold = null; attrs.size = prng.int32(gen, 1, 40) }
  return attrs
}

const randomPlain = (gen, depth = 0) => {
  const kind = prng.int32(gen, 0, depth > 2 ? 11 : 13)
  switch (kind) {
    case 0: return prng.int32(gen, -100, 100)
    case 1: return prng.oneOf(gen, [2 ** 31 - 1, 2 ** 31, -(2 ** 31), 2 ** 40, -(2 ** 45), 2 ** 53 - 1, -(2 ** 53 - 1)])
    case 2: return prng.oneOf(gen, [0.5, -1.25, 3.141592653589793, 1e300, -2.5e-300, 0.1])
    case 3: return randomString(gen)
    case 4: return prng.bool(gen)
    case 5: return null
    case 6: return prng.uint8Array(gen, prng.int32(gen, 0, 6))
    case 7: return ''
    // yjs takes a BigInt only inside an object or array value
    case 8: return depth > 0 ? BigInt(prng.int32(gen, -1000, 1000)) * 12345678901n : -0.5
    case 9: return prng.oneOf(gen, [0, 1, -1, 63, 64, -64, 127, 128, 8191, 8192])
    case 10: return prng.real53(gen)
    case 11: return prng.word(gen, 0, 8)
    case 12: {
      const out = {}
      const n = prng.int32(gen, 0, 3)
      for (let i = 0; i < n; i++) out[prng.oneOf(gen, ['k', 'key', 'ключ', '😀', 'a b', '0'])] = randomPlain(gen, depth + 1)
      return out
    }
    default: {
      const n = prng.int32(gen, 0, 3)
      const out = []
      for (let i = 0; i < n; i++) out.push(randomPlain(gen, depth + 1))
      return out
    }
  }
}

const randomMapValue = gen => {
  const kind = prng.int32(gen, 0, 9)
  if (kind === 7) return new Y.Map([['inner', randomPlain(gen)]])
  if (kind === 8) return Y.Array.from([randomPlain(gen), randomPlain(gen)])
  if (kind === 9) return new Y.Text(randomString(gen))
  return randomPlain(gen)
}

// Text positions at code point boundaries: yjs and yrs split a surrogate pair differently
// (a known divergence that depends on the document, see test_update_reader_interop.py).
const boundaries = text => {
  const out = [0]
  let index = 0
  for (const op of text.toDelta()) {
    if (typeof op.insert === 'string') {
      for (const char of op.insert) {
        index += char.length
        out.push(index)
      }
    } else {
      index += 1
      out.push(index)
    }
  }
  return out
}

const randomRange = (gen, text) => {
  const points = boundaries(text)
  const start = prng.int32(gen, 0, points.length - 2)
  const end = prng.int32(gen, start + 1, Math.min(points.length - 1, start + 4))
  return [points[start], points[end] - points[start]]
}

const editText = (gen, text) => {
  const op = prng.int32(gen, 0, 5)
  if (op <= 1 || text.length === 0) {
    const attrs = randomAttributes(gen)
    const index = prng.oneOf(gen, boundaries(text))
    text.insert(index, randomString(gen), Object.keys(attrs).length > 0 ? attrs : undefined)
  } else if (op === 2) {
    text.delete(...randomRange(gen, text))
  } else if (op === 3) {
    text.format(...randomRange(gen, text), randomAttributes(gen))
  } else if (op === 4) {
    text.insertEmbed(prng.oneOf(gen, boundaries(text)), { image: prng.word(gen, 1, 6) + '.png' })
  } else {
    text.insert(prng.oneOf(gen, boundaries(text)), randomString(gen))
  }
}

const editMap = (gen, map) => {
  const keys = ['title', 'count', 'k', 'ключ', '😀', 'nested', 'list', 'bin', '']
  if (prng.int32(gen, 0, 4) === 0 && map.size > 0) {
    map.delete(prng.oneOf(gen, Array.from(map.keys())))
  } else {
    map.set(prng.oneOf(gen, keys), randomMapValue(gen))
  }
}

const editArray = (gen, array) => {
  const len = array.length
  const op = prng.int32(gen, 0, 3)
  if (op === 0 && len > 0) {
    const index = prng.int32(gen, 0, len - 1)
    array.delete(index, prng.int32(gen, 1, Math.min(3, len - index)))
  } else if (op === 1) {
    array.insert(prng.int32(gen, 0, len), [new Y.Map([['id', prng.int32(gen, 0, 99)]])])
  } else {
    const values = []
    const n = prng.int32(gen, 1, 3)
    for (let i = 0; i < n; i++) values.push(randomPlain(gen))
    array.insert(prng.int32(gen, 0, len), values)
  }
}

const editXml = (gen, fragment) => {
  const len = fragment.length
  const op = prng.int32(gen, 0, 4)
  if (op === 0 && len > 0) {
    fragment.delete(prng.int32(gen, 0, len - 1), 1)
  } else if (op === 1 && len > 0) {
    const child = fragment.get(prng.int32(gen, 0, len - 1))
    if (child instanceof Y.XmlElement) {
      child.setAttribute(prng.oneOf(gen, ['class', 'id', 'data-x']), prng.word(gen, 0, 5))
    } else if (child instanceof Y.XmlText && child.length > 0) {
      child.format(...randomRange(gen, child), randomAttributes(gen))
    }
  } else if (op === 2 && len > 0) {
    const child = fragment.get(prng.int32(gen, 0, len - 1))
    if (child instanceof Y.XmlElement) {
      const text = new Y.XmlText()
      child.insert(child.length, [text])
      text.insert(0, randomString(gen), randomAttributes(gen))
    } else if (child instanceof Y.XmlText) {
      child.insert(prng.oneOf(gen, boundaries(child)), randomString(gen))
    }
  } else if (op === 3) {
    const text = new Y.XmlText()
    fragment.insert(prng.int32(gen, 0, len), [text])
    text.insert(0, randomString(gen))
  } else {
    const element = new Y.XmlElement(prng.oneOf(gen, ['p', 'h1', 'li', 'span']))
    fragment.insert(prng.int32(gen, 0, len), [element])
    element.setAttribute('id', prng.word(gen, 1, 4))
    const text = new Y.XmlText()
    element.insert(0, [text])
    text.insert(0, randomString(gen))
  }
}

const editDoc = (gen, doc) => {
  const ops = prng.int32(gen, 1, 3)
  doc.transact(() => {
    for (let i = 0; i < ops; i++) {
      const root = prng.int32(gen, 0, 3)
      if (root === 0) editText(gen, doc.getText('t'))
      else if (root === 1) editMap(gen, doc.getMap('m'))
      else if (root === 2) editArray(gen, doc.getArray('a'))
      else editXml(gen, doc.getXmlFragment('x'))
    }
  })
}

const CLIENT_IDS = [1, 2, 127, 128, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 40 + 3, 2 ** 53 - 1]

const mapToObject = map => {
  const out = {}
  map.forEach((clock, client) => { out[client] = clock })
  return out
}

const stateVectorOf = doc => mapToObject(Y.decodeStateVector(Y.encodeStateVector(doc)))

// The state vector of a fresh document that applied `updates`.
const stateAfter = updates => {
  const doc = new Y.Doc()
  for (const update of updates) Y.applyUpdate(doc, update)
  return stateVectorOf(doc)
}

const session = seed => {
  const gen = prng.create(seed)
  const docCount = prng.int32(gen, 1, 3)
  const docs = []
  const updates = []
  const transactions = []
  const used = new Set()
  for (let i = 0; i < docCount; i++) {
    const doc = new Y.Doc({ gc: prng.bool(gen) })
    let clientID
    do {
      clientID = prng.int32(gen, 0, 3) === 0 ? prng.oneOf(gen, CLIENT_IDS) : prng.uint32(gen, 0, 2 ** 32 - 1)
    } while (used.has(clientID))
    used.add(clientID)
    doc.clientID = clientID
    doc.on('update', (update, origin, _doc, transaction) => {
      if (origin !== 'sync') {
        transactions.push(update)
        updates.push({ origin: 'transaction', update, base: mapToObject(transaction.beforeState) })
      }
    })
    docs.push(doc)
  }
  const steps = prng.int32(gen, 1, 25)
  for (let step = 0; step < steps; step++) {
    const doc = prng.oneOf(gen, docs)
    editDoc(gen, doc)
    if (docs.length > 1 && prng.int32(gen, 0, 3) === 0) {
      const from = prng.oneOf(gen, docs)
      const to = prng.oneOf(gen, docs)
      if (from !== to) {
        const diff = Y.encodeStateAsUpdate(from, Y.encodeStateVector(to))
        updates.push({ origin: 'sync', update: diff, base: stateVectorOf(to) })
        Y.applyUpdate(to, diff, 'sync')
      }
    }
  }
  if (transactions.length > 1) {
    const start = prng.int32(gen, 0, transactions.length - 1)
    const stop = prng.int32(gen, start + 1, transactions.length)
    updates.push({
      origin: 'merge',
      update: Y.mergeUpdates(transactions.slice(start, stop)),
      base: stateAfter(transactions.slice(0, start))
    })
  }
  for (const doc of docs) {
    updates.push({ origin: 'state', update: Y.encodeStateAsUpdate(doc), base: {} })
    const other = prng.oneOf(gen, docs)
    updates.push({
      origin: 'state-diff',
      update: Y.encodeStateAsUpdate(doc, Y.encodeStateVector(other)),
      base: stateVectorOf(other)
    })
  }
  if (transactions.length > 0) {
    const merged = Y.mergeUpdates(transactions)
    updates.push({ origin: 'merge', update: merged, base: {} })
    const cut = prng.int32(gen, 0, transactions.length)
    const earlier = new Y.Doc()
    for (const update of transactions.slice(0, cut)) Y.applyUpdate(earlier, update)
    updates.push({
      origin: 'diff-update',
      update: Y.diffUpdate(merged, Y.encodeStateVector(earlier)),
      base: stateVectorOf(earlier)
    })
  }
  const reader = new Y.Doc()
  for (const update of transactions) Y.applyUpdate(reader, update)
  return {
    seed,
    roots: ROOTS,
    updates: updates.map(({ origin, update, base }) => ({ hex: toHex(update), origin, base, read: readUpdate(update) })),
    json: readRoots(reader, ROOTS),
    state_vector: stateVectorOf(reader)
  }
}

// ---- applying crafted updates ----

const apply = ({ roots, base = [], updates = [] }) => {
  const doc = new Y.Doc()
  doc.clientID = 1
  const errors = []
  for (const hex of [...base, ...updates]) {
    try {
      Y.applyUpdate(doc, fromHex(hex))
      errors.push(null)
    } catch (error) {
      errors.push(String((error && error.message) || error))
    }
  }
  const pending = doc.store.pendingStructs
  const missing = {}
  if (pending !== null) pending.missing.forEach((clock, client) => { missing[client] = clock })
  return {
    errors,
    state_vector: stateVectorOf(doc),
    pending_structs: pending === null ? null : { missing, update: toHex(pending.update) },
    pending_ds: doc.store.pendingDs === null ? null : toHex(doc.store.pendingDs),
    json: readRoots(doc, roots)
  }
}

const read = hex => {
  try {
    return readUpdate(fromHex(hex))
  } catch (error) {
    return { error: String((error && error.message) || error) }
  }
}

const request = JSON.parse(readFileSync(0, 'utf8'))
let reply
if (request.cmd === 'generate') {
  reply = { sessions: request.seeds.map(session) }
} else if (request.cmd === 'apply') {
  reply = { results: request.cases.map(apply) }
} else if (request.cmd === 'read') {
  reply = { reads: request.updates.map(read) }
} else {
  throw new Error(`unknown command ${request.cmd}`)
}
process.stdout.write(JSON.stringify(reply))
