// The version history of a note (`…/docs/{ws}/{note}/versions`, README "Version history"): its
// versions newest first, a name for the current content, and for the version selected its
// content and what restoring it would change (its diff against the note now), with Restore.
// Readers see all of it; naming and restoring are for those who may write (the server decides
// too, and says why not). The list follows the live channel's version events for this note.
import * as Y from 'yjs'
import { api, origin } from './api.js'
import { h, replaceChildren } from './dom.js'

const PAGE_SIZE = 50
const MAX_PAGE_SIZE = 100
// A burst of events (a restore announces its backup version, then itself) asks once.
const REFRESH_DELAY_MS = 150
// An unchanged run of the diff longer than this shows its first and last EDGE characters.
const EDGE_CHARS = 40
const COLLAPSE_OVER = 2 * EDGE_CHARS + 20
const KINDS = { auto: 'Automatic', named: 'Named', restore: 'Before a restore' }
const TIME = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' })

export class HistoryPanel {
  constructor ({ workspace, note, token, canWrite, nameOf, onClose }) {
    Object.assign(this, { workspace, note, token, canWrite, nameOf, onClose })
    this.versions = []
    this.next = null
    this.selected = null
    this.closed = false
    // Answers of a request overtaken by a newer one (or by close) are dropped.
    this._listGeneration = 0
    this._selectGeneration = 0
    this.list = h('ul', { class: 'history-list', testid: 'history-list' })
    this.more = h('button', { class: 'link-button load-more', type: 'button', testid: 'history-more', hidden: true,
      onClick: () => this.loadMore() }, 'Load more')
    this.nameInput = h('input', { type: 'text', testid: 'history-name-input', maxlength: 200,
      placeholder: 'Name this version…', 'aria-label': 'Name of the current version',
      onInput: () => { this.nameSave.disabled = !this.nameInput.value.trim() },
      onKeydown: (event) => { if (event.key === 'Enter') this.saveName() } })
    this.nameSave = h('button', { type: 'button', testid: 'history-name-save', disabled: true,
      onClick: () => this.saveName() }, 'Save')
    this.error = h('p', { class: 'share-error', testid: 'history-error', role: 'alert', hidden: true })
    this.detail = h('section', { class: 'history-detail', testid: 'history-detail' })
    this.el = h('div', { class: 'modal-backdrop', testid: 'history-panel', role: 'dialog', 'aria-modal': 'true', 'aria-label': 'Version history' },
      h('div', { class: 'modal history-modal', tabindex: '-1' },
        h('div', { class: 'history-head' },
          h('h2', {}, 'Version history'),
          h('button', { class: 'chip-remove history-close', type: 'button', testid: 'history-close',
            title: 'Close', 'aria-label': 'Close', onClick: () => this.close() }, '×')),
        this.canWrite && h('div', { class: 'history-name' }, this.nameInput, this.nameSave),
        this.error,
        h('div', { class: 'history-body' },
          h('div', { class: 'history-versions' }, this.list, this.more),
          this.detail)))
    // On the document: a button that was focused and got disabled (Save while saving) leaves
    // the focus outside the dialog, and Escape should close it all the same.
    this._keydown = (event) => { if (event.key === 'Escape') this.close() }
    this.renderDetail()
  }

  get base () {
    return `/api/v1/docs/${encodeURIComponent(this.workspace)}/${encodeURIComponent(this.note)}/versions`
  }

  open () {
    document.body.append(this.el)
    document.addEventListener('keydown', this._keydown)
    // Focus inside the dialog, so Escape reaches it before anything is clicked.
    this.el.querySelector('.history-modal').focus()
    this.reload()
  }

  close () {
    if (this.closed) return
    this.closed = true
    this._listGeneration += 1
    this._selectGeneration += 1
    clearTimeout(this._refreshTimer)
    document.removeEventListener('keydown', this._keydown)
    this.el.remove()
    this.onClose()
  }

  /** A live channel message: a new version or a restore of this note refreshes the list, and
   * the diff shown (the note it compares with has changed). */
  handle (message) {
    if (message.type !== 'version.created' && message.type !== 'note.restored_version') return
    if (message.workspace !== this.workspace || message.id !== this.note || this.closed) return
    if (this._refreshTimer) return
    this._refreshTimer = setTimeout(() => {
      this._refreshTimer = null
      this.reload()
      if (this.selected) this.loadDiff(this.selected)
    }, REFRESH_DELAY_MS)
  }

  // -- the list ------------------------------------------------------------------------------

  /** The first page again, as long as what is shown (so a refresh does not shorten it). */
  async reload () {
    const generation = ++this._listGeneration
    const limit = Math.min(MAX_PAGE_SIZE, Math.max(PAGE_SIZE, this.versions.length))
    try {
      const page = await api(`${this.base}?limit=${limit}`, { token: this.token })
      if (generation !== this._listGeneration) return
      this.versions = page.versions
      this.next = page.next
      this.renderList()
    } catch (error) {
      if (generation === this._listGeneration) this.fail(error.message)
    }
  }

