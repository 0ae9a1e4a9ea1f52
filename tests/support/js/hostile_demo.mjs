// Hostile content in the browser demo: one scenario per run against a running `collab serve`
// (tests/e2e/test_demo_hostile.py).
// A victim (alice) opens note w1/n1 in headless Chromium; "mallory", another editor of the
// workspace, connects with the stock y-websocket provider from Node and sets hostile awareness
// states; "bob" (Node, stock provider) edits the note honestly.
// env: BASE_URL, TOKEN_ALICE, TOKEN_MALLORY, TOKEN_BOB, SCENARIO, CHROMIUM_PATH.
// Prints one JSON line: {"ok": true, "result": {...}} or {"ok": false, "error": "..."}.
import { createRequire } from 'node:module'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

import WebSocket from 'ws'
import { WebsocketProvider } from 'y-websocket'
import * as Y from 'yjs'

const HERE = dirname(fileURLToPath(import.meta.url))
const requireDemo = createRequire(resolve(HERE, '../../../clients/js-demo/package.json'))
const { chromium } = requireDemo('playwright-core')

console.log = console.error
console.info = console.error
console.warn = console.error
globalThis.WebSocket ??= WebSocket

const BASE_URL = process.env.BASE_URL.replace(/\/$/, '')
const WS_URL = BASE_URL.replace(/^http/, 'ws')
const SCENARIO = process.env.SCENARIO
const CHROMIUM_PATH = process.env.CHROMIUM_PATH || '/usr/bin/chromium'
const TIMEOUT_MS = 15000 * Number(process.env.COLLAB_TEST_TIMEOUT_FACTOR || 1)
const CHROMIUM_ARGS = [
  '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'
]

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function eventually (what, predicate, timeoutMs = TIMEOUT_MS) {
  const deadline = Date.now() + timeoutMs
  let last
  for (;;) {
    try {
      last = await predicate()
      if (last) return last
    } catch (error) {
      last = error
    }
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what} (last: ${last})`)
    await sleep(50)
  }
}

/** Whether `predicate` becomes true within `ms` (no throw). */
async function within (ms, predicate) {
  try {
    await eventually('', predicate, ms)
    return true
  } catch {
    return false
  }
}

function yclient (token) {
  const doc = new Y.Doc()
  const provider = new WebsocketProvider(`${WS_URL}/ws/docs`, 'w1/n1', doc, {
    params: { token }, WebSocketPolyfill: WebSocket, disableBc: true
  })
  return { doc, provider, synced: new Promise((resolve) => provider.once('sync', resolve)) }
}

function docText (doc) {
  const parts = []
  const walk = (node) => {
    if (node instanceof Y.XmlText) parts.push(node.toString().replace(/<[^>]*>/g, ''))
    else if (node instanceof Y.XmlElement || node instanceof Y.XmlFragment) node.toArray().forEach(walk)
  }
  walk(doc.getXmlFragment('body'))
  return parts.join('|')
}

function appendParagraph (doc, text) {
  const body = doc.getXmlFragment('body')
  const paragraph = new Y.XmlElement('paragraph')
  paragraph.insert(0, [new Y.XmlText(text)])
  body.insert(body.length, [paragraph])
  return paragraph
}

/** Mallory's cursor: a valid selection of a few characters of the first paragraph. */
function cursorIn (doc) {
  const text = doc.getXmlFragment('body').get(0).get(0)
  return {
    anchor: Y.relativePositionToJSON(Y.createRelativePositionFromTypeIndex(text, 1)),
    head: Y.relativePositionToJSON(Y.createRelativePositionFromTypeIndex(text, 5))
  }
}

const editorText = (page) => page.$eval('[data-testid="editor"]', (el) => {
  const copy = el.cloneNode(true)
  copy.querySelectorAll('.caret').forEach((caret) => caret.remove())
  return copy.textContent
})

async function openVictim (browser, pageErrors) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } })
  const page = await context.newPage()
  page.on('pageerror', (error) => { pageErrors.push(String(error.message || error).slice(0, 300)); console.error('STACK', String(error.stack).slice(0, 3000)) })
  await page.goto(`${BASE_URL}/?token=${process.env.TOKEN_ALICE}#/w1/n1`)
  await page.locator('[data-testid="editor"]').waitFor({ timeout: TIMEOUT_MS })
  await eventually('alice connected', async () =>
    (await page.locator('[data-testid="connection-status"]').getAttribute('data-state')) === 'connected')
  await eventually('alice sees the first paragraph', async () => (await editorText(page)).includes('hello world'))
  return page
}

const HOSTILE_COLOR = '#000;position:fixed;top:0;left:0;width:100vw;height:100vh;z-index:2147483647;' +
  'pointer-events:auto;font-size:40px'

function hostileColorState (cursor) {
  return { user: { name: 'Your session expired: sign in again at evil.example', color: HOSTILE_COLOR }, cursor }
}

