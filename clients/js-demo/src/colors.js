// Cursor and avatar colours: dark enough for white labels; y-prosemirror wants #rrggbb.
const PALETTE = [
  '#d6336c', '#ae3ec9', '#7048e8', '#4263eb', '#1c7ed6', '#1098ad',
  '#0ca678', '#37b24d', '#e8590c', '#f03e3e', '#5c7cfa', '#c2255c'
]

export function colorFor (userId) {
  let hash = 2166136261
  for (const char of String(userId)) {
    hash ^= char.codePointAt(0)
    hash = Math.imul(hash, 16777619)
  }
  return PALETTE[(hash >>> 0) % PALETTE.length]
}