  async loadMore () {
    if (!this.next) return
    const generation = ++this._listGeneration
    this.more.disabled = true
    try {
      const params = new URLSearchParams({ limit: String(PAGE_SIZE), cursor: this.next })
      const page = await api(`${this.base}?${params}`, { token: this.token })
      if (generation !== this._listGeneration) return
      // A version listed twice (a refresh crossed the page) is shown once.
      const shown = new Set(this.versions.map((version) => version.id))
      this.versions = this.versions.concat(page.versions.filter((version) => !shown.has(version.id)))
      this.next = page.next
      this.renderList()
    } catch (error) {
      if (generation === this._listGeneration) this.fail(error.message)
    } finally {
      this.more.disabled = false
    }
  }

  renderList () {
    replaceChildren(this.list, this.versions.length
      ? this.versions.map((version) => h('li', {}, this.row(version)))
      : h('li', { class: 'muted history-empty' }, 'No versions yet.'))
    this.more.hidden = !this.next
  }

  row (version) {
    const current = version.id === this.selected?.id
    return h('button', { class: `history-row${current ? ' selected' : ''}`, type: 'button', testid: 'history-version',
      'data-id': version.id, 'data-kind': version.kind, 'aria-pressed': String(current),
      onClick: () => this.select(version) },
    h('span', { class: 'history-row-title' },
      h('span', { class: 'history-row-name' }, label(version)),
      version.kind === 'named' && h('span', { class: 'history-kind' }, KINDS.named)),
    h('span', { class: 'history-row-meta' }, this.byline(version)))
  }

  // When, who asked for it, and whose edits it holds (by display name).
  byline (version) {
    const parts = [h('time', { datetime: version.created_at }, localTime(version.created_at))]
    if (version.created_by) parts.push(` · by ${this.nameOf(version.created_by)}`)
    if (version.authors?.length) parts.push(` · edits: ${version.authors.map((user) => this.nameOf(user)).join(', ')}`)
    return parts
  }

  // -- the version selected ------------------------------------------------------------------

  select (version) {
    this.selected = version
    this.restored = null
    this.clearError()
    this.renderList()
    this.showSelected()
  }

  // Loads of an earlier showing (of another version, or from before a restore) are dropped.
  showSelected () {
    this._selectGeneration += 1
    this.renderDetail()
    this.loadContent(this.selected)
    this.loadDiff(this.selected)
  }

  async loadContent (version) {
    const generation = this._selectGeneration
    try {
      const state = await fetchState(`${this.base}/${encodeURIComponent(version.id)}`, this.token)
      if (generation !== this._selectGeneration) return
      const { title, text } = readState(state)
      replaceChildren(this.preview,
        h('h3', { class: 'history-preview-title' }, title || 'Untitled'),
        h('div', { class: 'history-text' }, text || h('span', { class: 'muted' }, 'Empty')))
    } catch (error) {
      if (generation === this._selectGeneration) this.fail(error.message)
    }
  }

  async loadDiff (version) {
    const generation = this._selectGeneration
    try {
      const diff = await api(`${this.base}/${encodeURIComponent(version.id)}/diff?against=current`, { token: this.token })
      if (generation !== this._selectGeneration) return
      replaceChildren(this.diff, renderDiff(diff))
    } catch (error) {
      if (generation === this._selectGeneration) this.fail(error.message)
    }
  }

  renderDetail () {
    const version = this.selected
    if (!version) {
      replaceChildren(this.detail, h('p', { class: 'muted' }, 'Select a version to see its content and what restoring it would change.'))
      return
    }
    this.preview = h('div', { class: 'history-preview', testid: 'history-preview' }, h('span', { class: 'muted' }, 'Loading…'))
    this.diff = h('div', { class: 'history-diff', testid: 'history-diff' }, h('span', { class: 'muted' }, 'Loading…'))
    this.restoreButton = this.canWrite && h('button', { class: 'primary small', type: 'button', testid: 'history-restore',
      onClick: () => this.restore() }, 'Restore this version')
    replaceChildren(this.detail,
      h('div', { class: 'history-detail-head' },
        h('div', {}, h('strong', {}, label(version)), h('div', { class: 'history-row-meta' }, this.byline(version))),
        this.restoreButton),
      this.restored && h('p', { class: 'history-status', testid: 'history-status', role: 'status' }, this.restored),
      h('h4', { class: 'panel-title' }, 'Content'),
      this.preview,
      h('h4', { class: 'panel-title' }, 'Restoring it would change'),
      this.diff)
  }

  // -- changes -------------------------------------------------------------------------------

  async saveName () {
    const name = this.nameInput.value.trim()
    if (!name || this.nameSave.disabled) return
    this.clearError()
    this.nameSave.disabled = true
    try {
      await api(this.base, { token: this.token, method: 'POST', body: { name } })
      if (this.closed) return
      this.nameInput.value = ''
      this.reload()
    } catch (error) {
      this.fail(error.message)
    } finally {
      this.nameSave.disabled = !this.nameInput.value.trim()
    }
  }

