// The workspace's notes from the server's catalog: one list for the sidebar's current view
// (search, filters, sort, or the trash) from `GET /api/v1/workspaces/{ws}/notes`, page by page,
// kept current by the live channel's note.* events; the note actions (create, trash, restore,
// purge); and the titles and tags of every note seen.
import { api } from './api.js'
import { localDate } from './dom.js'

const PAGE_SIZE = 50
const MAX_PAGE_SIZE = 200
const REQUERY_DELAY_MS = 150
const RANKS = { low: 1, medium: 2, high: 3, urgent: 4 }
// Sort keys the page computes from an entry exactly as the server does (all descending):
// events are applied to such a list in place. Other orders (due, title, relevance) and
// filtered lists are asked again when an event may change them.
const LOCAL_KEYS = {
  default: (entry) => [entry.pinned ? 1 : 0, entry.updated_at, entry.id],
  updated: (entry) => [entry.updated_at, entry.id],
  created: (entry) => [entry.created_at, entry.id],
  priority: (entry) => [RANKS[entry.priority] || 0, entry.id]
}
const NO_FILTERS = { q: '', tags: [], pinned: false, due: '', sort: '', trashed: false }

export class NoteCatalog {
  constructor ({ workspace, token, onChange }) {
    this.workspace = workspace
    this.token = token
    this.onChange = onChange
    this.view = { ...NO_FILTERS }
    this.entries = []
    this.next = null
    this.boundary = null // the last entry of the last page loaded, as the server's cursor holds it
    this.state = 'loading' // 'loading' | 'ready' | 'error'
    this.error = null
    this.titles = new Map()
    this.tags = new Set()
    this._generation = 0
    this._loading = false
    this._stale = false
    this._moreWanted = false
    this.loaded = this.reload()
  }

  destroy () {
    this._generation += 1
    clearTimeout(this._requeryTimer)
    this.onChange = () => {}
  }

  get base () {
    return `/api/v1/workspaces/${encodeURIComponent(this.workspace)}/notes`
  }

  /** Whether the list is narrowed by anything but the trash switch. */
  get filtered () {
    const view = this.view
    return Boolean(view.q.trim() || view.tags.length || view.pinned || view.due)
  }

  /** Change the view (any of the fields of NO_FILTERS) and load its first page. */
  setView (changes) {
    this.view = { ...this.view, ...changes }
    return this.reload({ fresh: true })
  }

  /** Load the view again: as many notes as are shown (`fresh`: one page). */
  async reload ({ fresh = false } = {}) {
    clearTimeout(this._requeryTimer)
    this._requeryTimer = null
    const generation = ++this._generation
    const limit = fresh ? PAGE_SIZE : Math.min(MAX_PAGE_SIZE, Math.max(PAGE_SIZE, this.entries.length))
    this._loading = true
    this._stale = false
    if (fresh) {
      this._moreWanted = false
      this.state = 'loading'
      this.onChange()
    }
    try {
      const page = await api(`${this.base}?${this.params(limit)}`, { token: this.token })
      if (generation !== this._generation) return
      this.entries = []
      this._page(page)
      this.state = 'ready'
      this.error = null
    } catch (error) {
      if (generation !== this._generation) return
      this.state = 'error'
      this.error = error.message
    } finally {
      if (generation === this._generation) this._loading = false
    }
    this._settled()
  }

  /** The next page; asked while a load is in flight, once that is done. */
  async loadMore () {
    if (this.next === null) return
    if (this._loading) {
      this._moreWanted = true
      return
    }
    this._moreWanted = false
    const generation = this._generation
    this._loading = true
    this.onChange()
    try {
      const page = await api(`${this.base}?${this.params(PAGE_SIZE, this.next)}`, { token: this.token })
      if (generation !== this._generation) return
      this._page(page)
    } catch (error) {
      if (generation !== this._generation) return
      this.error = error.message
    } finally {
      if (generation === this._generation) this._loading = false
    }
    this._settled()
  }

  // After a load: show it, then what was asked meanwhile.
  _settled () {
    this.onChange()
    if (this._stale) this.refresh()
    else if (this._moreWanted) this.loadMore()
  }

  get loadingMore () {
    return this._loading && this.state === 'ready'
  }

  params (limit, cursor = null) {
    const view = this.view
    const params = new URLSearchParams()
    if (view.q.trim()) params.set('q', view.q.trim())
    for (const tag of view.tags) params.append('tag', tag)
    if (view.pinned) params.set('pinned', 'true')
    if (view.due === 'overdue') {
      params.set('due_before', localDate(0))
    } else if (view.due === 'week') {
      params.set('due_after', localDate(0))
      params.set('due_before', localDate(7))
    }
    if (view.trashed) params.set('trashed', 'true')
    if (view.sort) params.set('sort', view.sort)
    params.set('limit', String(limit))
    if (cursor) params.set('cursor', cursor)
    return params
  }

