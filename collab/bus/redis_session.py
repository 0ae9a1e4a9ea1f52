"""One pub/sub connection of `RedisBus`, from connecting to closing, and the tasks that live
with it.

A `_Session` connects, subscribes channels (waiting for Redis to confirm each), reads (probe
echoes for itself, every other message for the bus) and probes: it publishes a nonce on the
instance's probe channel and ends when the nonce does not come back in time. It ends once, for
one reason, and is never reused: the bus opens a new one, paced by `_Backoff`.

Private to `collab.bus`: only `collab.bus.redis` uses it.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import random
import secrets
from collections.abc import Callable

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import RedisError

from collab.errors import BusError

log = logging.getLogger(__name__)

SUBSCRIBE_BATCH_MAX_CHANNELS = 256
_FAILURES = (RedisError, OSError)  # OSError covers the builtin TimeoutError


def describe(error: BaseException) -> str:
    """The error's class and message, for logs (redis-py messages hold no credentials)."""
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


class _Backoff:
    """Capped exponential delays with jitter: each is drawn from [delay / 2, delay]."""

    def __init__(self, min_s: float, max_s: float) -> None:
        self._min_s = min_s
        self._max_s = max_s
        self._attempts = 0

    def next_delay_s(self) -> float:
        delay = min(self._max_s, self._min_s * 2 ** min(self._attempts, 32))
        self._attempts += 1
        return random.uniform(delay / 2, delay)

    def reset(self) -> None:
        self._attempts = 0


class _SessionEnded(BusError):
    """The pub/sub session is over (or was never usable); the message says why.

    Private to `collab.bus`, but raised here and caught in `collab.bus.redis`, so it is in the
    error tree all the same: were it ever to leave the bus, it would be a `BusError`."""


