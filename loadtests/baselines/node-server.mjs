// The reference y-websocket server, as a baseline: @y/websocket-server's own connection
// handler (`setupWSConnection`) on a `ws` server. Documents stay in memory, the server's
// default; with `--persist DIR` it keeps them in LevelDB under DIR as its YPERSISTENCE option
// does (y-leveldb: every update stored as it is applied), the reference's durable setup.
//
// Usage: node node-server.mjs [PORT] [--persist DIR]   (or PORT in the environment; 0 = a
// free port). Listens on 127.0.0.1 only; the room is the URL path. Prints "listening on PORT"
// when ready.

import http from 'node:http'

const args = process.argv.slice(2)
const persistAt = args.indexOf('--persist')
if (persistAt >= 0) {
  if (!args[persistAt + 1]) {
    console.error('node-server.mjs: --persist needs a directory')
    process.exit(2)
  }
  // Read by @y/websocket-server when its module loads, so set before the import below.
  process.env.YPERSISTENCE = args.splice(persistAt, 2)[1]
} else if (process.env.YPERSISTENCE) {
  console.error('node-server.mjs: unset YPERSISTENCE (use --persist DIR for the durable setup)')
  process.exit(2)
}
const { WebSocketServer } = await import('ws')
const { setupWSConnection } = await import('@y/websocket-server/utils')
const port = Number.parseInt(args[0] ?? process.env.PORT ?? '0', 10)
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
