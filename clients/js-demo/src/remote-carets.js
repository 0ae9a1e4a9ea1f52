// Other people's carets and selections, from awareness, which any client fills as it likes:
// y-prosemirror's cursor plugin (used directly, with the filter Tiptap's CollaborationCursor
// does not expose) sees only states of the shape it reads, and each colour is checked before
// it reaches a style. A `user` that is a string made the plugin throw on every remote edit,
// and a `cursor.anchor` of null too, so the editor stopped showing others' edits and its next
// keystroke wrote its stale view back; a colour such as `#000;position:fixed;…` was pasted
// into a style attribute and covered the page.
import { Extension } from '@tiptap/core'
import { yCursorPlugin } from 'y-prosemirror'
import { colorFor } from './colors.js'
import { h } from './dom.js'

const HEX_COLOR = /^#[0-9a-fA-F]{6}$/
const MAX_NAME_CHARS = 64

function isPlainObject (value) {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function isCount (value) {
  return Number.isSafeInteger(value) && value >= 0
}

function isId (value) {
  return isPlainObject(value) && isCount(value.client) && isCount(value.clock)
}

// Yjs' RelativePosition JSON: `{ type?, tname?, item?, assoc? }`.
function isRelativePosition (value) {
  return isPlainObject(value) &&
    (value.type == null || isId(value.type)) &&
    (value.tname == null || typeof value.tname === 'string') &&
    (value.item == null || isId(value.item)) &&
    (value.assoc == null || Number.isSafeInteger(value.assoc))
}

/** Whether a remote awareness state may be drawn: a `user` object (or none) and a cursor
 * whose anchor and head are relative positions. */
export function drawable (state) {
  if (!isPlainObject(state)) return false
  if (state.user != null && !isPlainObject(state.user)) return false
  const cursor = state.cursor
  return isPlainObject(cursor) && isRelativePosition(cursor.anchor) && isRelativePosition(cursor.head)
}

export function caretColor (user, clientId) {
  return typeof user.color === 'string' && HEX_COLOR.test(user.color) ? user.color : colorFor(clientId)
}

export function caretName (user, clientId) {
  return typeof user.name === 'string' && user.name ? user.name.slice(0, MAX_NAME_CHARS) : `User ${clientId}`
}

function renderCaret (user, clientId) {
  const color = caretColor(user, clientId)
  const label = h('span', { class: 'caret-label', testid: 'cursor-label' }, caretName(user, clientId))
  label.style.backgroundColor = color
  const caret = h('span', { class: 'caret' }, label)
  caret.style.borderColor = color
  return caret
}

function renderSelection (user, clientId) {
  return { style: `background-color: ${caretColor(user, clientId)}70`, class: 'ProseMirror-yjs-selection' }
}

/** The local user's caret goes out as awareness (`user`: name and colour); others' come in,
 * checked. */
export const RemoteCarets = Extension.create({
  name: 'remoteCarets',
  priority: 999,
  addOptions () {
    return { awareness: null, user: { name: null, color: null } }
  },
  addProseMirrorPlugins () {
    const awareness = this.options.awareness
    awareness.setLocalStateField('user', this.options.user)
    return [
      yCursorPlugin(awareness, {
        awarenessStateFilter: (ownId, clientId, state) => ownId !== clientId && drawable(state),
        cursorBuilder: renderCaret,
        selectionBuilder: renderSelection
      })
    ]
  }
})
