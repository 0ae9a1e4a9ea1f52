// The signed-in page: top bar (workspace, presence, status, bell, user), offline banner, the
// sidebar of notes from the server's catalog, the editor with its title, and the details panel.
// Routes on the hash. A note shown is open in the editor, or, when it was trashed or purged,
// a message saying so (with Restore for a trashed one).
import { api, wsOrigin } from './api.js'
import { Bell } from './bell.js'
import { NoteCatalog } from './catalog.js'
import { colorFor } from './colors.js'
import { avatar, h, replaceChildren } from './dom.js'
import { HistoryPanel } from './history-panel.js'
import { LiveChannel } from './live.js'
import { MetaPanel } from './meta-panel.js'
import { NoteSession } from './note-session.js'
import { Presence } from './presence.js'
import { parseRoute, routeHash } from './route.js'
import { ShareDialog } from './share-dialog.js'
import { Sidebar } from './sidebar.js'
import { logo } from './signin.js'
import { toolbar } from './toolbar.js'

const MAX_TIMER_MS = 2 ** 31 - 1
// While the open note's socket keeps failing, how often to ask whether the note was deleted
// (an upgrade refused with 404 or 410 reaches the page as a bare close).
const GONE_CHECK_MS = 5000
const NOTICE_MS = 6000
const NOTE_DELETED = 4404

export class App {
  constructor (root, session, { onSignOut, onExpired }) {
    this.root = root
    this.session = session
    this.onSignOut = onSignOut
    this.onExpired = onExpired
    this.color = colorFor(session.user)
    this.workspace = null
    this.catalog = null
    this.sidebar = null
    // The note in the main pane: { workspace, note, state: 'opening' | 'open' | 'checking' |
    // 'trashed' | 'purged' }, or null.
    this.shown = null
    this.note = null
    this.meta = null
    this.noteState = null
    this._welcomed = false
    this._route = () => this.route()
    this._beforeUnload = (event) => {
      if (this.note?.dirty) event.preventDefault()
    }
  }

  start () {
    const session = this.session
    this.presence = new Presence({
      self: session,
      titleOf: (id) => this.catalog?.titleOf(id) || '',
      onChange: () => {
        this.sidebar?.render()
        this.bell?.render()
      }
    })
    this.live = new LiveChannel({
      wsOrigin,
      token: session.token,
      user: session.user,
      onEvent: (message) => {
        this.bell.handle(message)
        this.presence.handle(message)
        this.catalogEvent(message)
        this.history?.handle(message)
      },
      onState: () => this.renderStatus()
    })
    this.bell = new Bell({
      live: this.live,
      token: session.token,
      nameOf: (id) => this.presence.nameOf(id),
      onOpen: (link) => { window.location.hash = link }
    })
    this.buildShell()
    this.live.start()
    this.bell.loadUnread()
    window.addEventListener('hashchange', this._route)
    window.addEventListener('beforeunload', this._beforeUnload)
    this._expiry = setTimeout(() => this.onExpired(), Math.min(MAX_TIMER_MS, Math.max(0, session.expiresAt - Date.now())))
    this.route()
  }

  destroy () {
    clearTimeout(this._expiry)
    clearTimeout(this._noticeTimer)
    window.removeEventListener('hashchange', this._route)
    window.removeEventListener('beforeunload', this._beforeUnload)
    this.closeNote()
    this.closeWorkspace()
    this.live.stop()
    this.bell.destroy()
    replaceChildren(this.root)
  }

