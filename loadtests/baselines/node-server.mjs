// The reference y-websocket server, as a baseline: @y/websocket-server's own connection
// handler (`setupWSConnection`) on a `ws` server, documents in memory (no YPERSISTENCE).
//
// Usage: node node-server.mjs [PORT]   (or PORT in the environment; 0 = a free port)
// Listens on 127.0.0.1 only; the room is the URL path. Prints "listening on PORT" when ready.

import http from 'node:http'
import { WebSocketServer } from 'ws'
import { setupWSConnection } from '@y/websocket-server/utils'

if (process.env.YPERSISTENCE) {
  console.error('node-server.mjs: unset YPERSISTENCE, the baseline keeps documents in memory')
  process.exit(2)
}
const port = Number.parseInt(process.argv[2] ?? process.env.PORT ?? '0', 10)
// Same limit as collab's COLLAB_MAX_MESSAGE_BYTES default, and no compression (like collab's
// default), so the servers handle the same frames.
const wss = new WebSocketServer({ noServer: true, maxPayload: 8 * 1024 * 1024, perMessageDeflate: false })
const server = http.createServer((_request, response) => {
  response.writeHead(404)
  response.end()
})
server.on('upgrade', (request, socket, head) => {
  wss.handleUpgrade(request, socket, head, (ws) => setupWSConnection(ws, request))
})
server.listen(port, '127.0.0.1', () => {
  console.log(`listening on ${server.address().port}`)
})
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => process.exit(0))
}
