// Deep links: #/{workspace}/{note} (or #/{workspace}). Ids as the server accepts them.

// As the server checks them: 1-128 of A-Z a-z 0-9 . _ ~ -, starting with a letter or digit.
const ID = /^[A-Za-z0-9][A-Za-z0-9._~-]{0,127}$/
// The workspace's note list is itself a Yjs document: {workspace}/notes-index. (A leading `_`,
// as in `_index`, is refused by the server's id check.) Never opened as a note.
export const INDEX_NOTE = 'notes-index'

export function isId (value) {
  return typeof value === 'string' && ID.test(value)
}

export function parseRoute (hash) {
  const parts = hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(safeDecode)
  const workspace = isId(parts[0]) ? parts[0] : null
  const note = workspace && isId(parts[1]) && parts[1] !== INDEX_NOTE ? parts[1] : null
  return { workspace, note }
}

export function routeHash (workspace, note) {
  return note ? `#/${workspace}/${note}` : `#/${workspace}`
}

export function newNoteId () {
  const bytes = crypto.getRandomValues(new Uint8Array(6))
  return 'n-' + Array.from(bytes, (b) => b.toString(36).padStart(2, '0')).join('').slice(0, 10)
}

function safeDecode (part) {
  try {
    return decodeURIComponent(part)
  } catch {
    return ''
  }
}