  buildShell () {
    const { session } = this
    this.workspaceName = h('span', { class: 'workspace-name', testid: 'workspace-name' })
    this.connection = h('span', { class: 'status', testid: 'connection-status', 'data-state': 'connecting' })
    this.saved = h('span', { class: 'saved', testid: 'save-status', hidden: true })
    this.banner = h('div', { class: 'offline-banner', testid: 'offline-banner', role: 'status', hidden: true },
      h('strong', {}, 'You are offline.'),
      ' Keep writing: your changes stay in this tab and merge when the connection is back.')
    this.notice = h('div', { class: 'notice-bar', testid: 'notice', role: 'alert', hidden: true })
    this.sidebarHost = h('aside', { class: 'sidebar' })
    this.main = h('main', { class: 'note-main' })
    this.details = h('aside', { class: 'details', testid: 'meta-panel' })
    replaceChildren(this.root,
      h('header', { class: 'topbar' },
        h('div', { class: 'brand' }, logo(), 'collab', this.workspaceName),
        this.presence.el,
        h('div', { class: 'spacer' }),
        h('div', { class: 'status-group' }, this.connection, this.saved),
        this.bell.el,
        h('div', { class: 'me', testid: 'me' },
          avatar(session.name, this.color),
          h('span', { class: 'me-name' }, session.name),
          h('button', { class: 'link-button', type: 'button', testid: 'sign-out', onClick: () => this.onSignOut() }, 'Sign out'))),
      this.banner,
      this.notice,
      h('div', { class: 'layout' }, this.sidebarHost, this.main, this.details))
    this.renderStatus()
  }

  route () {
    const route = parseRoute(window.location.hash)
    const workspace = route.workspace || Object.keys(this.session.workspaces)[0]
    if (!workspace) {
      this.showMessage('No workspace', 'Your sign-in does not grant access to any workspace.')
      return
    }
    if (!route.workspace) {
      window.history.replaceState(window.history.state, '', routeHash(workspace, null))
    }
    if (workspace !== this.workspace) this.openWorkspace(workspace)
    if (!this.role) {
      this.showMessage('No access', `Your sign-in does not include workspace “${workspace}”.`)
      return
    }
    if (route.note) this.openNote(route.note)
    else this.openFirstNote()
  }

  get role () {
    return this.session.workspaces[this.workspace] || null
  }

  get canWrite () {
    return this.role === 'owner' || this.role === 'editor'
  }

  // The workspace's member directory, for assignee suggestions and names (members who never
  // signed in included); best effort: presence still names whoever is online.
  async loadMembers (workspace) {
    try {
      const page = await api(`/api/v1/workspaces/${encodeURIComponent(workspace)}/members?limit=200`,
        { token: this.session.token })
      if (this.workspace === workspace) this.presence.learnMembers(page.members)
    } catch {}
  }

  openWorkspace (workspace) {
    this.closeNote()
    this.closeWorkspace()
    this.workspace = workspace
    this.workspaceName.textContent = workspace
    this.presence.setWorkspace(workspace)
    if (!this.role) return
    this.live.subscribe(workspace)
    this.loadMembers(workspace)
    this.catalog = new NoteCatalog({
      workspace,
      token: this.session.token,
      onChange: () => {
        this.sidebar?.render()
        this.presence.render()
      }
    })
    this.sidebar = new Sidebar({
      catalog: this.catalog,
      presence: this.presence,
      canWrite: this.canWrite,
      canPurge: this.role === 'owner',
      current: () => this.shown?.note,
      onNew: () => this.createNote(),
      onRestore: (id) => this.restoreNote(id),
      onPurge: (id) => this.purgeNote(id)
    })
    replaceChildren(this.sidebarHost, this.sidebar.el)
  }

  closeWorkspace () {
    if (this.workspace) this.live.unsubscribe(this.workspace)
    this.catalog?.destroy()
    this.sidebar?.destroy()
    this.catalog = null
    this.sidebar = null
    replaceChildren(this.sidebarHost)
  }

  // -- the catalog's live events -------------------------------------------------------------

  catalogEvent (message) {
    if (message.type === 'welcome') {
      // Events sent while the channel was down are lost: ask for the list again.
      if (this._welcomed) this.catalog?.refresh()
      this._welcomed = true
      return
    }
    if (typeof message.type !== 'string' || !message.type.startsWith('note.')) return
    this.catalog?.handle(message)
    const shown = this.shown
    const id = message.note?.id ?? message.id
    if (!shown || shown.workspace !== message.workspace || shown.note !== id) return
    if ((message.type === 'note.trashed' || message.type === 'note.purged') && (shown.state === 'open' || shown.state === 'opening')) {
      const kind = message.type === 'note.purged' ? 'purged' : 'trashed'
      this.showGone(id, kind, { entry: message.note, reason: this._goneReason(kind) })
    } else if (message.type === 'note.restored' && shown.state === 'trashed') {
      this.reopen()
    }
  }

  // -- the note shown ------------------------------------------------------------------------