const scenarios = {

  // `early`: the state is set before alice opens the note; otherwise after her editor shows
  // mallory's honest caret.
  async 'awareness-color-css' ({ page, mallory, variant }) {
    const cursor = cursorIn(mallory.doc)
    if (variant !== 'early') {
      mallory.provider.awareness.setLocalState({ user: { name: 'Mallory', color: '#123456' }, cursor })
      const label = page.locator('[data-testid="cursor-label"]', { hasText: 'Mallory' })
      await label.waitFor({ timeout: TIMEOUT_MS })
      mallory.provider.awareness.setLocalState(hostileColorState(cursor))
    }
    // Give the state time to arrive (batched per 50 ms tick) and render: until a remote
    // element carries the declarations, or 4 s (a page that drops or cleans them).
    await within(4000, () => page.evaluate(() =>
      [...document.querySelectorAll('.caret, .caret-label, .ProseMirror-yjs-selection')]
        .some((el) => (el.getAttribute('style') || '').includes('fixed'))))
    await sleep(300)
    return page.evaluate(() => {
      const described = (el) => {
        const style = getComputedStyle(el)
        const rect = el.getBoundingClientRect()
        return { class: el.className, style: el.getAttribute('style'), position: style.position,
          width: Math.round(rect.width), height: Math.round(rect.height), zIndex: style.zIndex }
      }
      const remote = [...document.querySelectorAll('.caret, .caret-label, .ProseMirror-yjs-selection')].map(described)
      const button = document.querySelector('[data-testid="new-note"]').getBoundingClientRect()
      const atButton = document.elementFromPoint(button.left + button.width / 2, button.top + button.height / 2)
      const atCenter = document.elementFromPoint(innerWidth / 2, innerHeight / 2)
      return {
        remote,
        viewport: { width: innerWidth, height: innerHeight },
        new_note_button_hit: Boolean(atButton && atButton.closest('[data-testid="new-note"]')),
        element_at_button: atButton ? atButton.className || atButton.tagName : null,
        center_covered_by_remote_caret: Boolean(atCenter && atCenter.closest('.caret')),
        fixed_remote_elements: remote.filter((r) => r.position === 'fixed').length
      }
    })
  },

  // Mallory's awareness state is a JSON object, as the server requires, but its `user` or its
  // `cursor` is not what y-prosemirror expects.
  async 'awareness-malformed' ({ page, mallory, bob, pageErrors, variant }) {
    const cursor = cursorIn(mallory.doc)
    const states = {
      'user-string': { user: 'mallory', cursor },
      'cursor-null-anchor': { user: { name: 'Mallory', color: '#123456' }, cursor: { anchor: null, head: null } }
    }
    mallory.provider.awareness.setLocalState(states[variant])
    await eventually('bob sees mallory\'s state', async () =>
      [...bob.provider.awareness.getStates().values()].some((s) => JSON.stringify(s) === JSON.stringify(states[variant])))
    await sleep(500)
    // Bob, an honest editor, adds a paragraph.
    appendParagraph(bob.doc, 'BOB-REMOTE-EDIT')
    const aliceSawBob = await within(6000, async () => (await editorText(page)).includes('BOB-REMOTE-EDIT'))
    // Alice types at the end of the note.
    await page.locator('[data-testid="editor"]').click()
    await page.keyboard.press('Control+End')
    await page.keyboard.type(' ALICE-LOCAL', { delay: 10 })
    const bobSawAlice = await within(6000, () => docText(bob.doc).includes('ALICE-LOCAL'))
    await sleep(500)
    const shared = docText(bob.doc)
    return {
      alice_saw_bob_edit: aliceSawBob,
      bob_saw_alice_edit: bobSawAlice,
      shared_text: shared,
      shared_keeps_bob_edit: shared.includes('BOB-REMOTE-EDIT'),
      alice_editor_text: await editorText(page),
      page_errors: pageErrors.slice(0, 10)
    }
  }
}

async function main () {
  const [name, variant] = SCENARIO.split(':')
  const scenario = scenarios[name]
  if (!scenario) throw new Error(`unknown scenario ${SCENARIO}`)
  const mallory = yclient(process.env.TOKEN_MALLORY)
  const bob = yclient(process.env.TOKEN_BOB)
  await Promise.all([mallory.synced, bob.synced])
  if (mallory.doc.getXmlFragment('body').length === 0) appendParagraph(mallory.doc, 'hello world, a note')
  await eventually('bob has the first paragraph', () => docText(bob.doc).includes('hello world'))
  // Neither Node client shows a cursor until it sets one.
  mallory.provider.awareness.setLocalState({ user: { name: 'Mallory', color: '#123456' } })
  bob.provider.awareness.setLocalState({ user: { name: 'Bob', color: '#1c7ed6' } })
  if (SCENARIO === 'awareness-color-css:early') mallory.provider.awareness.setLocalState(hostileColorState(cursorIn(mallory.doc)))
  const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS })
  const pageErrors = []
  try {
    const page = await openVictim(browser, pageErrors)
    const result = await scenario({ page, mallory, bob, pageErrors, variant })
    result.page_errors ??= pageErrors.slice(0, 10)
    process.stdout.write(JSON.stringify({ ok: true, result }) + '\n')
  } finally {
    await browser.close()
    mallory.provider.destroy()
    bob.provider.destroy()
  }
}

main().then(() => process.exit(0), (error) => {
  process.stdout.write(JSON.stringify({ ok: false, error: String(error && error.stack || error) }) + '\n')
  process.exit(1)
})
