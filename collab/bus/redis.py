"""`RedisBus`: instances holding the same rooms exchange their messages through Redis pub/sub.

Each instance has one pub/sub connection for all its rooms (channel `{prefix}room:{room_id}`)
and its own probe channel (`{prefix}probe:{instance_id}`), plus a small pool that publishes.
Every message is an envelope (`collab.bus.envelope`) carrying the sender's instance id, a
random epoch per (instance, room) and a sequence number, so receivers drop their own messages
and notice lost ones.

Four tasks:
- the supervisor connects with capped exponential backoff and jitter; after each connection it
  subscribes every current room, then calls every room's resync handler (pub/sub kept nothing
  meanwhile), and runs the session until its reader or its prober ends it;
- the reader delivers messages and confirms subscriptions;
- the prober publishes a nonce on the probe channel every `probe_interval_s`; when it does not
  come back within `probe_timeout_s` the subscription is dead and the session is dropped;
- the publisher drains the bounded publish queue, in pipelined batches, while connected.
The reader and the prober belong to one session, one pub/sub connection's life
(`collab.bus.redis_session`); the supervisor and the publisher are `RedisBus`'s, here.

Redis errors never leave `RedisBus`: they end a session (the supervisor reconnects), fail a
probe, are retried by the publisher, or surface as `BusError` from `ping`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import ConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.maint_notifications import MaintNotificationsConfig

from collab.bus.base import BusStats, MessageHandler, ResyncHandler
from collab.bus.envelope import Outbox, SequenceTracker, decode_envelope
from collab.bus.envelope import encode_instance_id as encode_instance_id_bytes
from collab.bus.redis_log import redact_url
from collab.bus.redis_session import (
    _FAILURES,
    _Backoff,
    _Session,
    _SessionEnded,
    describe,
)
from collab.errors import BusError, ConfigError, ProtocolError
from collab.observability.throttled import RateLimitedLog
from collab.tasks import cancel_and_wait

log = logging.getLogger(__name__)

PUBLISH_BATCH_MAX_MESSAGES = 256
PUBLISH_MAX_CONNECTIONS = 4
_RESP_PROTOCOL = 2  # pub/sub messages as plain arrays, whatever the URL asks for
_TRANSIENT_FAILURES = (RedisConnectionError, RedisTimeoutError, OSError)


@dataclass
class _Room:
    room_id: str
    channel: bytes
    on_message: MessageHandler
    on_resync: ResyncHandler
    senders: SequenceTracker = field(default_factory=SequenceTracker)
    last_resync_at: float | None = None
    pending_resync: asyncio.TimerHandle | None = None


class RedisBus:
    """The `Bus` of a deployment of several instances sharing one Redis."""

    def __init__(
        self,
        url: str,
        *,
        instance_id: str | None = None,
        channel_prefix: str = "collab:",
        publish_queue_max_messages: int = 10_000,
        reconnect_min_s: float = 0.1,
        reconnect_max_s: float = 5.0,
        connect_timeout_s: float = 2.0,
        command_timeout_s: float = 2.0,
        probe_interval_s: float = 5.0,
        probe_timeout_s: float = 2.0,
        resync_min_interval_s: float = 1.0,
    ) -> None:
        self.instance_id = instance_id or uuid.uuid4().hex
        problems = []
        try:
            self._instance_id_bytes = encode_instance_id_bytes(self.instance_id)
        except ValueError as error:
            problems.append(str(error))
        durations = {
            "reconnect_min_s": reconnect_min_s,
            "reconnect_max_s": reconnect_max_s,
            "connect_timeout_s": connect_timeout_s,
            "command_timeout_s": command_timeout_s,
            "probe_interval_s": probe_interval_s,
            "probe_timeout_s": probe_timeout_s,
        }
        problems += [f"{name} must be positive" for name, v in durations.items() if not v > 0]
        if resync_min_interval_s < 0:
            problems.append("resync_min_interval_s must not be negative")
        if publish_queue_max_messages < 1:
            problems.append("publish_queue_max_messages must be at least 1")
        client_name = "collab-bus-" + re.sub(r"[^A-Za-z0-9._:-]", "_", self.instance_id)[:64]
        options: dict[str, Any] = {
            "socket_connect_timeout": connect_timeout_s,
            "socket_timeout": command_timeout_s,
            "retry": Retry(NoBackoff(), 0),  # this module retries, with backoff and resync
            "client_name": client_name,
            "protocol": _RESP_PROTOCOL,
            "maint_notifications_config": MaintNotificationsConfig(enabled=False),
        }
        try:
            self._pubsub_pool = ConnectionPool.from_url(url, **options)
            self._publish_pool = ConnectionPool.from_url(
                url, max_connections=PUBLISH_MAX_CONNECTIONS, **options
            )
        except ValueError as error:
            problems.append(f"invalid Redis URL {redact_url(url)}: {error}")
        if problems:
            raise ConfigError(problems)
        for pool in (self._pubsub_pool, self._publish_pool):
            # Whatever the URL's query says: replies are parsed here as RESP2 bytes.
            pool.connection_kwargs.update(protocol=_RESP_PROTOCOL, decode_responses=False)
        self._client = Redis(connection_pool=self._publish_pool)
        self._safe_url = redact_url(url)
        self._prefix = channel_prefix
        self._probe_channel = f"{channel_prefix}probe:{self.instance_id}".encode()
        self._reconnect_min_s = reconnect_min_s
        self._reconnect_max_s = reconnect_max_s
        self._connect_timeout_s = connect_timeout_s
        self._command_timeout_s = command_timeout_s
        self._probe_interval_s = probe_interval_s
        self._probe_timeout_s = probe_timeout_s
        self._resync_min_interval_s = resync_min_interval_s

        self._rooms: dict[str, _Room] = {}
        self._rooms_by_channel: dict[bytes, _Room] = {}
        self._outbox = Outbox(self._instance_id_bytes, publish_queue_max_messages)
        self._queue_nonempty = asyncio.Event()
        self._ready = asyncio.Event()
        self._session: _Session | None = None
        self._probe_failure: str | None = None
        self._outage_logged = False
        self._started = False
        self._closed = False
        self._tasks: list[asyncio.Task[None]] = []
        self._malformed_log = RateLimitedLog(log)
        self._queue_full_log = RateLimitedLog(log)
        self._publish_error_log = RateLimitedLog(log)

        self.published = 0
        self.received = 0
        self.dropped_publishes = 0
        self.gaps_detected = 0
        self.resyncs_requested = 0
        self.reconnects = 0
        self.malformed_dropped = 0
        self.probe_failures = 0
        self.connect_failures = 0

    def __repr__(self) -> str:
        return f"RedisBus({self._safe_url!r}, instance_id={self.instance_id!r})"

    # -- the Bus interface ---------------------------------------------------------------------

    async def start(self) -> None:
        if self._started or self._closed:
            return
        self._started = True
        self._tasks = [
            asyncio.create_task(self._supervise(), name=f"bus-{self.instance_id}-supervisor"),
            asyncio.create_task(self._publish_forever(), name=f"bus-{self.instance_id}-publisher"),
        ]
        for task in self._tasks:
            task.add_done_callback(self._log_crash)

    def _log_crash(self, task: asyncio.Task[None]) -> None:
        # Both tasks run until cancelled: an exception here is a bug, and the bus is now down.
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("bus %s: task %s crashed", self.instance_id, task.get_name(), exc_info=error)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await cancel_and_wait(self._tasks)
        self._tasks = []
        for room in self._rooms.values():
            if room.pending_resync is not None:
                room.pending_resync.cancel()
        self._rooms.clear()
        self._rooms_by_channel.clear()
        self._outbox.clear()
        try:
            await self._client.aclose()
            await self._publish_pool.aclose()
            await self._pubsub_pool.aclose()
        except _FAILURES as error:
            log.debug("bus %s: error while closing Redis connections: %s", self.instance_id, error)

    async def subscribe(
        self, room_id: str, on_message: MessageHandler, on_resync: ResyncHandler
    ) -> None:
        self._forget_room(room_id)
        channel = self._room_channel(room_id)
        room = _Room(room_id, channel, on_message, on_resync)
        self._rooms[room_id] = room
        self._rooms_by_channel[channel] = room
        self._outbox.open_room(room_id)
        session = self._session
        # Not ready: the supervisor subscribes every room of `_rooms` before it declares the
        # session ready, then resyncs them.
        if session is None or not session.ready:
            return
        try:
            confirmed = await session.subscribe([channel], self._command_timeout_s)
        except (_SessionEnded, *_FAILURES) as error:
            session.end(f"subscribing {room_id} failed: {describe(error)}")
            return
        if not confirmed:
            session.end(f"subscribing {room_id} was not confirmed in time")

    async def unsubscribe(self, room_id: str) -> None:
        self._outbox.close_room(room_id)
        room = self._forget_room(room_id)
        session = self._session
        # Messages that still arrive are dropped: the room is forgotten already. A session not
        # connected yet will not subscribe it.
        if room is None or session is None or not session.connection.is_connected:
            return
        session.dropped(room.channel)
        try:
            await session.send("UNSUBSCRIBE", room.channel)
        except _SessionEnded:
            return
        except _FAILURES as error:
            session.end(f"unsubscribing {room_id} failed: {describe(error)}")

    def publish(self, room_id: str, frame: bytes) -> None:
        if not self._started or self._closed:
            raise BusError("the Redis bus is closed" if self._closed else "the bus is not started")
        dropped = self._outbox.push(room_id, frame)
        if dropped:
            self.dropped_publishes += dropped
            self._queue_full_log.warning(
                "bus %s: publish queue full (%d messages), dropping the oldest",
                self.instance_id,
                len(self._outbox),
            )
        self._queue_nonempty.set()

    def stats(self) -> BusStats:
        return BusStats(
            published=self.published,
            received=self.received,
            dropped_publishes=self.dropped_publishes,
            gaps_detected=self.gaps_detected,
            reconnects=self.reconnects,
        )

    async def ping(self) -> None:
        if not self._started or self._closed:
            raise BusError("the Redis bus is closed" if self._closed else "the bus is not started")
        session = self._session
        if session is None or not session.ready:
            raise BusError(f"the bus is not connected to Redis at {self._safe_url}")
        if self._probe_failure is not None:
            raise BusError(f"the bus liveness probe failed: {self._probe_failure}")

    # -- rooms and resyncs ---------------------------------------------------------------------

    def _forget_room(self, room_id: str) -> _Room | None:
        room = self._rooms.pop(room_id, None)
        if room is not None:
            self._rooms_by_channel.pop(room.channel, None)
            if room.pending_resync is not None:
                room.pending_resync.cancel()
        return room

    def _request_resync(self, room: _Room) -> None:
        """Call the room's resync handler now, or once at the end of the current interval if
        it was called less than `resync_min_interval_s` ago (a storm of gaps costs two)."""
        if room.pending_resync is not None:
            return
        loop = asyncio.get_running_loop()
        due = (room.last_resync_at or -math.inf) + self._resync_min_interval_s
        if loop.time() >= due:
            self._resync(room)
        else:
            room.pending_resync = loop.call_at(due, self._resync, room)

    def _resync(self, room: _Room) -> None:
        room.pending_resync = None
        if self._rooms.get(room.room_id) is not room:
            return
        room.last_resync_at = asyncio.get_running_loop().time()
        self.resyncs_requested += 1
        try:
            room.on_resync(room.room_id)
        except Exception:
            # A bug in one room's handler: logged, and the bus goes on serving the others.
            log.exception("bus %s: room %s: resync handler failed", self.instance_id, room.room_id)

    # -- the pub/sub session -------------------------------------------------------------------

    async def _supervise(self) -> None:
        backoff = _Backoff(self._reconnect_min_s, self._reconnect_max_s)
        connected_before = False
        while True:
            try:
                session = await self._open_session()
            except (_SessionEnded, *_FAILURES) as error:
                self.connect_failures += 1
                if not self._outage_logged:
                    self._outage_logged = True
                    log.warning(
                        "bus %s: cannot reach Redis at %s (%s); retrying in the background",
                        self.instance_id,
                        self._safe_url,
                        describe(error),
                    )
                await asyncio.sleep(backoff.next_delay_s())
                continue
            if connected_before:
                self.reconnects += 1
            log.info(
                "bus %s: %s Redis at %s",
                self.instance_id,
                "reconnected to" if self._outage_logged else "connected to",
                self._safe_url,
            )
            self._outage_logged = False
            connected_before = True
            for room in list(self._rooms.values()):
                self._request_resync(room)
            reason = await self._run_session(session)
            self._outage_logged = True
            log.warning(
                "bus %s: lost Redis at %s (%s); reconnecting",
                self.instance_id,
                self._safe_url,
                reason,
            )
            if session.probe_succeeded:
                backoff.reset()
            # Even after a healthy session: a server that accepts and drops at once is no loop.
            await asyncio.sleep(backoff.next_delay_s())

    async def _open_session(self) -> _Session:
        """Connect, subscribe the probe channel and every room, and return the ready session.
        Raises `_SessionEnded` or a Redis or OS error."""
        pool = self._pubsub_pool
        session = _Session(
            pool.connection_class(**pool.connection_kwargs),
            instance_id=self.instance_id,
            probe_channel=self._probe_channel,
            on_message=self._on_message,
            on_probe=self._on_probe,
        )
        self._session = session
        try:
            await session.connect(self._connect_timeout_s)
            for room in self._rooms.values():
                room.senders.clear()
            await session.subscribe_all(
                lambda: [self._probe_channel, *self._rooms_by_channel], self._command_timeout_s
            )
            self._ready.set()
            return session
        except BaseException as error:
            await self._end_session(session, f"connecting failed: {describe(error)}")
            raise

    async def _run_session(self, session: _Session) -> str:
        """Run the probe until the session ends; return why it ended."""
        try:
            await session.run(
                self._client,
                probe_interval_s=self._probe_interval_s,
                probe_timeout_s=self._probe_timeout_s,
            )
        finally:
            await self._end_session(session, "the bus is closing")
        return session.end_reason or "unknown"

    async def _end_session(self, session: _Session, reason: str) -> None:
        session.end(reason)
        if self._session is session:
            self._session = None
            self._ready.clear()
        await session.close(self._command_timeout_s)

    def _on_message(self, channel: bytes, payload: bytes) -> None:
        room = self._rooms_by_channel.get(channel)
        if room is None:
            return  # unsubscribed a moment ago
        try:
            envelope = decode_envelope(payload)
        except ProtocolError as error:
            self.malformed_dropped += 1
            self._malformed_log.warning(
                "bus %s: room %s: dropped a malformed bus message: %s",
                self.instance_id,
                room.room_id,
                error,
            )
            return
        if envelope.instance_id == self.instance_id:
            return
        gap = room.senders.observe(envelope.instance_id, envelope.epoch, envelope.seq)
        self.received += 1
        try:
            room.on_message(room.room_id, envelope.frame)
        except Exception:
            # A bug in one room's handler: logged, and the reader, which serves every room,
            # goes on (the gap check below still runs for this one).
            log.exception("bus %s: room %s: message handler failed", self.instance_id, room.room_id)
        if gap:
            self.gaps_detected += 1
            log.debug(
                "bus %s: room %s: gap in the messages of %s",
                self.instance_id,
                room.room_id,
                envelope.instance_id,
            )
            self._request_resync(room)

    def _on_probe(self, failure: str | None) -> None:
        if failure is not None:
            self.probe_failures += 1
        self._probe_failure = failure

    # -- publishing ----------------------------------------------------------------------------

    async def _publish_forever(self) -> None:
        backoff = _Backoff(self._reconnect_min_s, self._reconnect_max_s)
        task = asyncio.current_task()
        while True:
            # redis-py may finish a command despite a cancellation; honour it here.
            if task is not None and task.cancelling():
                raise asyncio.CancelledError
            if not self._outbox:
                self._queue_nonempty.clear()
                await self._queue_nonempty.wait()
            await self._ready.wait()
            batch = self._outbox.take(PUBLISH_BATCH_MAX_MESSAGES)
            if not batch:
                continue
            try:
                async with self._client.pipeline(transaction=False) as pipe:
                    for room_id, envelope in batch:
                        pipe.publish(self._room_channel(room_id), envelope)
                    await pipe.execute()
            except _TRANSIENT_FAILURES as error:
                # Kept, in order: published once Redis answers again (a batch Redis partly
                # took is repeated; receivers see the repeat as a gap and resync).
                log.debug(
                    "bus %s: publishing failed, will retry: %s", self.instance_id, describe(error)
                )
                self.dropped_publishes += self._outbox.put_back(batch)
                await asyncio.sleep(backoff.next_delay_s())
                continue
            except RedisError as error:
                self.dropped_publishes += len(batch)
                self._publish_error_log.warning(
                    "bus %s: Redis refused %d messages, dropped: %s",
                    self.instance_id,
                    len(batch),
                    error,
                )
                continue
            backoff.reset()
            self.published += len(batch)

    def _room_channel(self, room_id: str) -> bytes:
        return f"{self._prefix}room:{room_id}".encode()
