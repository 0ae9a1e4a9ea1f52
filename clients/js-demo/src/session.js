// The sign-in token: taken from ?token= once, kept in sessionStorage, never left in the URL.
// Its claims are decoded here for display only; the server verifies the signature.

const TOKEN_KEY = 'collab.token'

export function takeTokenFromUrl () {
  const url = new URL(window.location.href)
  const token = url.searchParams.get('token')
  if (token === null) return
  if (token) sessionStorage.setItem(TOKEN_KEY, token)
  url.searchParams.delete('token')
  window.history.replaceState(window.history.state, '', url.pathname + url.search + url.hash)
}

export function storeToken (token) {
  sessionStorage.setItem(TOKEN_KEY, token)
}

export function clearToken () {
  sessionStorage.removeItem(TOKEN_KEY)
}

export function decodeClaims (token) {
  try {
    const part = token.split('.')[1]
    const base64 = part.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((part.length + 3) % 4)
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0))
    const claims = JSON.parse(new TextDecoder().decode(bytes))
    return claims && typeof claims === 'object' ? claims : null
  } catch {
    return null
  }
}

/** The stored session, or null when there is no usable token. */
export function loadSession () {
  const token = sessionStorage.getItem(TOKEN_KEY)
  if (!token) return null
  const claims = decodeClaims(token)
  if (!claims || typeof claims.sub !== 'string') {
    clearToken()
    return null
  }
  const workspaces = claims.workspaces && typeof claims.workspaces === 'object' ? claims.workspaces : {}
  return {
    token,
    user: claims.sub,
    name: typeof claims.name === 'string' && claims.name ? claims.name : claims.sub,
    workspaces,
    expiresAt: typeof claims.exp === 'number' ? claims.exp * 1000 : Infinity,
    get expired () {
      return Date.now() >= this.expiresAt
    }
  }
}
