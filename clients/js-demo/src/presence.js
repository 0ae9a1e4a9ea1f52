// Who is online in the workspace (presence.* events of the live channel) and which notes they
// have open. Also the names of people for assignees: whoever is online, and the workspace's
// member directory.
import { avatar, h, replaceChildren } from './dom.js'
import { colorFor } from './colors.js'

export class Presence {
  constructor ({ self, titleOf, onChange }) {
    this.self = self
    this.titleOf = titleOf
    this.onChange = onChange
    this.workspace = null
    this.users = new Map()
    this.names = new Map([[self.user, self.name]])
    this.el = h('ul', { class: 'presence', testid: 'presence-strip', 'aria-label': 'Online now' })
  }

  setWorkspace (workspace) {
    this.workspace = workspace
    this.users.clear()
    this.render()
  }

  handle (message) {
    if (message.workspace !== this.workspace) return
    switch (message.type) {
      case 'presence.snapshot':
        this.users = new Map(message.users.map((user) => [user.user, user]))
        break
      case 'presence.join':
      case 'presence.update':
        this.users.set(message.user.user, message.user)
        break
      case 'presence.leave':
        this.users.delete(message.user)
        break
      default:
        return
    }
    for (const user of this.users.values()) this.names.set(user.user, user.name || user.user)
    this.render()
    this.onChange()
  }

  /** Names from the member directory (`GET …/members`): assignable even when offline. */
  learnMembers (members) {
    for (const member of members) this.names.set(member.user, member.name || member.user)
  }

  nameOf (userId) {
    return this.names.get(userId) || userId
  }

  ids () {
    return [...this.names.keys()]
  }

  /** Users (other than this one) who have `note` open. */
  viewersOf (note) {
    return [...this.users.values()].filter((user) => user.user !== this.self.user && openNotes(user).includes(note))
  }

  render () {
    const users = [...this.users.values()].sort((a, b) =>
      (a.user === this.self.user ? -1 : b.user === this.self.user ? 1 : a.since - b.since))
    replaceChildren(this.el, users.map((user) => {
      const notes = openNotes(user)
      const name = user.name || user.user
      const where = notes.length ? notes.map((note) => this.titleOf(note) || note).join(', ') : 'no note open'
      return h('li', {
        class: 'presence-user',
        testid: 'presence-user',
        'data-user': user.user,
        'data-notes': notes.join(','),
        title: `${name} — ${where}${user.status ? ` — ${user.status}` : ''}`
      },
      avatar(name, colorFor(user.user)),
      h('span', { class: 'presence-text' },
        h('span', { class: 'presence-name' }, user.user === this.self.user ? `${name} (you)` : name),
        h('span', { class: 'presence-note', testid: 'presence-note' }, notes.length ? where : 'browsing')))
    }))
  }
}

function openNotes (user) {
  return Array.isArray(user.notes) ? user.notes : []
}
