// REST and WebSocket addresses of the server that served this page.

export const origin = window.location.origin
export const wsOrigin = origin.replace(/^http/, 'ws')

/** JSON from `path` (null for an empty answer such as 204); throws an Error with the answer's
 * `status` and error `code` (`{"error": {"code", "message"}}`) when it is not a success. */
export async function api (path, { token, method = 'GET', body } = {}) {
  const headers = { Accept: 'application/json' }
  if (token) headers.Authorization = `Bearer ${token}`
  if (body !== undefined) headers['Content-Type'] = 'application/json'
  const response = await fetch(origin + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body)
  })
  const data = await response.json().catch(() => null)
  if (!response.ok) {
    const message = data?.error?.message || `${response.status} ${response.statusText}`
    const error = new Error(message)
    error.status = response.status
    error.code = data?.error?.code || null
    throw error
  }
  return data
}
