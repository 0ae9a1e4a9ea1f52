// What every load generator (gen.mjs, gen_storm.mjs, gen_drain.mjs) shares: its config, the
// line protocol with the Python driver (JSON events on stdout, one command per line on
// stdin), and the y-websocket sync messages.

import { readFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import * as syncProtocol from 'y-protocols/sync'

export const MESSAGE_SYNC = 0
export const MESSAGE_AWARENESS = 1
export const TICK_MS = 5

export const config = JSON.parse(readFileSync(process.argv[2], 'utf8'))

export function emit (event) {
  process.stdout.write(JSON.stringify(event) + '\n')
}

const stdinLines = createInterface({ input: process.stdin })
const waiting = []
stdinLines.on('line', (line) => {
  const next = waiting.shift()
  if (next) next(line.trim())
})
stdinLines.on('close', () => process.exit(3)) // the driver went away: never outlive it

/** The driver's next command line ("go", "hold", "quit"). */
export function command () {
  return new Promise((resolve) => waiting.push(resolve))
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

export function withDeadline (promise, ms, what) {
  let timer
  const timeout = new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

export const EMPTY_DOC = new Y.Doc()

export function syncStep1 (doc) {
  const encoder = encoding.createEncoder()
  encoding.writeVarUint(encoder, MESSAGE_SYNC)
  syncProtocol.writeSyncStep1(encoder, doc)
  return encoding.toUint8Array(encoder)
}

export function syncStep2 (doc, stateVector) {
  const encoder = encoding.createEncoder()
  encoding.writeVarUint(encoder, MESSAGE_SYNC)
  syncProtocol.writeSyncStep2(encoder, doc, stateVector)
  return encoding.toUint8Array(encoder)
}

export function updateMessage (update) {
  const encoder = encoding.createEncoder()
  encoding.writeVarUint(encoder, MESSAGE_SYNC)
  syncProtocol.writeUpdate(encoder, update)
  return encoding.toUint8Array(encoder)
}
