// The workspace's note list: the Yjs document `{workspace}/notes-index` on the same server, through
// the stock provider. `notes` is a Y.Array of note ids; `titles` a Y.Map note id -> title that
// the clients keep in step with each note's meta.title, so the sidebar needs no other document.
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { wsOrigin } from './api.js'
import { INDEX_NOTE } from './route.js'

export class WorkspaceIndex {
  constructor (workspace, token, { canWrite }) {
    this.workspace = workspace
    this.canWrite = canWrite
    this.doc = new Y.Doc()
    this.notes = this.doc.getArray('notes')
    this.titles = this.doc.getMap('titles')
    this.provider = new WebsocketProvider(`${wsOrigin}/ws/docs`, `${workspace}/${INDEX_NOTE}`, this.doc, {
      params: { token }
    })
    this.synced = new Promise((resolve) => {
      const onSync = (synced) => {
        if (!synced) return
        this.provider.off('sync', onSync)
        resolve()
      }
      this.provider.on('sync', onSync)
    })
    this.synced.then(() => this._dropDuplicates())
  }

  /** Note ids in list order, each once (two clients may add the same id concurrently). */
  ids () {
    return [...new Set(this.notes.toArray().filter((id) => typeof id === 'string'))]
  }

  titleOf (noteId) {
    const title = this.titles.get(noteId)
    return typeof title === 'string' ? title : ''
  }

  async add (noteId) {
    if (!this.canWrite) return
    await this.synced
    if (!this.ids().includes(noteId)) this.notes.push([noteId])
  }

  setTitle (noteId, title) {
    if (this.canWrite && this.titleOf(noteId) !== title) this.titles.set(noteId, title)
  }

  onChange (listener) {
    this.notes.observe(listener)
    this.titles.observe(listener)
    this.provider.on('sync', listener)
  }

  destroy () {
    this.provider.destroy()
    this.doc.destroy()
  }

  // Every client deletes the same later copies (Yjs orders the array identically everywhere).
  _dropDuplicates () {
    if (!this.canWrite) return
    const seen = new Set()
    const duplicates = []
    this.notes.toArray().forEach((id, index) => {
      if (seen.has(id)) duplicates.push(index)
      seen.add(id)
    })
    if (duplicates.length === 0) return
    this.doc.transact(() => {
      for (const index of duplicates.reverse()) this.notes.delete(index, 1)
    })
  }
}
