// "Saved" from collab's saved echo. A connection opened with `params: { saved: '1' }` gets
// every update it sends back, as a sync update, once the server's store holds it. The stock
// y-websocket 3 provider applies such an echo as a no-op (its content is in the document
// already) and emits no 'update' for it, so it is read here from the provider's sync
// messages: the local edits are saved when every id they inserted or deleted has come back.
//
// The ids compared are each client's clock ranges of inserted structs and of the delete set
// (`Y.decodeUpdate`), the rule @y/websocket 4 applies for its sync status. Only sync updates
// count: an echo is one, while the server's sync step 2 carries its whole delete set, stored or
// not. After a reconnect the echo of what was sent before may be lost with the old socket: the
// edits not confirmed yet are sent again, and come back once stored (the server echoes an
// update it already has too).
import * as Y from 'yjs'

const MESSAGE_SYNC = 0
const SYNC_UPDATE = 2
// Local updates kept for a resend are merged beyond this many.
const MAX_KEPT_UPDATES = 64

export class SavedEcho {
  constructor (provider, onChange) {
    this.provider = provider
    this.unconfirmed = { inserts: new Map(), deletes: new Map() }
    this.sent = []
    this._onUpdate = (update, origin) => {
      if (origin === this.provider) return
      const ids = idsOf(update)
      addIds(this.unconfirmed.inserts, ids.inserts)
      addIds(this.unconfirmed.deletes, ids.deletes)
      this.sent.push(update)
      if (this.sent.length > MAX_KEPT_UPDATES) this.sent = [Y.mergeUpdates(this.sent)]
      onChange()
    }
    this._handleSync = provider.messageHandlers[MESSAGE_SYNC]
    provider.messageHandlers[MESSAGE_SYNC] = (encoder, decoder, ...rest) => {
      const update = syncUpdateOf(decoder)
      this._handleSync(encoder, decoder, ...rest)
      if (update !== null && !this.saved) {
        const ids = idsOf(update)
        removeIds(this.unconfirmed.inserts, ids.inserts)
        removeIds(this.unconfirmed.deletes, ids.deletes)
        if (this.saved) this.sent = []
        onChange()
      }
    }
    this._onSync = (synced) => {
      if (synced && !this.saved) this.resend()
    }
    provider.doc.on('update', this._onUpdate)
    provider.on('sync', this._onSync)
  }

  /** Whether the server stored every local edit made so far. */
  get saved () {
    return this.unconfirmed.inserts.size === 0 && this.unconfirmed.deletes.size === 0
  }

  resend () {
    const ws = this.provider.ws
    if (!ws || ws.readyState !== ws.OPEN || this.sent.length === 0) return
    ws.send(updateMessage(Y.mergeUpdates(this.sent)))
  }

  destroy () {
    this.provider.doc.off('update', this._onUpdate)
    this.provider.off('sync', this._onSync)
    this.provider.messageHandlers[MESSAGE_SYNC] = this._handleSync
  }
}

// The update of a sync update message, read without moving the provider's decoder; null for
// the other sync messages.
function syncUpdateOf (decoder) {
  const bytes = decoder.arr
  const [syncType, at] = readVarUint(bytes, decoder.pos)
  if (syncType !== SYNC_UPDATE) return null
  const [length, start] = readVarUint(bytes, at)
  return bytes.subarray(start, start + length)
}

function readVarUint (bytes, pos) {
  let value = 0
  let factor = 1
  for (;;) {
    const byte = bytes[pos++]
    value += (byte & 0x7f) * factor
    if (byte < 0x80) return [value, pos]
    factor *= 128
  }
}

function writeVarUint (out, value) {
  while (value > 0x7f) {
    out.push((value & 0x7f) | 0x80)
    value = Math.floor(value / 128)
  }
  out.push(value)
}

function updateMessage (update) {
  const head = [MESSAGE_SYNC, SYNC_UPDATE]
  writeVarUint(head, update.length)
  const message = new Uint8Array(head.length + update.length)
  message.set(head)
  message.set(update, head.length)
  return message
}

// { inserts, deletes }: Map<client, Array<[start, end)>> of an update's structs and deletions.
function idsOf (update) {
  const { structs, ds } = Y.decodeUpdate(update)
  const inserts = new Map()
  for (const struct of structs) {
    if (struct instanceof Y.Skip) continue
    addRange(inserts, struct.id.client, struct.id.clock, struct.id.clock + struct.length)
  }
  const deletes = new Map()
  ds.clients.forEach((items, client) => {
    for (const item of items) addRange(deletes, client, item.clock, item.clock + item.len)
  })
  return { inserts, deletes }
}

function addRange (ids, client, start, end) {
  const ranges = ids.get(client)
  if (ranges) ranges.push([start, end])
  else ids.set(client, [[start, end]])
}

function addIds (ids, more) {
  more.forEach((ranges, client) => {
    for (const [start, end] of ranges) addRange(ids, client, start, end)
  })
}

function removeIds (ids, received) {
  received.forEach((cuts, client) => {
    let ranges = ids.get(client)
    if (!ranges) return
    for (const [cutStart, cutEnd] of cuts) {
      ranges = ranges.flatMap(([start, end]) => {
        if (cutEnd <= start || cutStart >= end) return [[start, end]]
        const kept = []
        if (start < cutStart) kept.push([start, cutStart])
        if (cutEnd < end) kept.push([cutEnd, end])
        return kept
      })
    }
    if (ranges.length === 0) ids.delete(client)
    else ids.set(client, ranges)
  })
}
