// @-mention autocomplete in the editor, from the workspace's member directory: typing `@` and
// the start of a user id or name shows up to 8 members (`GET /api/v1/workspaces/{id}/members?q=`);
// ArrowUp/ArrowDown choose, Enter or Tab insert `@user-id ` (the plain-text mention the server
// reads: it notifies that member once), Escape closes. Nothing but text goes into the document.
import { Extension } from '@tiptap/core'
import { Plugin, PluginKey } from '@tiptap/pm/state'
import { api } from './api.js'
import { h, replaceChildren } from './dom.js'

const KEY = new PluginKey('mention-suggestions')
// `@` at the start of a block or after a space, then what a user id may hold so far.
const TRIGGER = /(?:^|\s)@([A-Za-z0-9._~-]{0,64})$/
const LIMIT = 8
const DEBOUNCE_MS = 120

export function MentionSuggestions ({ workspace, token }) {
  return Extension.create({
    name: 'mentionSuggestions',
    addProseMirrorPlugins () {
      return [suggestionPlugin({ workspace, token })]
    }
  })
}

function suggestionPlugin ({ workspace, token }) {
  let view = null
  let match = null // { from, to, query }
  let members = []
  let active = 0
  let timer = null
  let generation = 0
  let dismissedAt = null // the `@` an Escape closed the menu for: not reopened until another
  const menu = h('ul', { class: 'mention-menu', testid: 'mention-suggestions', role: 'listbox', hidden: true })
  document.body.append(menu)

  const close = () => {
    match = null
    members = []
    menu.hidden = true
    clearTimeout(timer)
    generation += 1
  }

  const render = () => {
    if (!match || members.length === 0 || !view) {
      menu.hidden = true
      return
    }
    replaceChildren(menu, members.map((member, index) => h('li', {
      class: `mention-item${index === active ? ' active' : ''}`,
      testid: 'mention-suggestion',
      'data-user': member.user,
      role: 'option',
      'aria-selected': String(index === active),
      // mousedown, not click: the editor keeps its selection.
      onMousedown: (event) => {
        event.preventDefault()
        choose(index)
      }
    }, h('strong', {}, member.name || member.user), member.name ? h('span', { class: 'mention-id' }, ` @${member.user}`) : null)))
    const at = view.coordsAtPos(match.from)
    menu.style.left = `${Math.round(at.left + window.scrollX)}px`
    menu.style.top = `${Math.round(at.bottom + window.scrollY + 4)}px`
    menu.hidden = false
  }

  const lookUp = (query) => {
    clearTimeout(timer)
    const mine = ++generation
    timer = setTimeout(async () => {
      try {
        const params = new URLSearchParams({ q: query, limit: String(LIMIT) })
        const page = await api(`/api/v1/workspaces/${encodeURIComponent(workspace)}/members?${params}`, { token })
        if (mine !== generation) return
        members = page.members
        active = 0
        render()
      } catch {
        if (mine === generation) close()
      }
    }, DEBOUNCE_MS)
  }

  const choose = (index) => {
    const member = members[index]
    if (!member || !match || !view) return
    const { from, to } = match
    view.dispatch(view.state.tr.insertText(`@${member.user} `, from, to))
    close()
    view.focus()
  }

  return new Plugin({
    key: KEY,
    view (editorView) {
      view = editorView
      return {
        update (updated) {
          const { selection } = updated.state
          if (!updated.editable || !selection.empty) return close()
          const $from = selection.$from
          const before = $from.parent.textBetween(0, $from.parentOffset, undefined, '\ufffc')
          const found = TRIGGER.exec(before)
          if (!found) return close()
          const query = found[1]
          const from = $from.pos - query.length - 1
          if (from === dismissedAt) return close()
          dismissedAt = null
          const changed = !match || match.query !== query || match.from !== from
          match = { from, to: $from.pos, query }
          if (changed) lookUp(query)
          else render()
        },
        destroy () {
          close()
          menu.remove()
          view = null
        }
      }
    },
    props: {
      handleKeyDown (_view, event) {
        if (!match || menu.hidden || members.length === 0) return false
        if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
          const step = event.key === 'ArrowDown' ? 1 : -1
          active = (active + step + members.length) % members.length
          render()
          return true
        }
        if (event.key === 'Enter' || event.key === 'Tab') {
          choose(active)
          return true
        }
        if (event.key === 'Escape') {
          dismissedAt = match.from
          close()
          return true
        }
        return false
      }
    }
  })
}
