// Formatting buttons for the Tiptap editor; their pressed state follows the selection.
import { h } from './dom.js'

const BUTTONS = [
  { id: 'bold', label: 'B', title: 'Bold (Ctrl+B)', run: (c) => c.toggleBold(), active: ['bold'] },
  { id: 'italic', label: 'I', title: 'Italic (Ctrl+I)', run: (c) => c.toggleItalic(), active: ['italic'] },
  { id: 'strike', label: 'S', title: 'Strikethrough', run: (c) => c.toggleStrike(), active: ['strike'] },
  { id: 'h2', label: 'H2', title: 'Heading', run: (c) => c.toggleHeading({ level: 2 }), active: ['heading', { level: 2 }] },
  { id: 'h3', label: 'H3', title: 'Subheading', run: (c) => c.toggleHeading({ level: 3 }), active: ['heading', { level: 3 }] },
  { id: 'bullets', label: '• List', title: 'Bulleted list', run: (c) => c.toggleBulletList(), active: ['bulletList'] },
  { id: 'numbers', label: '1. List', title: 'Numbered list', run: (c) => c.toggleOrderedList(), active: ['orderedList'] },
  { id: 'quote', label: '❝', title: 'Quote', run: (c) => c.toggleBlockquote(), active: ['blockquote'] },
  { id: 'code', label: '</>', title: 'Code block', run: (c) => c.toggleCodeBlock(), active: ['codeBlock'] },
  { id: 'undo', label: '↶', title: 'Undo your last change (Ctrl+Z)', run: (c) => c.undo() },
  { id: 'redo', label: '↷', title: 'Redo (Ctrl+Shift+Z)', run: (c) => c.redo() }
]

export function toolbar (editor) {
  const buttons = BUTTONS.map((spec) => {
    const button = h('button', {
      type: 'button', class: `tool tool-${spec.id}`, title: spec.title, 'aria-label': spec.title,
      testid: `tool-${spec.id}`,
      onMousedown: (event) => event.preventDefault(),
      onClick: () => spec.run(editor.chain().focus()).run()
    }, spec.label)
    return { spec, button }
  })
  const refresh = () => {
    for (const { spec, button } of buttons) {
      if (spec.active) button.setAttribute('aria-pressed', String(editor.isActive(...spec.active)))
    }
  }
  editor.on('transaction', refresh)
  refresh()
  return h('div', { class: 'toolbar', role: 'toolbar', 'aria-label': 'Formatting' }, buttons.map((b) => b.button))
}
