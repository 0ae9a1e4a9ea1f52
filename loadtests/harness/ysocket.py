"""One y-websocket connection (aiohttp client) for the attack benchmark's probe and attacker.

It answers the server's sync step 1 as a stock client does (`answer(state_vector)` gives
the update to send back), hands every update and step 2 to `on_update`, and records how the
connection ended: the server's close code and reason, or 1006 when it just went away.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from harness import yframes

EMPTY_UPDATE = b"\x00\x00"
EMPTY_STATE_VECTOR = b"\x00"
ABNORMAL_CLOSURE = 1006
MAX_MESSAGE_BYTES = 64 * 2**20
OPEN_TIMEOUT_S = 30.0
CLOSED_TYPES = (aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)


@dataclass(frozen=True)
class Ending:
    code: int | None
    reason: str
    at_s: float
    """time.monotonic() when the close was seen."""

    def as_dict(self) -> dict[str, Any]:
        return {"close_code": self.code, "close_reason": self.reason}


def _empty_answer(_state_vector: bytes) -> bytes:
    return EMPTY_UPDATE


class YSocket:
    """Open with `YSocket.open`; `ending` is None while the server has not closed it."""

    def __init__(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        answer: Callable[[bytes], bytes],
        on_update: Callable[[bytes], None] | None,
    ) -> None:
        self.ws = ws
        self.answer = answer
        self.on_update = on_update
        self.ending: Ending | None = None
        self.step2_received = 0
        self.step1_received = 0
        self.frames_received = 0
        self._progress = asyncio.Event()
        self._replies: set[asyncio.Task[bool]] = set()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(
        cls,
        session: aiohttp.ClientSession,
        url: str,
        *,
        answer: Callable[[bytes], bytes] = _empty_answer,
        on_update: Callable[[bytes], None] | None = None,
        state_vector: bytes = EMPTY_STATE_VECTOR,
        timeout_s: float = OPEN_TIMEOUT_S,
    ) -> YSocket:
        """Connect, send sync step 1 with `state_vector` as a stock client does on open, and
        wait for the server's sync step 2. Raises `aiohttp` errors (`WSServerHandshakeError`
        carries a refused upgrade's status) and `TimeoutError`."""
        async with asyncio.timeout(timeout_s):
            ws = await session.ws_connect(url, max_msg_size=MAX_MESSAGE_BYTES, autoping=True)
            socket = cls(ws, answer, on_update)
            await socket.send(yframes.step1(state_vector))
            await socket.wait_for(lambda: socket.step2_received > 0 or socket.closed)
        return socket

    @property
    def closed(self) -> bool:
        return self.ending is not None

    async def _read(self) -> None:
        code: int | None = None
        reason = ""
        try:
            while True:
                message = await self.ws.receive()
                if message.type == aiohttp.WSMsgType.BINARY:
                    self.frames_received += 1
                    self._handle(message.data)
                    self._progress.set()
                elif message.type == aiohttp.WSMsgType.CLOSE:
                    code, reason = message.data, str(message.extra or "")
                    break
                elif message.type in CLOSED_TYPES:
                    exception = self.ws.exception()
                    if exception is not None:
                        reason = f"{type(exception).__name__}: {exception}"
                    break
        except (aiohttp.ClientError, ConnectionError) as error:
            reason = f"{type(error).__name__}: {error}"
        finally:
            if code is None:
                code = self.ws.close_code
            self.ending = Ending(code if code is not None else ABNORMAL_CLOSURE, reason, _now())
            self._progress.set()

    def _handle(self, frame: bytes) -> None:
        sync = yframes.parse_sync(frame)
        if sync is None:
            return
        if sync.kind == yframes.SYNC_STEP1:
            self.step1_received += 1
            reply = yframes.step2(self.answer(sync.payload))
            # The reader must not wait on the writer; the set keeps the task alive.
            task = asyncio.get_running_loop().create_task(self.send(reply))
            self._replies.add(task)
            task.add_done_callback(self._replies.discard)
            return
        if sync.kind == yframes.SYNC_STEP2:
            self.step2_received += 1
        if self.on_update is not None:
            self.on_update(sync.payload)

    async def send(self, frame: bytes) -> bool:
        """Send one binary frame; False when the connection is already gone."""
        if self.closed or self.ws.closed:
            return False
        try:
            await self.ws.send_bytes(frame)
        except (aiohttp.ClientError, ConnectionError, RuntimeError):
            return False
        return True

    async def wait_for(self, predicate: Callable[[], bool], timeout_s: float | None = None) -> bool:
        """Wait until `predicate()` holds (checked after every frame and at the close);
        returns whether it did within `timeout_s`."""
        try:
            async with asyncio.timeout(timeout_s):
                while not predicate():
                    self._progress.clear()
                    await self._progress.wait()
        except TimeoutError:
            return predicate()
        return True

    async def ping(self, state_vector: bytes, timeout_s: float) -> bool:
        """Send sync step 1 and wait for the server's step 2: every message sent before it has
        been handled. False when the connection closed or the answer did not come in time."""
        seen = self.step2_received
        if not await self.send(yframes.step1(state_vector)):
            return False
        await self.wait_for(lambda: self.step2_received > seen or self.closed, timeout_s)
        return self.step2_received > seen

    async def wait_closed(self, timeout_s: float) -> bool:
        return await self.wait_for(lambda: self.closed, timeout_s)

    async def close(self) -> None:
        with contextlib.suppress(aiohttp.ClientError, ConnectionError, RuntimeError):
            await asyncio.wait_for(self.ws.close(), 5)
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


def _now() -> float:
    return time.monotonic()
