"""Half-open WebSocket connections found with one timer for all of them; the register of
every open WebSocket of the server.

A client whose network path died without a FIN (a laptop closed, a NAT entry dropped) keeps its
socket, presence and cursor forever unless the server notices. aiohttp's own heartbeat keeps a
timer per connection and reschedules it after every message received, a callback per message
on the busiest path of the server. Here each connection only counts its reads, and one
sweep every half interval looks at all of them: a connection silent for a whole interval gets
a ping, and one still silent half an interval later is dropped (its TCP connection aborted, as
aiohttp's heartbeat does; the socket's cleanup then runs). The guarantee is
aiohttp's (a ping after `interval_s` of silence, a drop `interval_s / 2` after it) for two
integers per connection and no work per message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

from collab.protocol.close_codes import CloseCode
from collab.protocol.websocket import OPCODE_PING, encode_frame

log = logging.getLogger(__name__)

PING_FRAME = encode_frame(b"", OPCODE_PING)


class Watched:
    """One connection under watch; its socket adds 1 to `messages` for every read, so a
    large message still arriving counts as life.

    `ServerWebSocket` is one, so a watched connection costs no object of its own: its
    transport and name are the socket's. `kind` and `name` make up the label of its log
    lines ("conn 1a2b3c"), kept apart so no connection holds a string of its own for it.
    """

    __slots__ = (
        "_checked",
        "_kind",
        "_name",
        "_pinged",
        "_silent_sweeps",
        "_transport",
        "messages",
    )

    def __init__(self, transport: asyncio.Transport, kind: str, name: str) -> None:
        self._transport = transport
        self._kind = kind
        self._name = name
        self.messages = 0
        self._checked = 0
        self._silent_sweeps = 0
        self._pinged = False

    @property
    def label(self) -> str:
        """How the connection's log lines name it ("conn 1a2b3c"), built when one is logged."""
        return f"{self._kind} {self._name}"

    def shut_down(self, code: CloseCode, reason: str) -> Awaitable[None] | None:
        """Start closing this connection for a server shutdown; return what to wait for
        until it is gone and cleaned up, if anything. A bare watched transport has no
        close handshake: it is left to the server's own close."""
        return None

    def _sweep(self, silent_sweeps_before_ping: int) -> None:
        transport = self._transport
        if transport.is_closing():
            return
        if self.messages != self._checked:
            self._checked = self.messages
            self._silent_sweeps = 0
            self._pinged = False
            return
        self._silent_sweeps += 1
        if self._pinged:
            log.info("%s: no answer to a ping; dropping the connection", self.label)
            transport.abort()
        elif self._silent_sweeps >= silent_sweeps_before_ping:
            # A control frame, written whole between two whole frames like every write here.
            transport.write(PING_FRAME)
            self._pinged = True


class Liveness:
    """The connections of one server, swept every `interval_s / 2` (0: never, counting only)."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._watched: set[Watched] = set()

    def watch(self, watched: Watched) -> None:
        self._watched.add(watched)

    def unwatch(self, watched: Watched) -> None:
        self._watched.discard(watched)

    def sweep(self) -> None:
        for watched in list(self._watched):
            # Two sweeps without a message: silent for at least a whole interval.
            watched._sweep(silent_sweeps_before_ping=2)

    async def close_all(self, code: CloseCode, reason: str) -> None:
        """Close every watched WebSocket with `code` and wait until each is gone and its
        endpoint cleaned up (on shutdown: aiohttp no longer knows these sockets)."""
        closing = [watched.shut_down(code, reason) for watched in list(self._watched)]
        waits = [wait for wait in closing if wait is not None]
        await asyncio.gather(*waits, return_exceptions=True)

    async def run(self) -> None:
        if self.interval_s <= 0:
            return
        while True:
            await asyncio.sleep(self.interval_s / 2)
            self.sweep()
