"""The socket layer under both WebSocket endpoints: the handshake and the socket taken over from
aiohttp, liveness of half-open connections, token sessions, per-connection message rates."""
