// The live channel (/ws/live, docs/live-protocol.md): one JSON WebSocket per page for presence,
// notifications and the catalog's note.* events. Reconnects with jittered exponential backoff and resumes notifications
// from the last id seen (kept in localStorage per user, so a reload resumes too).

const BACKOFF_BASE_MS = 500
const BACKOFF_MAX_MS = 15000
const PING_EVERY_MS = 20000
const PONG_TIMEOUT_MS = 10000

export class LiveChannel {
  constructor ({ wsOrigin, token, user, onEvent, onState }) {
    this.wsOrigin = wsOrigin
    this.token = token
    this.onEvent = onEvent
    this.onState = onState
    this.storageKey = `collab.live.after.${user}`
    this.after = Number(localStorage.getItem(this.storageKey)) || 0
    this.workspaces = new Set()
    this.ws = null
    this.attempts = 0
    this.stopped = true
    this.state = 'connecting'
    this._online = () => this._reconnectNow()
    this._offline = () => this._drop()
  }

  start () {
    this.stopped = false
    window.addEventListener('online', this._online)
    window.addEventListener('offline', this._offline)
    this._connect()
  }

  stop () {
    this.stopped = true
    window.removeEventListener('online', this._online)
    window.removeEventListener('offline', this._offline)
    clearTimeout(this._retryTimer)
    this._stopPing()
    this.ws?.close(1000)
    this.ws = null
  }

  /** Follow presence and note events in `workspace` (re-sent after every reconnect). */
  subscribe (workspace) {
    this.workspaces.add(workspace)
    this.send({ type: 'subscribe', workspace })
  }

  unsubscribe (workspace) {
    if (this.workspaces.delete(workspace)) this.send({ type: 'unsubscribe', workspace })
  }

  /** Send one message; false when the channel is not open (the caller may fall back to REST). */
  send (message) {
    if (this.ws?.readyState !== WebSocket.OPEN) return false
    this.ws.send(JSON.stringify(message))
    return true
  }

  _connect () {
    if (this.stopped) return
    const url = `${this.wsOrigin}/ws/live?token=${encodeURIComponent(this.token)}&after=${this.after}`
    const ws = new WebSocket(url)
    this.ws = ws
    this._setState('connecting')
    ws.onmessage = (event) => {
      if (this.ws !== ws) return
      this._lastMessageAt = Date.now()
      let message
      try {
        message = JSON.parse(event.data)
      } catch {
        return
      }
      this._receive(message)
    }
    ws.onclose = () => {
      if (this.ws === ws) this._drop()
    }
    ws.onerror = () => {}
  }

  // Forget the current socket at once (a dead one may take long to report its close).
  _drop () {
    if (!this._forget()) return
    this._stopPing()
    this._setState('offline')
    this._scheduleRetry()
  }

  _receive (message) {
    switch (message.type) {
      case 'welcome':
        this.attempts = 0
        this._setState('connected')
        this._startPing()
        for (const workspace of this.workspaces) this.send({ type: 'subscribe', workspace })
        break
      case 'notification':
        this._seen(message.notification?.id)
        break
      case 'notifications.synced':
        this._seen(message.last_id)
        break
    }
    this.onEvent(message)
  }

  _seen (id) {
    if (Number.isSafeInteger(id) && id > this.after) {
      this.after = id
      localStorage.setItem(this.storageKey, String(id))
    }
  }

  _scheduleRetry () {
    if (this.stopped) return
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** this.attempts)
    this.attempts += 1
    clearTimeout(this._retryTimer)
    this._retryTimer = setTimeout(() => this._connect(), ceiling / 2 + Math.random() * ceiling / 2)
  }

  _reconnectNow () {
    if (this.stopped || this.ws?.readyState === WebSocket.OPEN) return
    clearTimeout(this._retryTimer)
    this._forget()
    this.attempts = 0
    this._connect()
  }

  _forget () {
    const ws = this.ws
    this.ws = null
    if (!ws) return null
    ws.onmessage = ws.onclose = null
    ws.close()
    return ws
  }

  // A half-open socket (network gone without a close) is noticed by a missing pong.
  _startPing () {
    this._stopPing()
    this._pingTimer = setInterval(() => {
      const sentAt = Date.now()
      this.send({ type: 'ping' })
      this._pongTimer = setTimeout(() => {
        if (this._lastMessageAt < sentAt) this._drop()
      }, PONG_TIMEOUT_MS)
    }, PING_EVERY_MS)
  }

  _stopPing () {
    clearInterval(this._pingTimer)
    clearTimeout(this._pongTimer)
  }

  _setState (state) {
    if (this.state === state) return
    this.state = state
    this.onState(state)
  }
}
