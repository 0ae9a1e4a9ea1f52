"""The attacks over WebSocket, run by the attacker process (`harness.attacker`).

Each attack's `prepare` builds its updates and opens its connections (outside the measured
window); `run` attacks until it is done or `deadline` (time.monotonic()) and returns what
happened to the attacker. Every loop is bounded in count and by the deadline.

- d1: two updates of N inserts at position 0 of one Y.Text, under client 1001 then 1002.
- d2: the 18-byte update whose item has clock 2**32 + 1 (yrs reads it as 1, yjs keeps it
  pending: server and clients disagree).
- d3: base, u2, u3, u1 of one author, answering the server's sync step 1 as a stock client.
- d4: four connections of one user re-sending a large update the document already holds
  (written by another user, in chunks).
- d9: ten connections of one user each sending its per-connection burst of small edits.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
from pycrdt import Doc, Map, Text

from harness import yframes
from harness.ysocket import EMPTY_UPDATE, YSocket

D1_CLIENTS = (1001, 1002)
D2_UPDATE = bytes.fromhex("010101818080801004010174016100")
D4_VALUE_CHARS = 60
D4_BYTES_PER_KEY = 75  # what one map entry of D4_VALUE_CHARS costs in the update, about
D4_SEED_KEYS = 1000  # entries per update of the author's (about 73 KiB)
D9_FIRST_CLIENT = 900_000
EMPTY_STATE_VECTOR = b"\x00"


def encode_state_vector(clocks: dict[int, int]) -> bytes:
    out = yframes.var_uint(len(clocks))
    for client, clock in clocks.items():
        out += yframes.var_uint(client) + yframes.var_uint(clock)
    return out


def ending_of(socket: YSocket, started: float) -> dict[str, Any]:
    """How a connection stood when the attack ended: closed by the server (code, reason,
    when) or still open."""
    if socket.ending is None:
        return {"open": True}
    return {
        "open": False,
        **socket.ending.as_dict(),
        "closed_after_s": socket.ending.at_s - started,
    }


class WsAttack:
    """An attack over `connections` WebSockets of one user in one room."""

    connections = 1

    def __init__(self, config: dict[str, Any], session: aiohttp.ClientSession) -> None:
        self.config = config
        self.session = session
        self.sockets: list[YSocket] = []

    async def connect(self, count: int) -> None:
        for _ in range(count):
            socket = await YSocket.open(self.session, self.config["url"], answer=self.answer)
            self.sockets.append(socket)

    def answer(self, _state_vector: bytes) -> bytes:
        """What the attacker sends back for the server's sync step 1: nothing it holds."""
        return EMPTY_UPDATE

    async def prepare(self) -> None:
        await self.connect(self.connections)

    async def run(self, deadline: float) -> dict[str, Any]:
        raise NotImplementedError

    async def close(self) -> None:
        await asyncio.gather(*(socket.close() for socket in self.sockets))


