// Shown without a usable token: a dev-mode sign-in form (only when the server says
// GET /api/v1/dev/config -> {"dev_mode": true}), otherwise how to get a sign-in link.
import { api } from './api.js'
import { h, replaceChildren } from './dom.js'
import { isId, parseRoute } from './route.js'

export async function showSignIn (root, { expired, onToken }) {
  replaceChildren(root, h('div', { class: 'signin-page' }, h('p', { class: 'muted' }, 'Loading…')))
  let devMode = false
  try {
    devMode = (await api('/api/v1/dev/config'))?.dev_mode === true
  } catch {
    devMode = false
  }
  const notice = expired && h('p', { class: 'notice', testid: 'signin-expired' },
    'Your sign-in has expired. Sign in again to keep editing.')
  const card = h('section', { class: 'signin-card', testid: 'signin' },
    h('div', { class: 'brand brand-large' }, logo(), 'collab'),
    notice,
    devMode ? devForm(onToken) : linkHelp())
  replaceChildren(root, h('div', { class: 'signin-page' }, card))
}

function devForm (onToken) {
  const workspace = parseRoute(window.location.hash).workspace || 'w1'
  const user = h('input', { name: 'sub', required: true, placeholder: 'alice', autocomplete: 'username', testid: 'signin-user' })
  const name = h('input', { name: 'name', placeholder: 'Alice', testid: 'signin-name' })
  const space = h('input', { name: 'workspace', required: true, value: workspace, testid: 'signin-workspace' })
  const error = h('p', { class: 'error', testid: 'signin-error', hidden: true })
  const submit = h('button', { class: 'primary', type: 'submit', testid: 'signin-submit' }, 'Get a token and open')
  const form = h('form', { class: 'signin-form', onSubmit: async (event) => {
    event.preventDefault()
    error.hidden = true
    for (const [input, label] of [[user, 'User id'], [space, 'Workspace']]) {
      if (!isId(input.value)) {
        error.textContent = `${label}: 1–128 characters of A–Z a–z 0–9 . _ ~ -`
        error.hidden = false
        return
      }
    }
    submit.disabled = true
    try {
      const { token } = await api('/api/v1/dev/token', {
        method: 'POST',
        body: { sub: user.value, name: name.value || user.value, workspace: space.value }
      })
      if (parseRoute(window.location.hash).workspace !== space.value) window.location.hash = `#/${space.value}`
      onToken(token)
    } catch (failure) {
      error.textContent = `Could not sign in: ${failure.message}`
      error.hidden = false
      submit.disabled = false
    }
  } },
  h('p', { class: 'dev-badge' }, 'Development mode — anyone can sign in as anyone.'),
  h('label', { class: 'field' }, h('span', { class: 'field-label' }, 'User id'), user),
  h('label', { class: 'field' }, h('span', { class: 'field-label' }, 'Display name'), name),
  h('label', { class: 'field' }, h('span', { class: 'field-label' }, 'Workspace'), space),
  error, submit)
  return form
}

function linkHelp () {
  return h('div', { class: 'signin-help', testid: 'signin-help' },
    h('p', {}, 'Open the link printed by ', h('code', {}, 'collab serve'), ': it signs you in.'),
    h('p', { class: 'muted' }, 'Or mint a token where the server runs:'),
    h('pre', {}, 'collab token --sub alice --name Alice \\\n  --workspace w1:editor'),
    h('p', { class: 'muted' }, 'and open:'),
    h('pre', {}, `${window.location.origin}/?token=TOKEN#/w1/n1`))
}

export function logo () {
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg')
  svg.setAttribute('viewBox', '0 0 24 24')
  svg.setAttribute('class', 'logo')
  svg.setAttribute('aria-hidden', 'true')
  svg.innerHTML = '<circle cx="9" cy="12" r="6" fill="#4263eb"/><circle cx="15" cy="12" r="6" fill="#d6336c" fill-opacity=".8"/>'
  return svg
}