  async openFirstNote () {
    const catalog = this.catalog
    this.showMessage('Notes', 'Loading the notes of this workspace…')
    await catalog.loaded
    if (catalog !== this.catalog || parseRoute(window.location.hash).note) return
    const first = catalog.firstNote()
    if (first) {
      window.history.replaceState(window.history.state, '', routeHash(this.workspace, first.id))
      this.route()
    } else if (catalog.state === 'error') {
      this.showMessage('Notes unavailable', `Could not load the notes: ${catalog.error}`,
        h('button', { class: 'primary', type: 'button', onClick: () => this.reloadWorkspace() }, 'Try again'))
    } else {
      this.showMessage('No notes yet', this.canWrite ? 'Create the first note of this workspace.' : 'Nothing to read here yet.',
        this.canWrite && h('button', { class: 'primary', type: 'button', onClick: () => this.createNote() }, '+ New note'))
    }
  }

  reloadWorkspace () {
    const workspace = this.workspace
    this.workspace = null
    this.openWorkspace(workspace)
    this.route()
  }

  async createNote () {
    if (!this.canWrite || !this.sidebar || this.sidebar.newNote.disabled) return
    const { catalog, sidebar } = this
    sidebar.newNote.disabled = true
    try {
      const entry = await catalog.create({})
      if (catalog !== this.catalog) return
      if (catalog.view.trashed) sidebar.showTrash(false)
      this._focusTitle = true
      window.location.hash = routeHash(this.workspace, entry.id)
    } catch (error) {
      this.notify(`Could not create a note: ${error.message}`)
    } finally {
      sidebar.newNote.disabled = !this.canWrite
    }
  }

  /** Show a note: a trashed or purged one says so; one never created opens empty (the
   * server creates it on its first edit). */
  async openNote (noteId) {
    if (this.shown?.note === noteId && this.shown.workspace === this.workspace) return
    this.closeNote()
    const shown = this.shown = { workspace: this.workspace, note: noteId, state: 'opening' }
    replaceChildren(this.main)
    this.sidebar?.render()
    let entry = null
    let fresh = false
    try {
      entry = await this.catalog.get(noteId)
    } catch (error) {
      if (this.shown !== shown) return
      if (error.status === 410) return this.showGone(noteId, 'purged')
      // 404: never created. Anything else (offline, a server error): open it all the same,
      // the document works offline and the socket says if the note is gone.
      fresh = error.status === 404
    }
    if (this.shown !== shown) return
    if (entry?.trashed_at) return this.showGone(noteId, 'trashed', { entry })
    // A private note may list us as a viewer: then it opens read only (the server would drop
    // our edits anyway).
    let canWrite = this.canWrite
    if (canWrite && entry?.visibility === 'private' && entry.created_by !== this.session.user) {
      try {
        const path = `/api/v1/workspaces/${encodeURIComponent(this.workspace)}/notes/${encodeURIComponent(noteId)}/access`
        const access = await api(path, { token: this.session.token })
        canWrite = access.users[this.session.user] === 'editor'
      } catch {}
      if (this.shown !== shown) return
    }
    this.startNote(noteId, { fresh, canWrite })
  }

