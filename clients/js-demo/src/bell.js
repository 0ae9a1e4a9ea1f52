// The notification bell: unread count, a dropdown of the latest notifications, read on click,
// "mark all read". Fed by the live channel; marks read over it, or over REST while it is down.
import { api } from './api.js'
import { h, replaceChildren, timeAgo } from './dom.js'

const SHOWN = 50

export class Bell {
  constructor ({ live, token, onOpen, nameOf }) {
    this.live = live
    this.nameOf = nameOf
    this.token = token
    this.onOpen = onOpen
    this.items = new Map()
    this.unread = 0
    this.replaying = true
    this.count = h('span', { class: 'badge', testid: 'unread-count', hidden: true })
    this.button = h('button', {
      class: 'icon-button bell', type: 'button', testid: 'bell', 'aria-haspopup': 'true',
      'aria-expanded': 'false', title: 'Notifications', onClick: () => this.toggle()
    }, bellIcon(), this.count)
    this.list = h('ul', { class: 'notification-list', testid: 'notification-list' })
    this.markAll = h('button', { class: 'link-button', type: 'button', testid: 'mark-all-read',
      onClick: () => this.markAllRead() }, 'Mark all read')
    this.menu = h('div', { class: 'dropdown', testid: 'notification-menu', hidden: true },
      h('div', { class: 'dropdown-head' }, h('strong', {}, 'Notifications'), this.markAll),
      this.list)
    this.el = h('div', { class: 'bell-wrap' }, this.button, this.menu)
    this._outside = (event) => {
      if (!this.el.contains(event.target)) this.toggle(false)
    }
    document.addEventListener('pointerdown', this._outside)
    this.render()
  }

  /** Unread notifications from before this page's resume point, so the list is not empty. */
  async loadUnread () {
    try {
      const page = await api('/api/v1/notifications?unread=true&limit=100', { token: this.token })
      for (const notification of page.notifications) this._put(notification)
      this.render()
    } catch {
      // The live channel still brings new ones and the count.
    }
  }

  handle (message) {
    switch (message.type) {
      case 'welcome':
        this.replaying = true
        return
      case 'notification': {
        const notification = message.notification
        const known = this.items.has(notification.id)
        this._put(notification)
        if (!known && !this.replaying && !notification.read_at) this.unread += 1
        break
      }
      case 'notifications.synced':
        this.replaying = false
        this.unread = message.unread
        break
      case 'notifications.read':
        for (const id of message.ids) {
          const item = this.items.get(id)
          if (item && !item.read_at) item.read_at = new Date().toISOString()
        }
        this.unread = message.unread
        break
      default:
        return
    }
    this.render()
  }

  toggle (open = this.menu.hidden) {
    this.menu.hidden = !open
    this.button.setAttribute('aria-expanded', String(open))
  }

  async markRead (ids) {
    if (ids.length === 0) return
    if (this.live.send({ type: 'notifications.read', ids })) return
    for (const id of ids) {
      const result = await api(`/api/v1/notifications/${id}/read`, { token: this.token, method: 'POST' })
      this.handle({ type: 'notifications.read', ids: result.read, unread: result.unread })
    }
  }

  async markAllRead () {
    if (this.live.send({ type: 'notifications.read_all' })) return
    const result = await api('/api/v1/notifications/read-all', { token: this.token, method: 'POST' })
    this.handle({ type: 'notifications.read', ids: result.read, unread: result.unread })
  }

  destroy () {
    document.removeEventListener('pointerdown', this._outside)
  }

  render () {
    this.count.hidden = this.unread <= 0
    this.count.textContent = this.unread > 99 ? '99+' : String(this.unread)
    this.button.setAttribute('aria-label', `Notifications, ${this.unread} unread`)
    this.markAll.disabled = this.unread <= 0
    const latest = [...this.items.values()].sort((a, b) => b.id - a.id).slice(0, SHOWN)
    if (latest.length === 0) {
      replaceChildren(this.list, h('li', { class: 'empty' }, 'Nothing yet'))
      return
    }
    replaceChildren(this.list, latest.map((notification) => {
      const { title, detail } = describe(notification, this.nameOf)
      return h('li', {},
        h('button', {
          type: 'button',
          class: `notification${notification.read_at ? '' : ' unread'}`,
          testid: 'notification-item',
          'data-id': notification.id,
          'data-kind': notification.kind,
          'data-read': String(Boolean(notification.read_at)),
          onClick: () => this._open(notification)
        },
        h('span', { class: 'notification-title' }, title),
        detail && h('span', { class: 'notification-body' }, detail),
        h('span', { class: 'notification-time' }, timeAgo(notification.created_at))))
    }))
  }

  _put (notification) {
    if (notification && Number.isSafeInteger(notification.id)) this.items.set(notification.id, notification)
  }

  _open (notification) {
    if (!notification.read_at) this.markRead([notification.id])
    const target = linkOf(notification)
    if (target) {
      this.toggle(false)
      this.onOpen(target)
    }
  }
}

function describe ({ kind, payload = {} }, nameOf) {
  const actor = payload.actor_name || (payload.actor ? nameOf(payload.actor) : 'Someone')
  const note = payload.title || payload.note || 'a note'
  if (kind === 'mention') return { title: `${actor} mentioned you`, detail: `in “${note}”` }
  if (kind === 'assignment') return { title: `${actor} assigned you`, detail: `to “${note}”` }
  if (kind === 'due_soon') return { title: `Due soon: ${note}`, detail: dueText(payload.due) }
  if (kind === 'overdue') return { title: `Overdue: ${note}`, detail: dueText(payload.due) }
  return { title: payload.title || 'Message', detail: [payload.body, `— ${actor}`].filter(Boolean).join(' ') }
}

// A reminder's due as written: a date alone is that day (00:00 UTC), a date-time in local time.
function dueText (due) {
  if (typeof due !== 'string') return ''
  if (due.length === 10) return `Due ${due}`
  const at = new Date(due)
  return Number.isNaN(at.getTime()) ? `Due ${due}` : `Due ${at.toLocaleString()}`
}

// Only links inside this app: a deep link "#/w/n", or a note of the notification's workspace.
function linkOf ({ workspace, payload = {} }) {
  if (typeof payload.link === 'string' && payload.link.startsWith('#/')) return payload.link
  if (typeof payload.note === 'string' && workspace) return `#/${workspace}/${payload.note}`
  return null
}

function bellIcon () {
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg')
  svg.setAttribute('viewBox', '0 0 24 24')
  svg.setAttribute('aria-hidden', 'true')
  svg.innerHTML = '<path d="M12 3a6 6 0 0 0-6 6v3.6l-1.6 2.7A1 1 0 0 0 5.3 17h13.4a1 1 0 0 0 .9-1.7L18 12.6V9a6 6 0 0 0-6-6Zm0 19a2.6 2.6 0 0 0 2.5-2h-5A2.6 2.6 0 0 0 12 22Z"/>'
  return svg
}
