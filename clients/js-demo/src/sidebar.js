// The sidebar: the workspace's notes from the catalog (NoteCatalog) with a search box, a tag
// filter, pinned-only, a due filter, a sort and "load more"; or the trash, with Restore and
// (for owners) Delete forever. The note shown in the editor is highlighted, with who else has
// each note open.
import { colorFor } from './colors.js'
import { avatar, h, replaceChildren, timeAgo } from './dom.js'
import { routeHash } from './route.js'

const SEARCH_DELAY_MS = 250
const MAX_TAG_FILTERS = 10
const SORTS = [
  ['', 'Pinned first'],
  ['updated', 'Recently updated'],
  ['created', 'Recently created'],
  ['due', 'Due date'],
  ['priority', 'Priority'],
  ['title', 'Title']
]
const DUES = [['', 'Any due date'], ['overdue', 'Overdue'], ['week', 'Due this week']]
const MAX_TIMER_MS = 2 ** 31 - 1

export class Sidebar {
  constructor ({ catalog, presence, canWrite, canPurge, current, onNew, onRestore, onPurge }) {
    Object.assign(this, { catalog, presence, canWrite, canPurge, current, onRestore, onPurge })
    this.heading = h('h2', {}, 'Notes')
    this.newNote = h('button', { class: 'primary small', type: 'button', testid: 'new-note', disabled: !canWrite,
      onClick: () => onNew() }, '+ New note')
    this.search = h('input', { type: 'search', class: 'search', testid: 'note-search', placeholder: 'Search notes…',
      'aria-label': 'Search notes', maxlength: 500, onInput: () => this._searchSoon() })
    this.tagPicker = h('select', { testid: 'filter-tag', 'aria-label': 'Filter by tag', onChange: () => {
      const tag = this.tagPicker.value
      this.tagPicker.value = ''
      if (tag) this.addTag(tag)
    } })
    this.pinned = h('input', { type: 'checkbox', testid: 'filter-pinned',
      onChange: () => catalog.setView({ pinned: this.pinned.checked }) })
    this.due = select(DUES, { testid: 'filter-due', 'aria-label': 'Due date filter',
      onChange: () => catalog.setView({ due: this.due.value }) })
    this.sort = select(SORTS, { testid: 'sort', 'aria-label': 'Sort notes by',
      onChange: () => catalog.setView({ sort: this.sort.value }) })
    this.activeTags = h('ul', { class: 'chips filter-chips', testid: 'active-tags' })
    this.clear = h('button', { class: 'link-button', type: 'button', testid: 'clear-filters', hidden: true,
      onClick: () => this.clearFilters() }, 'Clear filters')
    this.list = h('ul', { class: 'note-list', testid: 'note-list' })
    this.more = h('button', { class: 'link-button load-more', type: 'button', testid: 'load-more', hidden: true,
      onClick: () => catalog.loadMore() }, 'Load more')
    this.trashToggle = h('button', { class: 'link-button trash-toggle', type: 'button', testid: 'show-trash',
      onClick: () => this.showTrash(!catalog.view.trashed) }, 'Trash')
    this._tagOptions = null
    this.el = h('div', { class: 'sidebar-inner' },
      h('div', { class: 'sidebar-head' }, this.heading, this.newNote),
      this.search,
      h('div', { class: 'filters' },
        this.tagPicker,
        this.due,
        this.sort,
        h('label', { class: 'filter-pinned' }, this.pinned, h('span', {}, 'Pinned only'))),
      h('div', { class: 'filter-row' }, this.activeTags, this.clear),
      this.list,
      this.more,
      h('div', { class: 'sidebar-foot' }, this.trashToggle))
    this.render()
  }

  destroy () {
    clearTimeout(this._searchTimer)
    clearTimeout(this._overdueTimer)
  }

  addTag (tag) {
    const tags = this.catalog.view.tags
    if (tags.includes(tag) || tags.length >= MAX_TAG_FILTERS) return
    this.catalog.setView({ tags: [...tags, tag] })
  }

  removeTag (tag) {
    this.catalog.setView({ tags: this.catalog.view.tags.filter((t) => t !== tag) })
  }

  showTrash (trashed) {
    this.catalog.setView({ trashed })
  }

  clearFilters () {
    clearTimeout(this._searchTimer)
    this.search.value = ''
    this.catalog.setView({ q: '', tags: [], pinned: false, due: '' })
  }

  render () {
    const { catalog } = this
    const view = catalog.view
    this.heading.textContent = view.trashed ? 'Trash' : 'Notes'
    this.newNote.hidden = view.trashed
    this.trashToggle.textContent = view.trashed ? '← Back to notes' : 'Trash'
    this.trashToggle.setAttribute('aria-pressed', String(view.trashed))
    this.pinned.checked = view.pinned
    this.due.value = view.due
    this.sort.value = view.sort
    this.sort.options[0].textContent = view.q.trim() ? 'Best match' : SORTS[0][1]
    this.clear.hidden = !catalog.filtered
    this._renderTagOptions(view.tags)
    replaceChildren(this.activeTags, view.tags.map((tag) =>
      h('li', { class: 'chip', testid: 'active-tag', 'data-value': tag },
        h('span', {}, `#${tag}`),
        h('button', { class: 'chip-remove', type: 'button', title: `Stop filtering by ${tag}`,
          'aria-label': `Stop filtering by ${tag}`, onClick: () => this.removeTag(tag) }, '×'))))
    this.list.dataset.state = catalog.state
    this.list.dataset.view = view.trashed ? 'trash' : 'notes'
    this.more.hidden = catalog.next === null || catalog.state !== 'ready'
    this.more.disabled = catalog.loadingMore
    this.more.textContent = catalog.loadingMore ? 'Loading…' : 'Load more'
    const entries = catalog.entries
    if (entries.length === 0) {
      replaceChildren(this.list, h('li', { class: 'muted empty-list' }, this._emptyText()))
      return
    }
    const current = this.current()
    replaceChildren(this.list, entries.map((entry) =>
      view.trashed ? this._trashedItem(entry, current) : this._item(entry, current)))
    if (!view.trashed) this._renderWhenDue(entries)
  }

