// End-to-end scenarios of the browser demo in real headless Chromium: two users (two browser
// contexts) on the notes of a running `collab serve` (best with a short
// COLLAB_CATALOG_INTERVAL_MS: the sidebar's titles, search and tags follow the catalog).
//
// env: BASE_URL, TOKEN_ALICE, TOKEN_BOB (editor tokens for workspace w1), ARTIFACTS_DIR;
// optional CHROMIUM_PATH (default /usr/bin/chromium), COLLAB_TEST_TIMEOUT_FACTOR.
// Prints one line per screenshot ("screenshot: PATH") and, last, one JSON summary line:
// {"ok", "scenarios": [{"name", "ok", "ms", "error"?}], "screenshots", "texts", "page_errors"}.
// Exits 0 only when every scenario passed.
import { mkdir } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { chromium } from 'playwright-core'

const env = (name, fallback) => {
  const value = process.env[name] ?? fallback
  if (value === undefined) {
    console.error(`missing environment variable ${name}`)
    process.exit(2)
  }
  return value
}

const BASE_URL = env('BASE_URL').replace(/\/$/, '')
const TOKENS = { alice: env('TOKEN_ALICE'), bob: env('TOKEN_BOB') }
const ARTIFACTS_DIR = resolve(env('ARTIFACTS_DIR', 'test-artifacts'))
const CHROMIUM_PATH = env('CHROMIUM_PATH', '/usr/bin/chromium')
const FACTOR = Number(process.env.COLLAB_TEST_TIMEOUT_FACTOR || 1)
const TIMEOUT_MS = 15000 * FACTOR
const WORKSPACE = 'w1'
const NOTE = 'n1'
const CHROMIUM_ARGS = [
  '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'
]

const summary = { ok: false, scenarios: [], screenshots: [], texts: {}, page_errors: [] }
const users = {}
let secondNote = null // the note the 'new-note' scenario creates

function claims (token) {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString())
}

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
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

function assert (condition, message) {
  if (!condition) throw new Error(message)
}

const testid = (page, id) => page.locator(`[data-testid="${id}"]`)

// The editor's text without the remote carets' name labels (widgets inside the editable).
function editorText (page) {
  return page.$eval('[data-testid="editor"]', (el) => {
    const copy = el.cloneNode(true)
    copy.querySelectorAll('.caret').forEach((caret) => caret.remove())
    return copy.textContent
  })
}

async function typeAtEnd (page, text) {
  const editor = testid(page, 'editor')
  await editor.click()
  await page.keyboard.press('Control+End')
  await page.keyboard.type(text, { delay: 10 })
}

async function converged (what, expectIncluded = []) {
  return eventually(what, async () => {
    const [a, b] = await Promise.all([editorText(users.alice.page), editorText(users.bob.page)])
    return a === b && expectIncluded.every((part) => a.includes(part)) ? a : false
  })
}

const noteItem = (page, id) => testid(page, 'note-list').locator(`[data-testid="note-item"][data-note="${id}"]`)
const noteRow = (page, id) => testid(page, 'note-list')
  .locator('li', { has: page.locator(`[data-testid="note-item"][data-note="${id}"]`) })

/** The note ids the sidebar lists, in order (once its list is not loading). */
async function listedNotes (page) {
  const list = testid(page, 'note-list')
  if ((await list.getAttribute('data-state')) !== 'ready') return null
  return list.locator('[data-testid="note-item"]').evaluateAll((items) => items.map((item) => item.dataset.note))
}

function sameIds (listed, expected) {
  return Array.isArray(listed) && listed.length === expected.length && expected.every((id) => listed.includes(id))
}

// A mark on the page's window: gone after a reload, so its presence proves there was none.
async function markPage (page) {
  await page.evaluate(() => { window.__e2eMark = true })
}

function pageMarked (page) {
  return page.evaluate(() => window.__e2eMark === true)
}

function localDate (days) {
  const day = new Date()
  day.setDate(day.getDate() + days)
  const pad = (n) => String(n).padStart(2, '0')
  return `${day.getFullYear()}-${pad(day.getMonth() + 1)}-${pad(day.getDate())}`
}

async function unreadCount (page) {
  const badge = testid(page, 'unread-count')
  return (await badge.isVisible()) ? Number(await badge.textContent()) : 0
}