class _Session:
    """One pub/sub connection and what is waiting on it. Ended once, for one reason.

    `on_message(channel, payload)` receives every message but the probe's; `on_probe` is
    called with None after each probe that came back, and with the reason before the session
    ends for a probe that did not."""

    def __init__(
        self,
        connection: AbstractConnection,
        *,
        instance_id: str,
        probe_channel: bytes,
        on_message: Callable[[bytes, bytes], None],
        on_probe: Callable[[str | None], None],
    ) -> None:
        self.connection = connection
        self.ready = False
        self.end_reason: str | None = None
        self.probe_succeeded = False
        self.confirmations: dict[bytes, collections.deque[asyncio.Future[bool]]] = {}
        self.probe_nonce = b""
        self.probe_echo: asyncio.Future[None] | None = None
        self.reader: asyncio.Task[None] | None = None
        self.prober: asyncio.Task[None] | None = None
        # Channels unsubscribed while `subscribe_all` runs: not counted as subscribed by it.
        self._dropped: set[bytes] = set()
        self._instance_id = instance_id
        self._probe_channel = probe_channel
        self._on_message = on_message
        self._on_probe = on_probe

    def end(self, reason: str) -> None:
        if self.end_reason is None:
            self.end_reason = reason
        self.ready = False
        for waiters in self.confirmations.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(False)
        self.confirmations.clear()
        current = asyncio.current_task()
        for task in (self.reader, self.prober):
            if task is not None and task is not current:
                task.cancel()

    async def send(self, *args: bytes | str) -> None:
        """Raises `_SessionEnded`, or a Redis or OS error (after which the session must end)."""
        # redis-py reconnects a disconnected connection on send: never let it do so silently.
        if self.end_reason is not None or not self.connection.is_connected:
            raise _SessionEnded(self.end_reason or "the pub/sub connection is closed")
        await self.connection.send_command(*args)

    async def connect(self, timeout_s: float) -> None:
        """Connect within `timeout_s`, then start the reader. Raises a Redis or OS error."""
        async with asyncio.timeout(timeout_s):
            await self.connection.connect()  # type: ignore[no-untyped-call]
        self.reader = asyncio.create_task(self._read(), name=f"bus-{self._instance_id}-reader")

    async def subscribe(self, channels: list[bytes], timeout_s: float) -> bool:
        """Subscribe; return whether Redis confirmed every channel within `timeout_s`.
        Raises `_SessionEnded` or a Redis or OS error."""
        loop = asyncio.get_running_loop()
        waiters: list[asyncio.Future[bool]] = []
        for start in range(0, len(channels), SUBSCRIBE_BATCH_MAX_CHANNELS):
            batch = channels[start : start + SUBSCRIBE_BATCH_MAX_CHANNELS]
            for channel in batch:
                waiter: asyncio.Future[bool] = loop.create_future()
                self.confirmations.setdefault(channel, collections.deque()).append(waiter)
                waiters.append(waiter)
            await self.send("SUBSCRIBE", *batch)
        try:
            async with asyncio.timeout(timeout_s):
                results = await asyncio.gather(*waiters)
        except TimeoutError:
            return False
        return all(results)

    def dropped(self, channel: bytes) -> None:
        """`channel` was unsubscribed on this connection (a room unloaded); remembered only
        while `subscribe_all` runs."""
        if not self.ready:
            self._dropped.add(channel)

    async def subscribe_all(self, channels: Callable[[], list[bytes]], timeout_s: float) -> None:
        """Subscribe `channels()`, then again whatever it returns that is new, until nothing
        is; then mark the session ready. A channel unsubscribed meanwhile (a room unloaded,
        perhaps loaded again) is no longer counted subscribed. Raises `_SessionEnded` or a
        Redis or OS error."""
        subscribed: set[bytes] = set()
        pending = channels()
        while pending:
            self._dropped.clear()
            if not await self.subscribe(pending, timeout_s):
                raise _SessionEnded(self.end_reason or "subscriptions not confirmed in time")
            subscribed.update(pending)
            subscribed -= self._dropped
            # Rooms the bus subscribed meanwhile; no await between the last check and `ready`.
            pending = [c for c in channels() if c not in subscribed]
        self._dropped.clear()
        self.ready = True

    async def run(self, client: Redis, *, probe_interval_s: float, probe_timeout_s: float) -> None:
        """Start the prober (publishing through `client`); return once the reader or the
        prober has stopped, which ends the session."""
        assert self.reader is not None
        self.prober = asyncio.create_task(
            self._probe(client, probe_interval_s, probe_timeout_s),
            name=f"bus-{self._instance_id}-prober",
        )
        await asyncio.wait({self.reader, self.prober}, return_when=asyncio.FIRST_COMPLETED)

    async def close(self, timeout_s: float) -> None:
        """Disconnect, then wait up to `timeout_s` for the reader and the prober to stop."""
        # Close the socket first: a read blocked in redis-py then fails at once, even where
        # redis-py's own clean-up would hold on to a cancellation.
        try:
            await self.connection.disconnect(nowait=True)
        except _FAILURES as error:
            log.debug("bus %s: closing a pub/sub connection: %s", self._instance_id, error)
        current = asyncio.current_task()
        tasks = [t for t in (self.reader, self.prober) if t is not None and t is not current]
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=timeout_s)
            for task in stuck:
                log.error("bus %s: task %s did not stop", self._instance_id, task.get_name())

    async def _read(self) -> None:
        try:
            while True:
                reply = await self.connection.read_response(timeout=math.inf)
                self._on_reply(reply)
        except _FAILURES as error:
            self.end(f"the pub/sub connection failed: {describe(error)}")

    def _on_reply(self, reply: object) -> None:
        if not (isinstance(reply, list) and len(reply) == 3):
            return  # a PONG or a reply of a kind this bus never asks for
        kind, channel, payload = reply
        if kind == b"message" and isinstance(channel, bytes) and isinstance(payload, bytes):
            if channel == self._probe_channel:
                echo = self.probe_echo
                if echo is not None and not echo.done() and payload == self.probe_nonce:
                    echo.set_result(None)
            else:
                self._on_message(channel, payload)
        elif kind == b"subscribe" and isinstance(channel, bytes):
            waiters = self.confirmations.get(channel)
            if waiters:
                waiter = waiters.popleft()
                if not waiters:
                    del self.confirmations[channel]
                if not waiter.done():
                    waiter.set_result(True)

    async def _probe(self, client: Redis, interval_s: float, timeout_s: float) -> None:
        """Round-trip a nonce through the probe channel every `interval_s`, at once first;
        end the session when one does not come back in time."""
        loop = asyncio.get_running_loop()
        while True:
            self.probe_nonce = secrets.token_bytes(16)
            self.probe_echo = loop.create_future()
            failure = None
            try:
                async with asyncio.timeout(timeout_s):
                    receivers = await client.publish(self._probe_channel, self.probe_nonce)
                    if receivers == 0:
                        failure = "Redis has no subscriber on the probe channel"
                    else:
                        await self.probe_echo
            except TimeoutError:
                failure = f"no probe came back within {timeout_s} s"
            except _FAILURES as error:
                failure = f"the probe could not be published: {describe(error)}"
            finally:
                self.probe_echo = None
            if failure is not None:
                self._on_probe(failure)
                self.end(failure)
                return
            self._on_probe(None)
            self.probe_succeeded = True
            await asyncio.sleep(interval_s)
