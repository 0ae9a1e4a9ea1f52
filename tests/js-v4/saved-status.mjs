// The @y/websocket 4 provider (on @y/y 14) against collab: does its sync status reach "synced"
// for local edits, with `?saved=1` and without? Run by tests/e2e/test_saved_status_v4.py as
//
//   node saved-status.mjs WS_URL ROOM SAVED_TOKEN PLAIN_TOKEN TIMEOUT_MS
//
// and prints one JSON line: what it observed, or {"error": ...} (exit code 1).
//
// The sync status: from 4.0.0-rc.1 on (y-websocket's repository), `provider.syncStatus` says
// `localUpdatesSynced` once every local update's ids came back in a sync step 2 or update from
// the server, and `status` is "green" when, besides, the provider is connected and synced. The
// newest v4 on the npm registry, 4.0.0-3, predates that API: `SyncStatus` below applies its
// rule, with the same @y/y functions, wherever the provider lacks it.
import { readFileSync } from 'node:fs'
import * as Y from '@y/y'
import WebSocket from 'ws'
import { WebsocketProvider } from '@y/websocket'

const [url, room, savedToken, plainToken, timeoutArg] = process.argv.slice(2)
const TIMEOUT_MS = Number(timeoutArg)
const MESSAGE_SYNC = 0
const SYNC_STEP2 = 1
const SYNC_UPDATE = 2

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

class SyncStatus {
  constructor (provider) {
    this.provider = provider
    this.unconfirmed = []
    provider.doc.on('update', (update, origin) => {
      if (origin !== provider) this.unconfirmed.push(Y.createContentIdsFromUpdate(update))
    })
    const handleSync = provider.messageHandlers[MESSAGE_SYNC]
    provider.messageHandlers[MESSAGE_SYNC] = (encoder, decoder, ...rest) => {
      const [syncType, at] = readVarUint(decoder.arr, decoder.pos)
      let update = null
      if (syncType === SYNC_STEP2 || syncType === SYNC_UPDATE) {
        const [length, start] = readVarUint(decoder.arr, at)
        update = decoder.arr.subarray(start, start + length)
      }
      handleSync(encoder, decoder, ...rest)
      if (update !== null) this.received(Y.createContentIdsFromUpdate(update))
    }
  }

  received (ids) {
    this.unconfirmed = this.unconfirmed
      .map((unconfirmed) => Y.excludeContentIds(unconfirmed, ids))
      .filter((unconfirmed) => !unconfirmed.inserts.isEmpty() || !unconfirmed.deletes.isEmpty())
  }

  get current () {
    const native = this.provider.syncStatus
    const localUpdatesSynced = native ? native.localUpdatesSynced : this.unconfirmed.length === 0
    const connected = this.provider.wsconnected
    const receivedInitialSync = this.provider.synced
    return {
      source: native ? 'provider.syncStatus' : 'the rule of provider.syncStatus',
      connected,
      receivedInitialSync,
      localUpdatesSynced,
      synced: connected && receivedInitialSync && localUpdatesSynced
    }
  }
}

function open (token, params) {
  const doc = new Y.Doc()
  const provider = new WebsocketProvider(url, room, doc, {
    params: { token, ...params },
    WebSocketPolyfill: WebSocket,
    // Both clients live in this process: BroadcastChannel would sync them past the server.
    disableBc: true
  })
  return { doc, provider, status: new SyncStatus(provider) }
}

async function until (what, predicate) {
  const deadline = Date.now() + TIMEOUT_MS
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`not within ${TIMEOUT_MS} ms: ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

const text = (client) => client.doc.get('t').toString()
const versionOf = (name) =>
  JSON.parse(readFileSync(new URL(`./node_modules/${name}/package.json`, import.meta.url))).version

const saved = open(savedToken, { saved: '1' })
const plain = open(plainToken, {})
let exitCode = 0
try {
  await until('both providers synced', () => saved.provider.synced && plain.provider.synced)
  const initial = saved.status.current
  plain.doc.get('t').insert(0, 'a')
  await until('the saved client has the plain edit', () => text(saved) === 'a')
  saved.doc.get('t').insert(1, 'b')
  const afterEdit = saved.status.current
  const started = Date.now()
  await until('the saved client synced again', () => saved.status.current.synced)
  const syncedAfterMs = Date.now() - started
  // Its next edit reaches the plain client after anything the server sent that client
  // before this echo (one log, stored in order): an echo of 'a' would have come first.
  saved.doc.get('t').insert(2, 'c')
  await until('the saved client synced again after its second edit', () => saved.status.current.synced)
  await until('the plain client has every edit', () => text(plain) === 'abc')
  console.log(JSON.stringify({
    versions: { '@y/websocket': versionOf('@y/websocket'), '@y/y': versionOf('@y/y') },
    initial,
    afterEdit,
    syncedAfterMs,
    saved: saved.status.current,
    plain: plain.status.current,
    texts: { saved: text(saved), plain: text(plain) }
  }))
} catch (error) {
  exitCode = 1
  console.log(JSON.stringify({
    error: String(error),
    saved: saved.status.current,
    plain: plain.status.current
  }))
} finally {
  saved.provider.destroy()
  plain.provider.destroy()
}
process.exit(exitCode)