  /** Apply a live channel message (note.* events of this workspace; others are ignored). */
  handle (message) {
    if (message.workspace !== this.workspace) return
    switch (message.type) {
      case 'note.created':
      case 'note.updated':
      case 'note.trashed':
      case 'note.restored':
        this._apply(message.type, message.note)
        break
      case 'note.purged':
      case 'note.hidden': // made private without us
        this._forget(message.id)
        break
      case 'note.shown': // shared with us
        this._apply('note.created', message.note)
        break
    }
  }

  titleOf (noteId) {
    return this.titles.get(noteId) || ''
  }

  /** Every tag of the notes seen so far, sorted. */
  tagsSeen () {
    return [...this.tags].sort((a, b) => a.localeCompare(b))
  }

  firstNote () {
    return this.view.trashed ? null : this.entries[0] || null
  }

  // -- note actions (each returns the entry, or throws the API's error) -----------------------

  async get (noteId) {
    const entry = await api(`${this.base}/${encodeURIComponent(noteId)}`, { token: this.token })
    this._remember(entry)
    return entry
  }

  async create (fields = {}) {
    const entry = await api(this.base, { token: this.token, method: 'POST', body: fields })
    this._apply('note.created', entry)
    return entry
  }

  async trash (noteId) {
    const entry = await api(`${this.base}/${encodeURIComponent(noteId)}`, { token: this.token, method: 'DELETE' })
    this._apply('note.trashed', entry)
    return entry
  }

  async restore (noteId) {
    const entry = await api(`${this.base}/${encodeURIComponent(noteId)}/restore`, { token: this.token, method: 'POST' })
    this._apply('note.restored', entry)
    return entry
  }

  async purge (noteId) {
    await api(`${this.base}/${encodeURIComponent(noteId)}?purge=true`, { token: this.token, method: 'DELETE' })
    this._forget(noteId)
  }

  // -- internals -----------------------------------------------------------------------------

  _page (page) {
    const shown = new Set(page.notes.map((entry) => entry.id))
    this.entries = this.entries.filter((entry) => !shown.has(entry.id)).concat(page.notes)
    this.next = page.next || null
    this.boundary = this.next === null ? null : page.notes[page.notes.length - 1] || null
    for (const entry of page.notes) this._remember(entry)
  }

  _remember (entry) {
    this.titles.set(entry.id, entry.title || '')
    for (const tag of entry.tags || []) this.tags.add(tag)
  }

  _apply (kind, entry) {
    if (!entry || typeof entry.id !== 'string') return
    const index = this.entries.findIndex((shown) => shown.id === entry.id)
    const shown = index >= 0 ? this.entries[index] : null
    // An older state than the one shown (events of two instances may cross).
    if (kind === 'note.updated' && shown && shown.updated_at > entry.updated_at) return
    this._remember(entry)
    const belongs = Boolean(entry.trashed_at) === this.view.trashed
    const key = !this.filtered && LOCAL_KEYS[this.view.sort || 'default']
    if (index >= 0) this.entries.splice(index, 1)
    if (key && !this._loading) {
      // Unfiltered, in an order known here: place it. Past the last page loaded it is left
      // to "load more" (the cursor is that page's last entry, as it was then).
      if (belongs && (this.boundary === null || compare(key(entry), key(this.boundary)) <= 0)) {
        const at = this.entries.findIndex((other) => compare(key(entry), key(other)) < 0)
        this.entries.splice(at < 0 ? this.entries.length : at, 0, entry)
      }
    } else {
      // Filtered, or ordered by the server: show the new fields now, and ask again when the
      // note may join the list or move in it.
      if (index >= 0 && belongs) this.entries.splice(index, 0, entry)
      if (belongs) this.refresh()
    }
    this.onChange()
  }

  _forget (noteId) {
    this.titles.delete(noteId)
    const index = this.entries.findIndex((shown) => shown.id === noteId)
    if (index >= 0) this.entries.splice(index, 1)
    this.onChange()
  }

  /** Ask for the list again: soon, once for a burst of events (a timer already set is kept,
   * so a steady stream of events cannot put it off), and never beside a load in flight (it
   * would drop a page being loaded): after it. */
  refresh () {
    if (this._loading) {
      this._stale = true
      return
    }
    if (this._requeryTimer) return
    this._requeryTimer = setTimeout(() => {
      this._requeryTimer = null
      if (this._loading) this._stale = true
      else this.reload()
    }, REQUERY_DELAY_MS)
  }
}

// In the lists' (descending) order: < 0 when key `a` comes before key `b`, > 0 after it.
function compare (a, b) {
  for (let i = 0; i < a.length; i++) {
    if (a[i] < b[i]) return 1
    if (a[i] > b[i]) return -1
  }
  return 0
}
