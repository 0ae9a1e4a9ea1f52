// The signed-in page: top bar (workspace, presence, status, bell, user), offline banner,
// sidebar of notes, the editor with its title, and the details panel. Routes on the hash.
import { wsOrigin } from './api.js'
import { Bell } from './bell.js'
import { colorFor } from './colors.js'
import { avatar, h, replaceChildren } from './dom.js'
import { LiveChannel } from './live.js'
import { MetaPanel } from './meta-panel.js'
import { NoteSession } from './note-session.js'
import { Presence } from './presence.js'
import { newNoteId, parseRoute, routeHash } from './route.js'
import { logo } from './signin.js'
import { toolbar } from './toolbar.js'
import { WorkspaceIndex } from './workspace-index.js'

const MAX_TIMER_MS = 2 ** 31 - 1

export class App {
  constructor (root, session, { onSignOut, onExpired }) {
    this.root = root
    this.session = session
    this.onSignOut = onSignOut
    this.onExpired = onExpired
    this.color = colorFor(session.user)
    this.workspace = null
    this.index = null
    this.note = null
    this.meta = null
    this.noteState = null
    this._route = () => this.route()
    this._beforeUnload = (event) => {
      if (this.note?.dirty) event.preventDefault()
    }
  }

  start () {
    const session = this.session
    this.presence = new Presence({
      self: session,
      titleOf: (id) => this.index?.titleOf(id) || '',
      onChange: () => {
        this.renderNoteList()
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
    window.removeEventListener('hashchange', this._route)
    window.removeEventListener('beforeunload', this._beforeUnload)
    this.closeNote()
    this.index?.destroy()
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
    this.noteList = h('ul', { class: 'note-list', testid: 'note-list' })
    this.newNote = h('button', { class: 'primary small', type: 'button', testid: 'new-note', onClick: () => this.createNote() }, '+ New note')
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
      h('div', { class: 'layout' },
        h('aside', { class: 'sidebar' },
          h('div', { class: 'sidebar-head' }, h('h2', {}, 'Notes'), this.newNote),
          this.noteList),
        this.main,
        this.details))
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

  openWorkspace (workspace) {
    this.closeNote()
    this.index?.destroy()
    this.index = null
    if (this.workspace) this.live.unsubscribe(this.workspace)
    this.workspace = workspace
    this.workspaceName.textContent = workspace
    this.presence.setWorkspace(workspace)
    this.newNote.disabled = !this.session.workspaces[workspace] || !this.canWrite
    if (!this.role) {
      this.renderNoteList()
      return
    }
    this.live.subscribe(workspace)
    this.index = new WorkspaceIndex(workspace, this.session.token, { canWrite: this.canWrite })
    this.index.onChange(() => {
      this.renderNoteList()
      this.presence.render()
    })
    this.renderNoteList()
  }

  async openFirstNote () {
    const index = this.index
    this.closeNote()
    this.showMessage('Notes', 'Loading the notes of this workspace…')
    await index.synced
    if (index !== this.index || parseRoute(window.location.hash).note) return
    const [first] = index.ids()
    if (first) {
      window.history.replaceState(window.history.state, '', routeHash(this.workspace, first))
      this.route()
    } else {
      this.showMessage('No notes yet', this.canWrite ? 'Create the first note of this workspace.' : 'Nothing to read here yet.',
        this.canWrite && h('button', { class: 'primary', type: 'button', onClick: () => this.createNote() }, '+ New note'))
    }
  }

  createNote () {
    if (!this.canWrite) return
    const id = newNoteId()
    this.index.add(id)
    window.location.hash = routeHash(this.workspace, id)
    this._focusTitle = true
  }

  openNote (noteId) {
    if (this.note?.note === noteId && this.note.workspace === this.workspace) return
    this.closeNote()
    this.index.add(noteId)
    const title = h('input', { class: 'title-input', testid: 'meta-title', placeholder: 'Untitled', 'aria-label': 'Title', maxlength: 200 })
    const host = h('div', { class: 'editor-host' })
    this.note = new NoteSession({
      workspace: this.workspace,
      note: noteId,
      session: this.session,
      color: this.color,
      canWrite: this.canWrite,
      element: host,
      onState: (state) => {
        this.noteState = state
        this.renderStatus()
      }
    })
    replaceChildren(this.main,
      h('div', { class: 'note-head' }, title,
        h('div', { class: 'note-id', title: 'Note id' }, `${this.workspace} / ${noteId}`, this.canWrite ? '' : ' · read only')),
      this.canWrite && toolbar(this.note.editor),
      host)
    this.meta = new MetaPanel({
      meta: this.note.meta,
      canWrite: this.canWrite,
      titleInput: title,
      container: this.details,
      people: this.presence
    })
    const session = this.note
    const index = this.index
    this._titleSync = () => {
      const value = session.meta.get('title')
      const text = typeof value === 'string' ? value : ''
      document.title = `${text || 'Untitled'} · collab`
      if (typeof value === 'string') index.synced.then(() => index.setTitle(session.note, value))
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
    this.renderNoteList()
    this.renderStatus()
  }

  closeNote () {
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

  showMessage (title, text, ...extra) {
    this.closeNote()
    replaceChildren(this.main, h('div', { class: 'empty-state', testid: 'empty-state' },
      h('h2', {}, title), h('p', {}, text), ...extra))
  }

  renderNoteList () {
    if (!this.noteList) return
    const ids = this.index ? this.index.ids() : []
    const current = this.note?.note
    if (ids.length === 0) {
      replaceChildren(this.noteList, h('li', { class: 'muted empty-list' }, this.index ? 'No notes yet' : ''))
      return
    }
    replaceChildren(this.noteList, ids.map((id) => {
      const viewers = this.presence.viewersOf(id)
      return h('li', {},
        h('a', {
          class: `note-item${id === current ? ' active' : ''}`,
          href: routeHash(this.workspace, id),
          testid: 'note-item',
          'data-note': id,
          'aria-current': id === current ? 'page' : null
        },
        h('span', { class: 'note-item-title' }, this.index.titleOf(id) || 'Untitled'),
        viewers.length > 0 && h('span', { class: 'note-item-viewers' },
          viewers.slice(0, 3).map((user) => avatar(user.name || user.user, colorFor(user.user), { class: 'avatar tiny' })))))
    }))
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