def remaining(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


class OneSocketAttack(WsAttack):
    """Send `frames`, then sync step 1 as a marker: its answer means the server handled
    them all; the attack ends at that answer, the server's close, or the deadline."""

    frames: list[bytes]
    marker_state: bytes = EMPTY_STATE_VECTOR

    async def run(self, deadline: float) -> dict[str, Any]:
        socket = self.sockets[0]
        started = time.monotonic()
        for frame in self.frames:
            await socket.send(frame)
        answered = await socket.ping(self.marker_state, remaining(deadline))
        result = ending_of(socket, started)
        result["handled_after_s"] = time.monotonic() - started if answered else None
        result["frame_bytes"] = [len(frame) for frame in self.frames]
        return result


class D1(OneSocketAttack):
    async def prepare(self) -> None:
        inserts = self.config["d1_inserts"]
        self.frames = [yframes.update_frame(at_zero(client, inserts)) for client in D1_CLIENTS]
        self.marker_state = encode_state_vector(dict.fromkeys(D1_CLIENTS, inserts))
        await super().prepare()


def at_zero(client_id: int, inserts: int) -> bytes:
    """`inserts` one-character inserts at position 0 of Y.Text "t", as one update."""
    doc: Doc[Any] = Doc(client_id=client_id)
    text = doc.get("t", type=Text)
    for _ in range(inserts):
        text.insert(0, "x")
    return doc.get_update()


class D2(OneSocketAttack):
    async def prepare(self) -> None:
        self.frames = [yframes.update_frame(D2_UPDATE)]
        await super().prepare()


class D3(WsAttack):
    """An author's base and three edits delivered base, u2, u3, u1; the author answers the
    server's sync step 1 with what it misses, as a stock client does."""

    async def prepare(self) -> None:
        base: Doc[Any] = Doc(client_id=1)
        base.get("t", type=Text).insert(0, "base")
        self.base = base.get_update()
        self.author: Doc[Any] = Doc(client_id=10)
        self.author.apply_update(self.base)
        text = self.author.get("t", type=Text)
        self.edits = []
        for position in (1, 2, 6):
            before = self.author.get_state()
            text.insert(position, "a")
            self.edits.append(self.author.get_update(before))
        self.expected_text = str(text)
        self.attacking = False
        await super().prepare()

    def answer(self, state_vector: bytes) -> bytes:
        # Before the attack the client holds nothing yet (it answers the join with nothing).
        return self.author.get_update(state_vector) if self.attacking else EMPTY_UPDATE

    async def run(self, deadline: float) -> dict[str, Any]:
        socket = self.sockets[0]
        started = time.monotonic()
        self.attacking = True
        for update in (self.base, self.edits[1], self.edits[2], self.edits[0]):
            await socket.send(yframes.update_frame(update))
        state = self.author.get_state()
        first = await socket.ping(state, remaining(deadline))
        # The answers to the server's step 1 went out after the marker: one more round.
        await asyncio.sleep(min(0.5, remaining(deadline)))
        second = await socket.ping(state, remaining(deadline))
        result = ending_of(socket, started)
        result |= {
            "handled_after_s": time.monotonic() - started if first and second else None,
            "server_step1_asks": socket.step1_received - 1,  # minus the one on join
            "expected_text": self.expected_text,
            "author_clocks": yframes.state_vector_clocks(state),
        }
        return result


class D4(WsAttack):
    """Another user (the document's author) writes a map of about `d4_mib` in chunks of
    `D4_SEED_KEYS` entries, each small enough to be taken whatever the server's apply
    limits; then four connections of the attacker re-send the whole map as one update,
    each paced at `d4_rate_per_s` (just under the per-connection byte rate) for
    `d4_resends`."""

    connections = 4

    async def prepare(self) -> None:
        keys = max(1, int(self.config["d4_mib"] * 2**20 / D4_BYTES_PER_KEY))
        doc: Doc[Any] = Doc(client_id=4444)
        entries = doc.get("m", type=Map)
        chunks = []
        for first in range(0, keys, D4_SEED_KEYS):
            before = doc.get_state()
            with doc.transaction():
                for index in range(first, min(keys, first + D4_SEED_KEYS)):
                    entries[f"k{index:07d}"] = "v" * D4_VALUE_CHARS
            chunks.append(doc.get_update(before))
        self.update = doc.get_update()
        self.state = doc.get_state()
        author = await YSocket.open(self.session, self.config["author_url"])
        try:
            for chunk in chunks:
                await author.send(yframes.update_frame(chunk))
                if not await author.ping(self.state, self.config["prepare_timeout_s"]):
                    raise RuntimeError(f"the author's update was not taken: {author.ending}")
        finally:
            await author.close()
        await self.connect(self.connections)

    async def run(self, deadline: float) -> dict[str, Any]:
        started = time.monotonic()
        frame = yframes.update_frame(self.update)
        sent = await asyncio.gather(
            *(self._resend(socket, frame, started, deadline) for socket in self.sockets)
        )
        handled = await asyncio.gather(
            *(socket.ping(self.state, remaining(deadline)) for socket in self.sockets)
        )
        return {
            "update_bytes": len(self.update),
            "sent": sent,
            "connections": [ending_of(socket, started) for socket in self.sockets],
            "handled_after_s": time.monotonic() - started if all(handled) else None,
        }

    async def _resend(self, socket: YSocket, frame: bytes, started: float, deadline: float) -> int:
        interval_s = 1 / self.config["d4_rate_per_s"]
        sent = 0
        while sent < self.config["d4_resends"] and time.monotonic() < deadline:
            if not await socket.send(frame):
                break
            sent += 1
            await asyncio.sleep(
                min(remaining(deadline), started + sent * interval_s - time.monotonic())
            )
        return sent


class D9(WsAttack):
    """Ten connections of one user, each sending its burst of one-character edits at once."""

    async def prepare(self) -> None:
        self.connections = self.config["d9_sockets"]
        self.bursts = []
        for index in range(self.connections):
            doc: Doc[Any] = Doc(client_id=D9_FIRST_CLIENT + index)
            text = doc.get("t", type=Text)
            burst = []
            for _ in range(self.config["d9_messages"]):
                before = doc.get_state()
                text.insert(len(text), "z")
                burst.append(yframes.update_frame(doc.get_update(before)))
            self.bursts.append(burst)
        await super().prepare()

    async def run(self, deadline: float) -> dict[str, Any]:
        started = time.monotonic()
        sent = await asyncio.gather(
            *(
                self._burst(socket, burst, deadline)
                for socket, burst in zip(self.sockets, self.bursts, strict=True)
            )
        )
        await asyncio.gather(
            *(socket.ping(EMPTY_STATE_VECTOR, remaining(deadline)) for socket in self.sockets)
        )
        return {
            "sent": sent,
            "connections": [ending_of(socket, started) for socket in self.sockets],
            "done_after_s": time.monotonic() - started,
        }

    async def _burst(self, socket: YSocket, burst: list[bytes], deadline: float) -> int:
        sent = 0
        for frame in burst:
            if time.monotonic() >= deadline or not await socket.send(frame):
                break
            sent += 1
        return sent
