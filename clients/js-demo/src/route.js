// Deep links: #/{workspace}/{note} (or #/{workspace}). Ids as the server accepts them.

// As the server checks them: 1-128 of A-Z a-z 0-9 . _ ~ -, starting with a letter or digit.
const ID = /^[A-Za-z0-9][A-Za-z0-9._~-]{0,127}$/

export function isId (value) {
  return typeof value === 'string' && ID.test(value)
}

export function parseRoute (hash) {
  const parts = hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(safeDecode)
  const workspace = isId(parts[0]) ? parts[0] : null
  const note = workspace && isId(parts[1]) ? parts[1] : null
  return { workspace, note }
}

export function routeHash (workspace, note) {
  return note ? `#/${workspace}/${note}` : `#/${workspace}`
}

function safeDecode (part) {
  try {
    return decodeURIComponent(part)
  } catch {
    return ''
  }
}