  startNote (noteId, { fresh, canWrite = this.canWrite }) {
    this.shown = { workspace: this.workspace, note: noteId, state: 'open' }
    const title = h('input', { class: 'title-input', testid: 'meta-title', placeholder: 'Untitled', 'aria-label': 'Title', maxlength: 200 })
    const host = h('div', { class: 'editor-host' })
    const session = this.note = new NoteSession({
      workspace: this.workspace,
      note: noteId,
      session: this.session,
      color: this.color,
      canWrite: canWrite,
      element: host,
      onState: (state) => {
        this.noteState = state
        this.renderStatus()
      },
      onClosed: (event) => this.noteClosed(session, event),
      onDropped: () => this.noteDropped(session)
    })
    // A note never created exists once anyone writes in it.
    const hint = fresh && h('span', {}, ' · new: saved once you write in it')
    if (hint) session.doc.once('update', () => hint.remove())
    replaceChildren(this.main,
      h('div', { class: 'note-head' }, title,
        h('div', { class: 'note-id' },
          h('span', { title: 'Note id' }, `${this.workspace} / ${noteId}`, canWrite ? '' : ' · read only', hint),
          h('span', { class: 'note-actions' },
            h('button', { class: 'link-button', type: 'button', testid: 'history-note',
              onClick: () => this.showHistory(noteId, canWrite) }, 'History'),
            canWrite && h('button', { class: 'link-button', type: 'button', testid: 'share-note',
              onClick: () => this.shareNote(noteId) }, 'Share'),
            canWrite && h('button', { class: 'link-button danger', type: 'button', testid: 'trash-note',
              onClick: () => this.trashNote(noteId) }, 'Move to trash')))),
      canWrite && toolbar(session.editor),
      host)
    this.meta = new MetaPanel({
      meta: session.meta,
      canWrite: canWrite,
      titleInput: title,
      container: this.details,
      people: this.presence
    })
    this._titleSync = () => {
      const value = session.meta.get('title')
      document.title = `${(typeof value === 'string' && value) || 'Untitled'} · collab`
    }
    session.meta.observe(this._titleSync)
    this._titleSync()
    title.addEventListener('keydown', (event) => {
      if (event.key === 'Enter') {
        event.preventDefault()
        // Focus now (Tiptap's focus command defers it a frame), so no keystroke lands in the title.
        session.editor.view.focus()
        session.editor.commands.focus('start')
      }
    })
    if (this._focusTitle) title.focus()
    this._focusTitle = false
    this.sidebar?.render()
    this.renderStatus()
  }

  closeNote () {
    this.shown = null
    // The history panel belongs to the note shown: it goes with it.
    this.history?.close()
    if (!this.note) return
    this.note.meta.unobserve(this._titleSync)
    this.meta.destroy()
    this.note.destroy()
    this.note = null
    this.meta = null
    this.noteState = null
    replaceChildren(this.details)
    this.renderStatus()
  }

  /** Show the note again (say, after a restore). */
  reopen () {
    this.closeNote()
    this.route()
  }

  // The server closed the note's socket for good (the provider no longer reconnects).
  noteClosed (session, event) {
    if (session !== this.note) return
    if (event.code === NOTE_DELETED) {
      this.checkGone(this.shown.note, { closed: true })
    } else if (event.code === 4401) {
      this.onExpired()
    } else {
      const text = event.code === 4403
        ? 'You no longer have access to this note.'
        : `The server closed this note (${event.code}${event.reason ? `: ${event.reason}` : ''}).`
      this.showMessage('Note closed', text,
        h('button', { class: 'primary', type: 'button', onClick: () => this.reopen() }, 'Open it again'))
    }
  }

  // The socket failed: if the note was deleted meanwhile its upgrades are refused, and the
  // provider would retry forever. Ask the catalog now and then.
  noteDropped (session) {
    if (session !== this.note || !navigator.onLine) return
    if (Date.now() - (this._goneCheckAt || 0) < GONE_CHECK_MS) return
    this._goneCheckAt = Date.now()
    this.checkGone(session.note, { closed: false })
  }

  async checkGone (noteId, { closed }) {
    if (this.shown?.note !== noteId || this.shown.state !== 'open') return
    if (closed) {
      const workspace = this.shown.workspace
      this.closeNote()
      this.shown = { workspace, note: noteId, state: 'checking' }
      replaceChildren(this.main)
    }
    const shown = this.shown
    let kind = closed ? 'trashed' : null
    let entry = null
    try {
      entry = await this.catalog.get(noteId)
      kind = entry.trashed_at ? 'trashed' : closed ? 'restored' : null
    } catch (error) {
      if (error.status === 410) kind = 'purged'
    }
    if (this.shown !== shown || !kind) return
    if (kind === 'restored') this.reopen()
    else this.showGone(noteId, kind, { entry, reason: this._goneReason(kind) })
  }

  _goneReason (kind) {
    if (this.shown?.trashing) return 'You moved it there.'
    return kind === 'purged'
      ? 'It was deleted while you had it open.'
      : 'It was moved to the trash while you had it open.'
  }

