// The note's `meta` Y.Map: title (string), tags (Y.Array of strings), pinned (boolean),
// priority (low, medium, high or urgent; absent for none), assignees (Y.Array of user ids),
// due (ISO-8601 date string). The server's catalog lists, filters and sorts on these. Fields follow remote changes
// live; a field being typed in is left alone until it loses focus.
import * as Y from 'yjs'
import { h, replaceChildren } from './dom.js'
import { isId } from './route.js'

const DATE = /^(\d{4}-\d{2}-\d{2})/
const PRIORITIES = [['', 'None'], ['low', 'Low'], ['medium', 'Medium'], ['high', 'High'], ['urgent', 'Urgent']]

export class MetaPanel {
  constructor ({ meta, canWrite, titleInput, container, people }) {
    this.meta = meta
    this.canWrite = canWrite
    this.people = people
    this.title = titleInput
    this.title.disabled = !canWrite
    this.title.oninput = () => this._set('title', this.title.value)

    this.pinned = h('input', { type: 'checkbox', testid: 'meta-pinned', disabled: !canWrite,
      onChange: () => this._set('pinned', this.pinned.checked) })
    this.priority = h('select', { testid: 'meta-priority', disabled: !canWrite,
      onChange: () => this.priority.value ? this._set('priority', this.priority.value) : this._delete('priority') },
    PRIORITIES.map(([value, label]) => h('option', { value }, label)))
    this.due = h('input', { type: 'date', testid: 'meta-due', disabled: !canWrite,
      onChange: () => this.due.value ? this._set('due', this.due.value) : this._delete('due') })
    this.tags = new ChipList({ meta, key: 'tags', canWrite, testid: 'meta-tags', itemTestid: 'meta-tag',
      placeholder: 'Add a tag…', clean: (value) => value.trim().slice(0, 60) })
    this.assignees = new ChipList({ meta, key: 'assignees', canWrite, testid: 'meta-assignees',
      itemTestid: 'meta-assignee', placeholder: 'Assign a user id…',
      clean: (value) => (isId(value.trim()) ? value.trim() : ''),
      label: (id) => people.nameOf(id), suggestions: () => people.ids() })

    replaceChildren(container,
      h('h2', { class: 'panel-title' }, 'Details'),
      h('label', { class: 'field field-inline' }, this.pinned, h('span', {}, 'Pinned')),
      h('label', { class: 'field' }, h('span', { class: 'field-label' }, 'Priority'), this.priority),
      h('label', { class: 'field' }, h('span', { class: 'field-label' }, 'Due'), this.due),
      h('div', { class: 'field' }, h('span', { class: 'field-label' }, 'Tags'), this.tags.el),
      h('div', { class: 'field' }, h('span', { class: 'field-label' }, 'Assignees'), this.assignees.el),
      canWrite && h('p', { class: 'field-hint' }, 'Assigning someone, or writing @user-id in the note, notifies them.')
    )
    this._render = () => this.render()
    meta.observeDeep(this._render)
    this.render()
  }

  render () {
    const title = this.meta.get('title')
    setUnlessFocused(this.title, typeof title === 'string' ? title : '')
    this.pinned.checked = this.meta.get('pinned') === true
    const priority = this.meta.get('priority')
    this.priority.value = PRIORITIES.some(([value]) => value && value === priority) ? priority : ''
    const due = this.meta.get('due')
    setUnlessFocused(this.due, typeof due === 'string' && DATE.test(due) ? due.match(DATE)[1] : '')
    this.tags.render()
    this.assignees.render()
  }

  destroy () {
    this.meta.unobserveDeep(this._render)
    this.title.oninput = null
  }

  _set (key, value) {
    if (this.canWrite && this.meta.get(key) !== value) this.meta.set(key, value)
  }

  _delete (key) {
    if (this.canWrite && this.meta.has(key)) this.meta.delete(key)
  }
}

/** Strings of a Y.Array under `meta[key]` as removable chips with an input to add more. */
class ChipList {
  constructor ({ meta, key, canWrite, testid, itemTestid, placeholder, clean, label, suggestions }) {
    Object.assign(this, { meta, key, canWrite, itemTestid, clean, label: label || ((v) => v), suggestions })
    this.list = h('ul', { class: 'chips' })
    const listId = `${testid}-options`
    this.input = h('input', { type: 'text', class: 'chip-input', placeholder, testid: `${testid}-input`,
      hidden: !canWrite, list: suggestions ? listId : null, onKeydown: (event) => this._key(event) })
    this.options = suggestions ? h('datalist', { id: listId }) : null
    this.el = h('div', { class: 'chip-field', testid }, this.list, this.input, this.options)
    this.input.addEventListener('focus', () => this._fillSuggestions())
  }

  values () {
    const value = this.meta.get(this.key)
    if (value instanceof Y.Array) return value.toArray().filter((v) => typeof v === 'string')
    return Array.isArray(value) ? value.filter((v) => typeof v === 'string') : []
  }

  render () {
    replaceChildren(this.list, this.values().map((value, index) =>
      h('li', { class: 'chip', testid: this.itemTestid, 'data-value': value },
        h('span', {}, this.label(value)),
        this.canWrite && h('button', { class: 'chip-remove', type: 'button', title: `Remove ${value}`,
          'aria-label': `Remove ${value}`, onClick: () => this._remove(index, value) }, '×'))
    ))
  }

  _key (event) {
    if (event.key !== 'Enter' && event.key !== ',') return
    event.preventDefault()
    const value = this.clean(this.input.value)
    if (!value) return
    this.input.value = ''
    if (this.values().includes(value)) return
    const doc = this.meta.doc
    doc.transact(() => this._array().push([value]))
  }

  _remove (index, value) {
    const array = this._array()
    if (array.get(index) === value) array.delete(index, 1)
  }

  // Created on first write; a plain JSON list (from some other writer) is converted.
  _array () {
    let array = this.meta.get(this.key)
    if (!(array instanceof Y.Array)) {
      const previous = this.values()
      array = new Y.Array()
      array.push(previous)
      this.meta.set(this.key, array)
    }
    return array
  }

  _fillSuggestions () {
    if (!this.options) return
    const taken = new Set(this.values())
    replaceChildren(this.options, this.suggestions().filter((id) => !taken.has(id)).map((id) =>
      h('option', { value: id }, this.label(id))))
  }
}

function setUnlessFocused (input, value) {
  if (document.activeElement !== input && input.value !== value) input.value = value
}
