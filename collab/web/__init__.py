"""The aiohttp layer, read from the top: `app.create_app` wires everything; `api/` (REST
resources) and `ws/` (the two WebSocket endpoints) serve requests through the middleware and
request helpers of `http/`, over the socket layer of `sockets/`; `keys` holds the typed
application state all of them read."""