  /** The main pane of a note in the trash (with Restore) or deleted for good. */
  showGone (noteId, kind, { entry = null, reason = '' } = {}) {
    const workspace = this.shown?.workspace || this.workspace
    this.closeNote()
    this.shown = { workspace, note: noteId, state: kind }
    const title = entry?.title || this.catalog?.titleOf(noteId) || ''
    const name = title ? `“${title}”` : 'This note'
    document.title = `${title || 'Untitled'} · collab`
    const body = kind === 'trashed'
      ? [h('h2', {}, 'In the trash'),
          h('p', {}, `${name} is in the trash.`, reason && ` ${reason}`),
          h('div', { class: 'actions' },
            this.canWrite && h('button', { class: 'primary', type: 'button', testid: 'restore-open-note',
              onClick: () => this.restoreNote(noteId) }, 'Restore'),
            this.role === 'owner' && h('button', { class: 'danger-button', type: 'button', testid: 'purge-open-note',
              onClick: () => this.purgeNote(noteId) }, 'Delete forever'))]
      : [h('h2', {}, 'Deleted'), h('p', {}, `${name} was deleted for good.`, reason && ` ${reason}`)]
    replaceChildren(this.main, h('div', { class: 'empty-state', testid: 'note-gone', 'data-state': kind, 'data-note': noteId }, body))
    this.sidebar?.render()
    this.renderStatus()
  }

  shareNote (noteId) {
    if (this.shareDialog) return
    this.shareDialog = new ShareDialog({
      workspace: this.workspace,
      note: noteId,
      token: this.session.token,
      nameOf: (user) => this.presence.nameOf(user),
      onClose: () => { this.shareDialog = null }
    })
    this.shareDialog.open()
  }

  showHistory (noteId, canWrite) {
    if (this.history) return
    this.history = new HistoryPanel({
      workspace: this.workspace,
      note: noteId,
      token: this.session.token,
      canWrite,
      nameOf: (user) => this.presence.nameOf(user),
      onClose: () => { this.history = null }
    })
    this.history.open()
  }

  async trashNote (noteId) {
    const shown = this.shown
    if (shown?.note === noteId) shown.trashing = true
    try {
      const entry = await this.catalog.trash(noteId)
      if (this.shown?.note === noteId) this.showGone(noteId, 'trashed', { entry, reason: 'You moved it there.' })
    } catch (error) {
      if (shown) shown.trashing = false
      this.notify(`Could not move the note to the trash: ${error.message}`)
    }
  }

  async restoreNote (noteId) {
    try {
      await this.catalog.restore(noteId)
    } catch (error) {
      this.notify(`Could not restore the note: ${error.message}`)
      return
    }
    const state = this.shown?.note === noteId && this.shown.state
    if (state === 'trashed' || state === 'checking') this.reopen()
  }

  async purgeNote (noteId) {
    if (!window.confirm('Delete this note for good? This cannot be undone.')) return
    try {
      await this.catalog.purge(noteId)
    } catch (error) {
      this.notify(`Could not delete the note: ${error.message}`)
      return
    }
    if (this.shown?.note === noteId) this.showGone(noteId, 'purged')
  }

  showMessage (title, text, ...extra) {
    this.closeNote()
    replaceChildren(this.main, h('div', { class: 'empty-state', testid: 'empty-state' },
      h('h2', {}, title), h('p', {}, text), ...extra))
    this.sidebar?.render()
  }

  notify (text) {
    this.notice.textContent = text
    this.notice.hidden = false
    clearTimeout(this._noticeTimer)
    this._noticeTimer = setTimeout(() => { this.notice.hidden = true }, NOTICE_MS)
  }

  renderStatus () {
    if (!this.connection) return
    const liveState = this.live?.state
    const state = this.noteState?.connection || (liveState === 'connected' ? 'connected' : liveState === 'offline' ? 'offline' : 'connecting')
    const labels = { connected: 'Connected', connecting: 'Connecting…', offline: 'Offline' }
    this.connection.dataset.state = state
    this.connection.textContent = labels[state]
    const saved = this.noteState?.saved
    this.saved.hidden = !saved
    if (saved) {
      this.saved.dataset.state = saved
      this.saved.textContent = { saved: 'Saved', saving: 'Saving…', unsaved: 'Unsaved changes' }[saved]
    }
    this.banner.hidden = state !== 'offline'
    this.presence.el.classList.toggle('stale', liveState !== 'connected')
  }
}