  // Rendered again when the next listed note falls due, so it is marked overdue then.
  _renderWhenDue (entries) {
    clearTimeout(this._overdueTimer)
    const now = Date.now()
    const next = Math.min(...entries.map((entry) => dueAt(entry.due)).filter((at) => at > now))
    if (Number.isFinite(next)) {
      this._overdueTimer = setTimeout(() => this.render(), Math.min(next - now + 50, MAX_TIMER_MS))
    }
  }

  _emptyText () {
    const { catalog } = this
    if (catalog.state === 'loading') return 'Loading…'
    if (catalog.state === 'error') return `Could not load the notes: ${catalog.error}`
    if (catalog.filtered) return 'No notes match.'
    return catalog.view.trashed ? 'The trash is empty.' : 'No notes yet.'
  }

  _link (entry, current) {
    const active = entry.id === current
    const viewers = this.presence.viewersOf(entry.id)
    return h('a', {
      class: `note-item${active ? ' active' : ''}`,
      href: routeHash(this.catalog.workspace, entry.id),
      testid: 'note-item',
      'data-note': entry.id,
      'aria-current': active ? 'page' : null
    },
    entry.pinned && h('span', { class: 'note-item-pin', title: 'Pinned', 'aria-label': 'Pinned' }, '★'),
    h('span', { class: 'note-item-title' }, entry.title || 'Untitled'),
    viewers.length > 0 && h('span', { class: 'note-item-viewers' },
      viewers.slice(0, 3).map((user) => avatar(user.name || user.user, colorFor(user.user), { class: 'avatar tiny' }))))
  }

  _item (entry, current) {
    const searching = Boolean(this.catalog.view.q.trim())
    const overdue = isOverdue(entry)
    const details = [
      entry.priority && h('span', { class: 'badge-priority', 'data-priority': entry.priority }, entry.priority),
      entry.due && h('span', {
        class: `note-item-due${overdue ? ' overdue' : ''}`,
        testid: overdue ? 'note-overdue' : 'note-due',
        title: overdue ? 'Overdue' : 'Due'
      }, `${overdue ? 'Overdue' : 'Due'} ${entry.due.slice(0, 10)}`),
      entry.tags.map((tag) => h('button', {
        class: 'note-tag', type: 'button', testid: 'note-tag', 'data-value': tag, title: `Show notes tagged ${tag}`,
        onClick: () => this.addTag(tag)
      }, `#${tag}`))
    ].flat().filter(Boolean)
    return h('li', { class: `note-row${overdue ? ' note-overdue' : ''}`, 'data-overdue': String(overdue) },
      this._link(entry, current),
      details.length > 0 && h('div', { class: 'note-item-meta' }, details),
      searching && entry.excerpt && h('p', { class: 'note-item-excerpt', testid: 'note-excerpt' }, entry.excerpt))
  }

  _trashedItem (entry, current) {
    return h('li', { class: 'note-row trashed' },
      this._link(entry, current),
      h('div', { class: 'note-item-meta' },
        h('span', { class: 'muted' }, `Trashed ${timeAgo(entry.trashed_at)}`),
        this.canWrite && h('button', { class: 'link-button', type: 'button', testid: 'restore-note', 'data-note': entry.id,
          onClick: () => this.onRestore(entry.id) }, 'Restore'),
        this.canPurge && h('button', { class: 'link-button danger', type: 'button', testid: 'purge-note', 'data-note': entry.id,
          onClick: () => this.onPurge(entry.id) }, 'Delete forever')))
  }

  // The tags seen so far, less those already filtered on; rebuilt only when they change.
  _renderTagOptions (active) {
    const tags = this.catalog.tagsSeen().filter((tag) => !active.includes(tag))
    const key = tags.join('\n')
    if (key === this._tagOptions) return
    this._tagOptions = key
    replaceChildren(this.tagPicker,
      h('option', { value: '' }, tags.length ? 'Filter by tag…' : 'No tags yet'),
      tags.map((tag) => h('option', { value: tag }, `#${tag}`)))
    this.tagPicker.value = ''
  }

  _searchSoon () {
    clearTimeout(this._searchTimer)
    this._searchTimer = setTimeout(() => {
      if (this.search.value !== this.catalog.view.q) this.catalog.setView({ q: this.search.value })
    }, SEARCH_DELAY_MS)
  }
}

function select (options, props) {
  return h('select', props, options.map(([value, label]) => h('option', { value }, label)))
}

// As the server's reminders have it: due before now (a date alone at 00:00 UTC), not trashed.
function isOverdue (entry) {
  return !entry.trashed_at && dueAt(entry.due) < Date.now()
}

// A due as a moment (ms): a date alone is that day at 00:00 UTC; NaN without a valid due.
function dueAt (due) {
  if (typeof due !== 'string') return NaN
  return Date.parse(due.length === 10 ? `${due}T00:00:00Z` : due)
}
