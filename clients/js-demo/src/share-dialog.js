// The share dialog of a note: who may read it (`GET`/`PUT …/notes/{id}/access`). Workspace: every
// member by their role. Private: its creator and the people listed, each as editor or viewer;
// people are suggested from the workspace's member directory. The server decides who may change
// it (the workspace's owners and the note's creator) and says why not.
import { api } from './api.js'
import { h, replaceChildren } from './dom.js'

export class ShareDialog {
  constructor ({ workspace, note, token, nameOf, onClose }) {
    Object.assign(this, { workspace, note, token, nameOf, onClose })
    this.users = new Map()
    this.visibility = h('select', { testid: 'share-visibility', 'aria-label': 'Who can open this note' },
      h('option', { value: 'workspace' }, 'Everyone in the workspace'),
      h('option', { value: 'private' }, 'Only me and the people below'))
    this.list = h('ul', { class: 'share-users', testid: 'share-users' })
    this.options = h('datalist', { id: 'share-options' })
    this.addInput = h('input', { type: 'text', testid: 'share-add-input', list: 'share-options',
      placeholder: 'Add a person…', 'aria-label': 'Add a person', onInput: () => this.suggest() })
    this.addRole = roleSelect('viewer', 'share-add-role')
    this.error = h('p', { class: 'share-error', testid: 'share-error', hidden: true })
    this.save = h('button', { class: 'primary', type: 'button', testid: 'share-save', onClick: () => this.submit() }, 'Save')
    // Disabled until the note's current access has loaded: a choice made before that would be
    // overwritten by the loaded value, and saved as something the user did not pick.
    this.form = h('fieldset', { class: 'share-form', testid: 'share-form', disabled: true },
      h('label', { class: 'field' }, h('span', { class: 'field-label' }, 'Who can open it'), this.visibility),
      this.list,
      h('div', { class: 'share-add' }, this.addInput, this.addRole, this.options,
        h('button', { type: 'button', testid: 'share-add', onClick: () => this.add() }, 'Add')))
    this.el = h('div', { class: 'modal-backdrop', testid: 'share-dialog', role: 'dialog', 'aria-modal': 'true', 'aria-label': 'Share' },
      h('div', { class: 'modal' },
        h('h2', {}, 'Share'),
        this.form,
        this.error,
        h('div', { class: 'modal-actions' },
          h('button', { type: 'button', testid: 'share-cancel', onClick: () => this.close() }, 'Cancel'),
          this.save)))
    this.save.disabled = true
    this.el.addEventListener('keydown', (event) => { if (event.key === 'Escape') this.close() })
  }

  get path () {
    return `/api/v1/workspaces/${encodeURIComponent(this.workspace)}/notes/${encodeURIComponent(this.note)}/access`
  }

  async open () {
    document.body.append(this.el)
    try {
      const access = await api(this.path, { token: this.token })
      this.visibility.value = access.visibility
      this.users = new Map(Object.entries(access.users))
      this.render()
      this.form.disabled = false
      this.save.disabled = false
      this.visibility.focus()
    } catch (error) {
      this.fail(error.message)
    }
  }

  render () {
    replaceChildren(this.list, [...this.users].map(([user, role]) => {
      const select = roleSelect(role, 'share-user-role')
      select.addEventListener('change', () => this.users.set(user, select.value))
      return h('li', { class: 'share-user', testid: 'share-user', 'data-user': user },
        h('span', {}, this.nameOf(user), h('span', { class: 'mention-id' }, ` @${user}`)),
        select,
        h('button', { class: 'chip-remove', type: 'button', title: `Remove ${user}`, 'aria-label': `Remove ${user}`,
          onClick: () => { this.users.delete(user); this.render() } }, '×'))
    }))
  }

  async suggest () {
    const query = this.addInput.value.trim()
    try {
      const params = new URLSearchParams({ q: query, limit: '8' })
      const page = await api(`/api/v1/workspaces/${encodeURIComponent(this.workspace)}/members?${params}`, { token: this.token })
      replaceChildren(this.options, page.members.map((member) =>
        h('option', { value: member.user }, member.name || member.user)))
    } catch {}
  }

  add () {
    const user = this.addInput.value.trim()
    if (!user) return
    this.users.set(user, this.addRole.value)
    this.addInput.value = ''
    this.render()
  }

  async submit () {
    this.save.disabled = true
    let saved = false
    try {
      await api(this.path, {
        token: this.token,
        method: 'PUT',
        body: { visibility: this.visibility.value, users: Object.fromEntries(this.users) }
      })
      saved = true
      this.close()
    } catch (error) {
      this.fail(error.message)
    } finally {
      if (!saved) this.save.disabled = false
    }
  }

  fail (message) {
    this.error.textContent = message
    this.error.hidden = false
  }

  close () {
    this.el.remove()
    this.onClose()
  }
}

function roleSelect (value, testid) {
  const select = h('select', { testid, 'aria-label': 'Role' },
    h('option', { value: 'editor' }, 'Can edit'),
    h('option', { value: 'viewer' }, 'Can view'))
  select.value = value
  return select
}