  async restore () {
    const version = this.selected
    if (!version || !this.restoreButton || this.restoreButton.disabled) return
    if (!window.confirm(`Restore “${label(version)}”? Everyone's copy of the note changes to it; the content it replaces is kept as a version first.`)) return
    this.clearError()
    this.restoreButton.disabled = true
    try {
      const result = await api(`${this.base}/${encodeURIComponent(version.id)}/restore`, { token: this.token, method: 'POST' })
      if (this.closed) return
      // The content arrives in the editor as an ordinary update: only the list (its backup
      // version) and the diff (now against the restored note) are asked again.
      this.reload()
      if (this.selected !== version) return
      this.restored = result.changed
        ? 'Restored. The content it replaced is kept as the version “Before a restore”.'
        : 'The note already had this content: nothing changed.'
      this.showSelected()
    } catch (error) {
      this.fail(error.message)
      if (this.restoreButton) this.restoreButton.disabled = false
    }
  }

  fail (message) {
    this.error.textContent = message
    this.error.hidden = false
  }

  clearError () {
    this.error.hidden = true
  }
}

function label (version) {
  if (version.kind === 'named' && version.name) return version.name
  return version.kind === 'auto' ? 'Automatic version' : KINDS[version.kind] || version.kind
}

function localTime (when) {
  const at = Date.parse(when)
  return Number.isNaN(at) ? String(when) : TIME.format(at)
}

/** The version's whole state (a Yjs v1 update). Read as Yjs rather than the JSON snapshot,
 * whose body is an XML string: text in the note that looks like markup would be lost. */
async function fetchState (path, token) {
  const response = await fetch(origin + path, {
    headers: { Accept: 'application/octet-stream', Authorization: `Bearer ${token}` }
  })
  if (!response.ok) {
    const data = await response.json().catch(() => null)
    const error = new Error(data?.error?.message || `${response.status} ${response.statusText}`)
    error.status = response.status
    error.code = data?.error?.code || null
    throw error
  }
  return new Uint8Array(await response.arrayBuffer())
}

/** The title and the body's text of a state, blocks separated by a newline (as the server
 * reads them for search and diffs, so the preview matches the diff). */
function readState (state) {
  const doc = new Y.Doc()
  try {
    Y.applyUpdate(doc, state)
    const title = doc.getMap('meta').get('title')
    return { title: typeof title === 'string' ? title : '', text: fragmentText(doc.getXmlFragment('body')) }
  } finally {
    doc.destroy()
  }
}

// Walks the tree with a stack, not recursion: a deeply nested body cannot exhaust the stack.
function fragmentText (fragment) {
  const parts = []
  const stack = fragment.toArray().reverse()
  while (stack.length) {
    const node = stack.pop()
    if (typeof node === 'string') {
      parts.push(node)
    } else if (node instanceof Y.XmlText) {
      for (const { insert } of node.toDelta()) if (typeof insert === 'string') parts.push(insert)
    } else if (node instanceof Y.XmlElement) {
      // A block ends with a line break, after its children (the stack is LIFO).
      stack.push('\n', ...node.toArray().reverse())
    }
  }
  return parts.join('').trim()
}

/** The diff from the note now to the version: the meta keys that change, then the body with
 * what restoring would add in <ins> and remove in <del>. */
function renderDiff (diff) {
  const changed = diff.meta.length > 0 || diff.body.some((part) => part.op !== 'equal')
  if (!changed) return h('p', { class: 'muted' }, 'Nothing: the note now has this content.')
  return [
    diff.meta.length > 0 && h('ul', { class: 'history-meta-diff' }, diff.meta.map(metaChange)),
    h('div', { class: 'history-text' }, diff.body.map(bodyPart)),
    diff.truncated && h('p', { class: 'muted' }, 'The note is long: only its beginning is compared.')
  ]
}

function metaChange ({ key, change, before, after }) {
  return h('li', { 'data-key': key, 'data-change': change },
    h('span', { class: 'history-meta-key' }, `${key}: `),
    change !== 'added' && h('del', {}, metaValue(before)),
    change === 'changed' && ' → ',
    change !== 'removed' && h('ins', {}, metaValue(after)))
}

function metaValue (value) {
  if (typeof value === 'string') return value
  if (Array.isArray(value) && value.every((item) => typeof item === 'string')) return value.join(', ')
  return JSON.stringify(value)
}

function bodyPart ({ op, text }) {
  if (op === 'insert') return h('ins', {}, text)
  if (op === 'delete') return h('del', {}, text)
  return collapse(text)
}

// A long unchanged run is context, not news: its ends show where the changes are.
function collapse (text) {
  if (text.length <= COLLAPSE_OVER) return text
  return h('span', { class: 'history-skip', title: `${text.length - 2 * EDGE_CHARS} unchanged characters` },
    text.slice(0, EDGE_CHARS), h('span', { class: 'history-ellipsis' }, '…'), text.slice(-EDGE_CHARS))
}
