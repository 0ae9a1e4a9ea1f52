// A tiny element builder: h('button', { class: 'x', testid: 'bell', onClick }, 'text', child)

const PROPERTIES = new Set(['value', 'checked', 'disabled', 'hidden', 'title', 'type'])

export function h (tag, props = {}, ...children) {
  const el = document.createElement(tag)
  for (const [key, value] of Object.entries(props)) {
    if (value == null || value === false) continue
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2).toLowerCase(), value)
    } else if (key === 'class') {
      el.className = value
    } else if (key === 'testid') {
      el.dataset.testid = value
    } else if (PROPERTIES.has(key)) {
      el[key] = value
    } else {
      el.setAttribute(key, value === true ? '' : String(value))
    }
  }
  append(el, children)
  return el
}

export function append (el, children) {
  for (const child of children.flat(Infinity)) {
    if (child == null || child === false) continue
    el.append(child instanceof Node ? child : String(child))
  }
  return el
}

export function replaceChildren (el, ...children) {
  el.replaceChildren()
  return append(el, children)
}

export function initials (name) {
  const words = String(name || '?').trim().split(/\s+/).filter(Boolean)
  const letters = words.length > 1 ? words[0][0] + words[words.length - 1][0] : (words[0] || '?').slice(0, 2)
  return letters.toUpperCase()
}

export function avatar (name, color, extra = {}) {
  return h('span', { class: 'avatar', style: `background-color:${color}`, title: name, ...extra }, initials(name))
}

const RELATIVE = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' })

/** "just now", "5 minutes ago"… for an ISO-8601 timestamp or Unix seconds. */
export function timeAgo (when) {
  const at = typeof when === 'number' ? when * 1000 : Date.parse(when)
  if (Number.isNaN(at)) return ''
  const seconds = Math.round((at - Date.now()) / 1000)
  const abs = Math.abs(seconds)
  if (abs < 45) return 'just now'
  if (abs < 3600) return RELATIVE.format(Math.round(seconds / 60), 'minute')
  if (abs < 86400) return RELATIVE.format(Math.round(seconds / 3600), 'hour')
  return RELATIVE.format(Math.round(seconds / 86400), 'day')
}

/** The local date `days` from today as YYYY-MM-DD (how due dates are written). */
export function localDate (days = 0) {
  const day = new Date()
  day.setDate(day.getDate() + days)
  const pad = (n) => String(n).padStart(2, '0')
  return `${day.getFullYear()}-${pad(day.getMonth() + 1)}-${pad(day.getDate())}`
}