async function api (who, method, path, body, expectStatus) {
  const response = await fetch(`${BASE_URL}${path}`, {
    method,
    headers: { Authorization: `Bearer ${TOKENS[who]}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(body)
  })
  const text = await response.text()
  assert(response.status === expectStatus, `${method} ${path} answered ${response.status}: ${text}`)
  return JSON.parse(text)
}

async function postNotification (from, to, title, body) {
  const sent = await api(from, 'POST', '/api/v1/notifications',
    { workspace: WORKSPACE, recipients: [users[to].sub], title, body, link: `#/${WORKSPACE}/${NOTE}` }, 201)
  return sent.notifications[0]
}

async function screenshots (scenario) {
  for (const [who, { page }] of Object.entries(users)) {
    const path = join(ARTIFACTS_DIR, `${scenario}-${who}.png`)
    await page.screenshot({ path })
    summary.screenshots.push(path)
    console.log(`screenshot: ${path}`)
  }
}

const scenarios = {
  async 'open-deep-link' () {
    await Promise.all(Object.entries(users).map(async ([who, user]) => {
      await user.page.goto(`${BASE_URL}/?token=${TOKENS[who]}#/${WORKSPACE}/${NOTE}`)
      await testid(user.page, 'editor').waitFor({ timeout: TIMEOUT_MS })
      await eventually(`${who} connected`, async () =>
        (await testid(user.page, 'connection-status').getAttribute('data-state')) === 'connected')
      const url = new URL(user.page.url())
      assert(!url.searchParams.has('token'), `${who}: the token stays in the address bar: ${url}`)
      assert(url.hash === `#/${WORKSPACE}/${NOTE}`, `${who}: the deep link's hash was lost: ${url.hash}`)
      // n1 was never written: it opens empty, and joins the catalog with its first edit.
      await eventually(`${who}'s note list loaded`, async () =>
        (await testid(user.page, 'note-list').getAttribute('data-state')) === 'ready')
    }))
  },

  async 'concurrent-typing' () {
    const { alice, bob } = users
    const before = await editorText(alice.page)
    const typed = { alice: 'Alice writes the agenda. ', bob: 'Bob adds the budget. ' }
    await Promise.all([typeAtEnd(alice.page, typed.alice), typeAtEnd(bob.page, typed.bob)])
    const text = await converged('both editors show the same text')
    const letters = (s) => [...s].sort().join('')
    assert(letters(text) === letters(before + typed.alice + typed.bob),
      `characters lost or duplicated: ${JSON.stringify(text)}`)
    summary.texts['concurrent-typing'] = text
    // "Saved" is the server's echo of every local edit, after its store took them (?saved=1).
    for (const [who, { page, sockets }] of Object.entries(users)) {
      assert(sockets.some((url) => url.includes(`/ws/docs/${WORKSPACE}/${NOTE}?`) && new URL(url).searchParams.get('saved') === '1'),
        `${who}'s document connection does not ask for the saved echo: ${sockets.join(' ')}`)
      await eventually(`${who} shows Saved`, async () => {
        const status = testid(page, 'save-status')
        return (await status.getAttribute('data-state')) === 'saved' && (await status.textContent()) === 'Saved'
      })
    }
    await eventually(`both note lists show ${NOTE} once the catalog indexed it`, async () =>
      (await noteItem(alice.page, NOTE).isVisible()) && (await noteItem(bob.page, NOTE).isVisible()))
  },

  async 'remote-cursor' () {
    const { alice, bob } = users
    await typeAtEnd(bob.page, 'Cursor check.')
    await alice.page.locator('[data-testid="cursor-label"]', { hasText: bob.name })
      .waitFor({ timeout: TIMEOUT_MS })
    await testid(alice.page, 'editor').click()
    await alice.page.keyboard.press('Control+End')
    await bob.page.locator('[data-testid="cursor-label"]', { hasText: alice.name })
      .waitFor({ timeout: TIMEOUT_MS })
  },

  async presence () {
    for (const [who, { page }] of Object.entries(users)) {
      for (const other of Object.values(users)) {
        await eventually(`${who} sees ${other.sub} on ${NOTE} in the presence strip`, async () => {
          const entry = testid(page, 'presence-strip').locator(`[data-user="${other.sub}"]`)
          if (!(await entry.isVisible())) return false
          const notes = (await entry.getAttribute('data-notes')).split(',')
          return notes.includes(NOTE) && (await entry.textContent()).includes(other.name)
        })
      }
    }
  },

  async 'mention-autocomplete' () {
    const { alice, bob } = users
    // Both are in the workspace's member directory since they signed in.
    const unreadBefore = await unreadCount(bob.page)
    await typeAtEnd(alice.page, ` Ping @${bob.sub.slice(0, 2)}`)
    const suggestion = alice.page.locator(`[data-testid="mention-suggestion"][data-user="${bob.sub}"]`)
    await suggestion.waitFor({ timeout: TIMEOUT_MS })
    assert((await suggestion.textContent()).includes(bob.name), 'the suggestion lacks the member\'s name')
    await screenshots('mention-suggestions')
    await suggestion.click()
    await testid(alice.page, 'mention-suggestions').waitFor({ state: 'hidden', timeout: TIMEOUT_MS })
    await alice.page.keyboard.type('thanks.', { delay: 10 })
    await converged('the chosen mention reached both editors', [`Ping @${bob.sub} thanks.`])
    await eventually('bob is notified of the mention', async () =>
      (await unreadCount(bob.page)) === unreadBefore + 1)
    // Escape closes the menu, and typing on does not reopen it for the same @.
    await typeAtEnd(alice.page, ' @')
    await testid(alice.page, 'mention-suggestion').first().waitFor({ timeout: TIMEOUT_MS })
    await alice.page.keyboard.press('Escape')
    await testid(alice.page, 'mention-suggestions').waitFor({ state: 'hidden', timeout: TIMEOUT_MS })
    await alice.page.keyboard.press('Backspace')
    await alice.page.keyboard.press('Backspace')
  },

  async 'meta-and-assignment' () {
    const { alice, bob } = users
    const unreadBefore = await unreadCount(bob.page)
    await testid(alice.page, 'meta-title').fill('Launch plan')
    await testid(alice.page, 'meta-tags-input').fill('urgent')
    await testid(alice.page, 'meta-tags-input').press('Enter')
    await testid(alice.page, 'meta-pinned').check()
    await testid(alice.page, 'meta-due').fill('2030-01-31')
    await testid(alice.page, 'meta-priority').selectOption('high')
    await testid(alice.page, 'meta-assignees-input').fill(bob.sub)
    await testid(alice.page, 'meta-assignees-input').press('Enter')
    await eventually('bob sees the metadata alice set', async () =>
      (await testid(bob.page, 'meta-title').inputValue()) === 'Launch plan' &&
      (await testid(bob.page, 'meta-tag').filter({ hasText: 'urgent' }).count()) === 1 &&
      (await testid(bob.page, 'meta-pinned').isChecked()) &&
      (await testid(bob.page, 'meta-due').inputValue()) === '2030-01-31' &&
      (await testid(bob.page, 'meta-priority').inputValue()) === 'high' &&
      (await testid(bob.page, 'meta-assignee').getAttribute('data-value')) === bob.sub)
    await eventually('both note lists show the new title', async () =>
      (await testid(alice.page, 'note-item').filter({ hasText: 'Launch plan' }).count()) === 1 &&
      (await testid(bob.page, 'note-item').filter({ hasText: 'Launch plan' }).count()) === 1)
    await eventually('bob is notified of the assignment', async () =>
      (await unreadCount(bob.page)) === unreadBefore + 1)
  },

  async notifications () {
    const { bob } = users
    const page = bob.page
    const unreadBefore = await unreadCount(page)
    const sent = await postNotification('alice', 'bob', 'Please review the plan', 'The budget section needs your numbers.')
    await eventually('bob\'s unread count rises live', async () => (await unreadCount(page)) === unreadBefore + 1)
    await testid(page, 'bell').click()
    const item = page.locator(`[data-testid="notification-item"][data-id="${sent.id}"]`)
    await item.waitFor({ timeout: TIMEOUT_MS })
    assert((await item.getAttribute('data-read')) === 'false', 'a new notification shows as read')
    assert((await item.textContent()).includes('Please review the plan'), 'the notification lacks its title')
    await screenshots('notifications-open')
    await item.click()
    await eventually('clicking marks it read', async () =>
      (await unreadCount(page)) === unreadBefore &&
      (await page.locator(`[data-testid="notification-item"][data-id="${sent.id}"]`).getAttribute('data-read')) === 'true')
    await postNotification('alice', 'bob', 'Second thing', 'And another.')
    await eventually('the second notification counts', async () => (await unreadCount(page)) === unreadBefore + 1)
    if (!(await testid(page, 'notification-menu').isVisible())) await testid(page, 'bell').click()
    await testid(page, 'mark-all-read').click()
    await eventually('mark all read clears the count', async () => (await unreadCount(page)) === 0 &&
      (await page.locator(`[data-testid="notification-item"][data-read="false"]`).count()) === 0)
    await testid(page, 'bell').click()
  },

  async 'offline-edits-merge' () {
    const { alice, bob } = users
    const edits = { alice: ' [Alice, online]', bob: ' [Bob, offline]' }
    await bob.context.setOffline(true)
    await testid(bob.page, 'offline-banner').waitFor({ timeout: TIMEOUT_MS })
    await typeAtEnd(bob.page, edits.bob)
    await typeAtEnd(alice.page, edits.alice)
    assert((await testid(bob.page, 'save-status').getAttribute('data-state')) === 'unsaved',
      'offline edits are not shown as unsaved')
    assert(!(await editorText(alice.page)).includes(edits.bob), 'an offline edit reached the other user')
    await screenshots('offline-while-offline')
    await bob.context.setOffline(false)
    await testid(bob.page, 'offline-banner').waitFor({ state: 'hidden', timeout: TIMEOUT_MS })
    const text = await converged('both editors hold both edits', [edits.alice, edits.bob])
    await eventually('bob shows saved again', async () =>
      (await testid(bob.page, 'save-status').getAttribute('data-state')) === 'saved')
    summary.texts['offline-edits-merge'] = text
  },

  async 'reload-keeps-session' () {
    const { alice, bob } = users
    await bob.page.reload()
    await testid(bob.page, 'editor').waitFor({ timeout: TIMEOUT_MS })
    assert(new URL(bob.page.url()).hash === `#/${WORKSPACE}/${NOTE}`, 'the reload lost the note')
    await converged('the reloaded page shows the same text')
    await eventually('bob is connected again', async () =>
      (await testid(bob.page, 'connection-status').getAttribute('data-state')) === 'connected')
    await eventually('the live channel resumed without replaying read notifications', async () =>
      (await unreadCount(bob.page)) === 0 && (await testid(bob.page, 'presence-strip').locator(`[data-user="${alice.sub}"]`).isVisible()))
  },

  async 'new-note' () {
    const { alice, bob } = users
    await markPage(bob.page)
    await testid(alice.page, 'new-note').click()
    await eventually('alice is on a new note', () => !alice.page.url().endsWith(`/${NOTE}`))
    const noteId = new URL(alice.page.url()).hash.split('/')[2]
    secondNote = noteId
    const item = noteItem(bob.page, noteId)
    await eventually('the new note appears in bob\'s note list live', () => item.isVisible())
    await testid(alice.page, 'meta-title').fill('Second note')
    await testid(alice.page, 'meta-title').press('Enter')
    await alice.page.keyboard.type('Hello @bob, see the budget.', { delay: 5 })
    await eventually('bob\'s note list shows the new title after the catalog indexed it', async () =>
      (await item.textContent()).includes('Second note'))
    assert(await pageMarked(bob.page), 'bob\'s page was reloaded')
    await item.click()
    await eventually('bob opened it', async () =>
      (await editorText(bob.page)) === 'Hello @bob, see the budget.' &&
      (await testid(bob.page, 'meta-title').inputValue()) === 'Second note')
    await eventually('alice sees bob on the new note', async () =>
      (await testid(alice.page, 'presence-strip').locator(`[data-user="${bob.sub}"]`).getAttribute('data-notes')) === noteId)
    await eventually('bob is notified of the mention', async () => (await unreadCount(bob.page)) === 1)
    await testid(bob.page, 'bell').click()
    await bob.page.locator('[data-testid="notification-item"][data-read="false"]').click()
    await eventually('the mention is read', async () => (await unreadCount(bob.page)) === 0)
    assert(new URL(bob.page.url()).hash === `#/${WORKSPACE}/${noteId}`, 'the notification did not lead to its note')
  },

  async 'share-private' () {
    const { alice, bob } = users
    const second = secondNote
    const saveShare = async () => {
      await testid(alice.page, 'share-save').click()
      await testid(alice.page, 'share-dialog').waitFor({ state: 'detached', timeout: TIMEOUT_MS })
    }
    await testid(alice.page, 'share-note').click()
    await testid(alice.page, 'share-dialog').waitFor({ timeout: TIMEOUT_MS })
    await testid(alice.page, 'share-visibility').selectOption('private')
    await screenshots('share-dialog')
    await saveShare()
    await eventually('bob loses the note at once: his editor closes and his list drops it', async () =>
      (await bob.page.getByText('You no longer have access to this note.').isVisible()) &&
      !(await noteItem(bob.page, second).isVisible()))
    // Shared with bob as a viewer: listed again, and it opens read only.
    await testid(alice.page, 'share-note').click()
    await testid(alice.page, 'share-add-input').fill(bob.sub)
    await testid(alice.page, 'share-add-role').selectOption('viewer')
    await testid(alice.page, 'share-add').click()
    await eventually('bob is listed in the dialog', () =>
      alice.page.locator(`[data-testid="share-user"][data-user="${bob.sub}"]`).isVisible())
    await saveShare()
    await eventually('the note is back in bob\'s list', () => noteItem(bob.page, second).isVisible())
    await bob.page.getByRole('button', { name: 'Open it again' }).click()
    await eventually('bob reads it, read only', async () =>
      (await editorText(bob.page)).includes('Hello @bob') &&
      (await testid(bob.page, 'editor').getAttribute('contenteditable')) === 'false')
    await screenshots('share-viewer')
    // Back to the whole workspace for the scenarios that follow.
    await testid(alice.page, 'share-note').click()
    await testid(alice.page, 'share-visibility').selectOption('workspace')
    await saveShare()
    await bob.page.reload()
    await eventually('bob edits it again', async () =>
      (await testid(bob.page, 'editor').getAttribute('contenteditable')) === 'true')
  },

  async 'version-history' () {
    const { alice, bob } = users
    const second = secondNote
    const original = 'Hello @bob, see the budget.'
    const extra = ' Scribble to drop later.'
    const panel = (page) => testid(page, 'history-panel')
    const version = (page, kind, hasText) =>
      page.locator(`[data-testid="history-version"][data-kind="${kind}"]`, hasText ? { hasText } : {})
    const bothShow = (what, text) => eventually(what, async () =>
      (await editorText(alice.page)) === text && (await editorText(bob.page)) === text)
    assert(new URL(bob.page.url()).hash === `#/${WORKSPACE}/${second}`, 'bob is not on the second note')
    await bothShow('both editors show the second note', original)
    // A restore reaches the editors as an ordinary update: neither page may reload.
    await markPage(alice.page)
    await markPage(bob.page)

    // Bob keeps his panel open: it follows the note's versions live.
    await testid(bob.page, 'history-note').click()
    await panel(bob.page).waitFor({ timeout: TIMEOUT_MS })
    await testid(alice.page, 'history-note').click()
    await testid(alice.page, 'history-name-input').fill('before cleanup')
    await testid(alice.page, 'history-name-save').click()
    const named = version(alice.page, 'named', 'before cleanup')
    await named.waitFor({ timeout: TIMEOUT_MS })
    assert((await named.textContent()).includes(alice.name), 'the named version does not name alice')
    await version(bob.page, 'named', 'before cleanup').waitFor({ timeout: TIMEOUT_MS })
    await alice.page.keyboard.press('Escape')
    await panel(alice.page).waitFor({ state: 'detached', timeout: TIMEOUT_MS })

    await typeAtEnd(alice.page, extra)
    await bothShow('both editors show the extra text', original + extra)
    await eventually('alice\'s edit is saved', async () =>
      (await testid(alice.page, 'save-status').getAttribute('data-state')) === 'saved')
    await testid(alice.page, 'history-note').click()
    await named.click()
    const preview = testid(alice.page, 'history-preview')
    await eventually('the preview shows the named version', async () => {
      const text = await preview.textContent()
      return text.includes('Second note') && text.includes(original) && !text.includes('Scribble')
    })
    const diff = testid(alice.page, 'history-diff')
    await eventually('the diff shows the extra text as what a restore removes', async () => {
      const removed = (await diff.locator('del').allTextContents()).join(' ')
      const added = (await diff.locator('ins').allTextContents()).join(' ')
      return extra.trim().split(' ').every((word) => removed.includes(word)) && !added.includes('Scribble')
    })
    await screenshots('version-history-diff')

    const asked = []
    const accept = (dialog) => {
      asked.push(dialog.type())
      return dialog.accept()
    }
    alice.page.on('dialog', accept)
    try {
      await testid(alice.page, 'history-restore').click()
      await bothShow('both editors show the named version\'s text again', original)
    } finally {
      alice.page.off('dialog', accept)
    }
    assert(asked.join() === 'confirm', `restoring asked ${JSON.stringify(asked)}, not one confirm()`)
    // The content it replaced was kept first; both lists show that version live.
    await version(alice.page, 'restore').first().waitFor({ timeout: TIMEOUT_MS })
    await version(bob.page, 'restore').first().waitFor({ timeout: TIMEOUT_MS })
    await eventually('the diff against the restored note is empty', async () =>
      (await diff.locator('del, ins').count()) === 0 && (await diff.textContent()).includes('Nothing'))
    assert(await pageMarked(alice.page) && await pageMarked(bob.page), 'a page was reloaded')
    await screenshots('version-history-restored')

    await testid(alice.page, 'history-close').click()
    await testid(bob.page, 'history-close').click()
    await panel(alice.page).waitFor({ state: 'detached', timeout: TIMEOUT_MS })
    await panel(bob.page).waitFor({ state: 'detached', timeout: TIMEOUT_MS })
    await eventually('the panels left the editors as they were', async () =>
      (await testid(bob.page, 'editor').getAttribute('contenteditable')) === 'true' &&
      (await testid(alice.page, 'meta-title').inputValue()) === 'Second note')
  },

  async 'search-and-filter' () {
    const { alice, bob } = users
    const second = secondNote
    await markPage(bob.page)
    await typeAtEnd(alice.page, ' Ship the xylophone.')
    await testid(alice.page, 'meta-tags-input').fill('finance')
    await testid(alice.page, 'meta-tags-input').press('Enter')
    await testid(alice.page, 'meta-due').fill(localDate(-1))
    const page = bob.page
    await eventually('bob\'s list shows both notes', async () => sameIds(await listedNotes(page), [NOTE, second]))

    await testid(page, 'note-search').fill('xylophone')
    await eventually('searching a word of its body finds the second note only', async () =>
      sameIds(await listedNotes(page), [second]))
    // A word of its title: the body's first words were typed by two users at once, and
    // their letters interleave (no word of them is sure to survive whole).
    await testid(page, 'note-search').fill('laun')
    await eventually('a word\'s beginning finds the first note only', async () =>
      sameIds(await listedNotes(page), [NOTE]))
    await testid(page, 'note-search').fill('')
    await eventually('an empty search lists both notes again', async () =>
      sameIds(await listedNotes(page), [NOTE, second]))

    const financeChip = noteRow(page, second).locator('[data-testid="note-tag"][data-value="finance"]')
    await eventually('the second note shows its tag in the list', () => financeChip.isVisible())
    await financeChip.click()
    await eventually('clicking a tag narrows the list to the notes tagged so', async () =>
      sameIds(await listedNotes(page), [second]) &&
      (await testid(page, 'active-tag').getAttribute('data-value')) === 'finance')
    await testid(page, 'active-tag').locator('button').click()
    await eventually('removing the tag filter lists both notes again', async () =>
      sameIds(await listedNotes(page), [NOTE, second]))
    await testid(page, 'filter-tag').selectOption('urgent')
    await eventually('choosing a tag seen narrows the list', async () =>
      sameIds(await listedNotes(page), [NOTE]))
    await screenshots('search-and-filter-tag')
    await testid(page, 'clear-filters').click()

    await testid(page, 'filter-pinned').check()
    await eventually('pinned only lists the pinned note', async () => sameIds(await listedNotes(page), [NOTE]))
    await testid(page, 'filter-pinned').uncheck()
    await testid(page, 'filter-due').selectOption('overdue')
    await eventually('overdue lists the note due yesterday', async () => sameIds(await listedNotes(page), [second]))
    await testid(page, 'filter-due').selectOption('')
    await eventually('the list marks the note due yesterday overdue, and only it', async () =>
      sameIds(await listedNotes(page), [NOTE, second]) &&
      (await noteRow(page, second).getAttribute('class')).includes('note-overdue') &&
      (await testid(page, 'note-list').locator('[data-testid="note-overdue"]').count()) === 1)
    // Alice created it and nobody is assigned: her bell has the reminder, sent at once.
    await eventually('alice\'s bell says the note is overdue', async () =>
      (await alice.page.locator('[data-testid="notification-item"][data-kind="overdue"]')
        .filter({ hasText: 'Overdue: Second note' }).count()) === 1)
    await testid(page, 'sort').selectOption('created')
    await eventually('sorted by creation, the newest comes first', async () =>
      (await listedNotes(page)).join() === [second, NOTE].join())
    await testid(page, 'sort').selectOption('')
    await eventually('the default order puts the pinned note first', async () =>
      (await listedNotes(page)).join() === [NOTE, second].join())
    // Alice's list (unfiltered, default order) placed the note from her edits' events.
    await eventually('alice\'s list keeps the pinned note first', async () =>
      (await listedNotes(alice.page)).join() === [NOTE, second].join())
    assert(await pageMarked(page), 'bob\'s page was reloaded')
  },

  async 'trash-and-restore' () {
    const { alice, bob } = users
    const second = secondNote
    assert(new URL(bob.page.url()).hash === `#/${WORKSPACE}/${second}`, 'bob is not on the second note')
    await testid(bob.page, 'editor').waitFor({ timeout: TIMEOUT_MS })
    await testid(alice.page, 'trash-note').click()
    await eventually('alice sees the note in the trash', async () =>
      (await testid(alice.page, 'note-gone').getAttribute('data-state')) === 'trashed')
    const gone = testid(bob.page, 'note-gone')
    await eventually('bob\'s open editor closes with a message', async () =>
      (await gone.isVisible()) && (await gone.getAttribute('data-state')) === 'trashed' &&
      (await gone.textContent()).includes('moved to the trash while you had it open') &&
      (await testid(bob.page, 'editor').count()) === 0)
    await eventually('the note left bob\'s list', async () => sameIds(await listedNotes(bob.page), [NOTE]))
    await screenshots('trash-closed-editor')
    await testid(bob.page, 'show-trash').click()
    await eventually('bob\'s trash lists it', async () =>
      (await testid(bob.page, 'note-list').getAttribute('data-view')) === 'trash' &&
      sameIds(await listedNotes(bob.page), [second]))

    await screenshots('trash-view')
    await bob.page.reload()
    await eventually('opening a trashed note\'s link says it is in the trash, with Restore', async () =>
      (await gone.getAttribute('data-state')) === 'trashed' &&
      (await gone.textContent()).includes('in the trash') &&
      (await testid(bob.page, 'restore-open-note').isVisible()))
    await testid(bob.page, 'show-trash').click()
    await eventually('bob\'s trash lists it after the reload', async () =>
      (await testid(bob.page, 'note-list').getAttribute('data-view')) === 'trash' &&
      sameIds(await listedNotes(bob.page), [second]))

    await testid(alice.page, 'restore-open-note').click()
    await eventually('alice has the restored note open again', async () =>
      (await testid(alice.page, 'editor').isVisible()) && (await editorText(alice.page)).includes('xylophone'))
    await eventually('the note left bob\'s trash, and bob\'s page opened it again', async () =>
      (await listedNotes(bob.page)).length === 0 &&
      (await testid(bob.page, 'editor').isVisible()) && (await editorText(bob.page)).includes('xylophone'))
    await testid(bob.page, 'show-trash').click()
    await eventually('the note is back in bob\'s list', async () =>
      (await testid(bob.page, 'note-list').getAttribute('data-view')) === 'notes' &&
      sameIds(await listedNotes(bob.page), [NOTE, second]))
    await converged('both edit the restored note', ['xylophone'])
  },

  async 'load-more' () {
    const { bob } = users
    const page = bob.page
    const count = 55 // more than a page (50)
    for (let i = 0; i < count; i++) {
      await api('alice', 'POST', `/api/v1/workspaces/${WORKSPACE}/notes`, { title: `Bulk ${i}`, tags: ['bulk'] }, 201)
    }
    await eventually('the tag of the new notes can be chosen', async () =>
      (await testid(page, 'filter-tag').locator('option[value="bulk"]').count()) === 1)
    await testid(page, 'filter-tag').selectOption('bulk')
    await eventually('the first page is listed, with "load more"', async () =>
      (await listedNotes(page))?.length === 50 && (await testid(page, 'load-more').isVisible()))
    await testid(page, 'load-more').click()
    await eventually('"load more" lists the rest, once each', async () => {
      const listed = await listedNotes(page)
      return listed?.length === count && new Set(listed).size === count &&
        !(await testid(page, 'load-more').isVisible())
    })
    await testid(page, 'clear-filters').click()
  },

  async 'no-token-page' () {
    const context = await users.alice.context.browser().newContext({ viewport: { width: 1280, height: 760 } })
    try {
      const page = await context.newPage()
      await page.goto(`${BASE_URL}/#/${WORKSPACE}/${NOTE}`)
      // Without dev mode: how to get a link. With COLLAB_DEV_MODE=1: the sign-in form.
      await testid(page, 'signin-help').or(testid(page, 'signin-user')).first().waitFor({ timeout: TIMEOUT_MS })
      const devMode = await testid(page, 'signin-user').isVisible()
      if (!devMode) {
        assert((await testid(page, 'signin-help').textContent()).includes('collab serve'), 'no sign-in help')
      }
      const path = join(ARTIFACTS_DIR, 'no-token-page.png')
      await page.screenshot({ path })
      summary.screenshots.push(path)
      console.log(`screenshot: ${path}`)
      if (devMode) {
        await testid(page, 'signin-user').fill('carol')
        await testid(page, 'signin-name').fill('Carol')
        await testid(page, 'signin-submit').click()
        await testid(page, 'editor').waitFor({ timeout: TIMEOUT_MS })
        await eventually('alice sees carol arrive', () =>
          testid(users.alice.page, 'presence-strip').locator('[data-user="carol"]').isVisible())
      }
    } finally {
      await context.close()
    }
  }
}

async function main () {
  await mkdir(ARTIFACTS_DIR, { recursive: true })
  // launch() gives the browser a fresh temporary user-data-dir of its own.
  const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: CHROMIUM_ARGS })
  try {
    for (const who of ['alice', 'bob']) {
      const context = await browser.newContext({ viewport: { width: 1280, height: 760 } })
      const page = await context.newPage()
      page.setDefaultTimeout(TIMEOUT_MS)
      page.on('pageerror', (error) => summary.page_errors.push(`${who}: ${error.message}`))
      const { sub, name } = claims(TOKENS[who])
      users[who] = { context, page, sub, name: name || sub, sockets: [] }
      page.on('websocket', (socket) => users[who].sockets.push(socket.url()))
    }
    let failed = false
    for (const [name, run] of Object.entries(scenarios)) {
      const started = Date.now()
      const result = { name, ok: false, ms: 0 }
      summary.scenarios.push(result)
      if (failed) {
        result.error = 'skipped after an earlier failure'
        continue
      }
      try {
        await run()
        result.ok = summary.page_errors.length === 0
        if (!result.ok) result.error = `uncaught page errors: ${summary.page_errors.join('; ')}`
      } catch (error) {
        result.error = String(error?.stack || error)
      }
      result.ms = Date.now() - started
      await screenshots(name).catch((error) => { result.error = `${result.error || ''} screenshot: ${error}` })
      failed = !result.ok
    }
    summary.ok = summary.scenarios.every((scenario) => scenario.ok)
  } finally {
    await browser.close()
  }
}

try {
  await main()
} catch (error) {
  summary.error = String(error?.stack || error)
}
console.log(JSON.stringify(summary))
process.exit(summary.ok ? 0 : 1)
