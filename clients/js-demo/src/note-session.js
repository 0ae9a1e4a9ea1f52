// One open note: its Y.Doc on the stock y-websocket provider, the Tiptap editor bound to the
// `body` XML fragment, remote carets from awareness (checked: remote-carets.js), and the connection/saved state (saved:
// collab echoed every local edit back once stored, see saved-echo.js). A close
// code in 4400-4499 (4404: the note was trashed or purged) ends the session: the provider stops
// reconnecting and `onClosed` is told; other server closes are reported to `onDropped`.
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { Editor } from '@tiptap/core'
import StarterKit from '@tiptap/starter-kit'
import Collaboration from '@tiptap/extension-collaboration'
import { wsOrigin } from './api.js'
import { MentionSuggestions } from './mentions.js'
import { RemoteCarets } from './remote-carets.js'
import { SavedEcho } from './saved-echo.js'

export class NoteSession {
  constructor ({ workspace, note, session, color, canWrite, element, onState, onClosed, onDropped }) {
    this.workspace = workspace
    this.note = note
    this.onState = onState
    this.destroyed = false
    this.doc = new Y.Doc()
    this.meta = this.doc.getMap('meta')
    // A viewer's edits are never stored: it does not ask for their echo.
    const params = canWrite ? { token: session.token, saved: '1' } : { token: session.token }
    this.provider = new WebsocketProvider(`${wsOrigin}/ws/docs`, `${workspace}/${note}`, this.doc, { params })
    this._emit = () => this.onState(this.state())
    this.savedEcho = canWrite ? new SavedEcho(this.provider, this._emit) : null
    this.editor = new Editor({
      element,
      editable: canWrite,
      extensions: [
        StarterKit.configure({ history: false }),
        Collaboration.configure({ document: this.doc, field: 'body' }),
        RemoteCarets.configure({ awareness: this.provider.awareness, user: { name: session.name, color } }),
        MentionSuggestions({ workspace, token: session.token })
      ],
      editorProps: {
        attributes: { 'data-testid': 'editor', class: 'prose', spellcheck: 'false' }
      }
    })

    this._onSync = () => this._emit()
    // A dropped network often leaves the socket half-open until a timeout; reconnect at once.
    this._onOffline = () => {
      this.provider.disconnect()
      this._emit()
    }
    this._onOnline = () => {
      this.provider.connect()
      this._emit()
    }
    // The provider emits 'closed' (after 'connection-close') for a code it will not reconnect
    // after; the owner may destroy this session, so it hears of it once the provider is done.
    this._onClosed = (event) => {
      this._emit()
      setTimeout(() => {
        if (!this.destroyed) onClosed(event)
      }, 0)
    }
    this._onConnectionClose = (event) => {
      if (event && !(event.code >= 4400 && event.code < 4500)) onDropped(event)
    }
    this.provider.on('status', this._emit)
    this.provider.on('sync', this._onSync)
    this.provider.on('closed', this._onClosed)
    this.provider.on('connection-close', this._onConnectionClose)
    window.addEventListener('offline', this._onOffline)
    window.addEventListener('online', this._onOnline)
    this._emit()
  }

  /** { connection: 'connected' | 'connecting' | 'offline', saved: 'saved' | 'saving' | 'unsaved', synced } */
  state () {
    const provider = this.provider
    let connection = 'connecting'
    if (provider.wsconnected) connection = 'connected'
    else if (!navigator.onLine || !provider.shouldConnect || provider.wsUnsuccessfulReconnects > 0) connection = 'offline'
    let saved = 'saved'
    if (this.savedEcho && !this.savedEcho.saved) saved = connection === 'connected' ? 'saving' : 'unsaved'
    return { connection, saved, synced: provider.synced }
  }

  destroy () {
    this.destroyed = true
    window.removeEventListener('offline', this._onOffline)
    window.removeEventListener('online', this._onOnline)
    this.savedEcho?.destroy()
    this.provider.off('closed', this._onClosed)
    this.provider.off('connection-close', this._onConnectionClose)
    this.editor.destroy()
    this.provider.destroy()
    this.doc.destroy()
  }
}
