"""`RedisPresenceStore`: the presence of every instance, shared through Redis.

Per (workspace, instance), one hash `{prefix}presence:{workspace_id}:{instance_id}` maps each
user id to the JSON of the instance's entry (with `updated`). A write replaces the hash and
renews its expiry in one MULTI, so an instance that stops writing (it died) vanishes `ttl_s`
after its last write. Per workspace, the set `{prefix}presence-instances:{workspace_id}` names
the instances that wrote there, so a read needs no KEYS or SCAN: it reads each of their hashes
and removes from the set the instances whose hash has expired (atomically, in a script, so an
instance writing at that moment is not removed). The set expires too, `ttl_s` after the last
write of any instance.

Redis and OS errors become `BusError`; entries that do not parse are skipped and logged (at
most once per `LOG_INTERVAL_S`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Collection, Mapping
from typing import Any

import orjson
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.maint_notifications import MaintNotificationsConfig

from collab.bus.redis_log import redact_url
from collab.errors import BusError, ConfigError
from collab.presence.base import PresenceEntry
from collab.presence.snapshots import merge_instances

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 8
LOG_INTERVAL_S = 10.0
KEEP_ALIVE_COMMANDS = 3
"""Commands `_keep_alive` queues per workspace."""
_RESP_PROTOCOL = 2
_FAILURES = (RedisError, OSError)  # OSError covers the builtin TimeoutError

# KEYS[1] is the instance set, KEYS[i + 1] the hash of instance ARGV[i]: remove the instances
# whose hash is (still) gone.
_FORGET_EXPIRED_SCRIPT = """
local removed = 0
for i, instance_id in ipairs(ARGV) do
  if redis.call('EXISTS', KEYS[i + 1]) == 0 then
    removed = removed + redis.call('SREM', KEYS[1], instance_id)
  end
end
return removed
"""


class RedisPresenceStore:
    """The `PresenceStore` of a deployment of several instances sharing one Redis."""

    def __init__(
        self,
        url: str,
        *,
        ttl_s: float,
        key_prefix: str = "collab:",
        connect_timeout_s: float = 2.0,
        command_timeout_s: float = 2.0,
    ) -> None:
        self._safe_url = redact_url(url)
        durations = {
            "ttl_s": ttl_s,
            "connect_timeout_s": connect_timeout_s,
            "command_timeout_s": command_timeout_s,
        }
        problems = [f"{name} must be positive" for name, v in durations.items() if not v > 0]
        try:
            self._pool = BlockingConnectionPool.from_url(
                url,
                max_connections=MAX_CONNECTIONS,
                timeout=command_timeout_s,
                socket_connect_timeout=connect_timeout_s,
                socket_timeout=command_timeout_s,
                # One immediate retry: a pooled connection may be stale after Redis restarted.
                # Anything longer is the caller's to retry (the next heartbeat).
                retry=Retry(NoBackoff(), 1),
                client_name="collab-presence",
                maint_notifications_config=MaintNotificationsConfig(enabled=False),
            )
        except ValueError as error:
            problems.append(f"invalid Redis URL {self._safe_url}: {error}")
        if problems:
            raise ConfigError(problems)
        # Whatever the URL's query says: replies are parsed here as RESP2 bytes.
        self._pool.connection_kwargs.update(protocol=_RESP_PROTOCOL, decode_responses=False)
        self._client = Redis(connection_pool=self._pool)
        self._forget_expired = self._client.register_script(_FORGET_EXPIRED_SCRIPT)
        self._ttl_ms = max(1, math.ceil(ttl_s * 1000))
        self._prefix = key_prefix.encode()
        self._closed = False
        self._malformed_next_log_at = 0.0
        self._malformed_suppressed = 0
        self.malformed_skipped = 0

    def __repr__(self) -> str:
        return f"RedisPresenceStore({self._safe_url!r})"

    async def write(
        self, instance_id: str, workspace_id: str, entries: Mapping[str, PresenceEntry]
    ) -> None:
        self._check_open()
        key = self._entries_key(workspace_id, instance_id.encode())
        instances_key = self._instances_key(workspace_id)
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.delete(key)
                if entries:
                    pipe.hset(key, mapping={u: _encode(e) for u, e in entries.items()})
                    self._keep_alive(pipe, key, instances_key, instance_id)
                else:
                    pipe.srem(instances_key, instance_id)
                await pipe.execute()
        except _FAILURES as error:
            raise self._error(
                f"writing the presence of workspace {workspace_id!r}", error
            ) from None

    async def renew(
        self, instance_id: str, written: Mapping[str, Mapping[str, PresenceEntry]]
    ) -> None:
        self._check_open()
        if not written:
            return
        workspace_ids = list(written)
        try:
            # Three small commands per workspace, all in one round trip, instead of
            # re-encoding and resending every entry.
            async with self._client.pipeline(transaction=True) as pipe:
                for workspace_id in workspace_ids:
                    self._keep_alive(
                        pipe,
                        self._entries_key(workspace_id, instance_id.encode()),
                        self._instances_key(workspace_id),
                        instance_id,
                    )
                replies = await pipe.execute()
        except _FAILURES as error:
            raise self._error(
                f"renewing the presence of {len(workspace_ids)} workspace(s)", error
            ) from None
        # Each workspace's first reply is its hash's PEXPIRE: 0 when the hash is gone
        # (expired, or Redis lost it in a restart without persistence): write it again.
        for workspace_id, renewed in zip(
            workspace_ids, replies[::KEEP_ALIVE_COMMANDS], strict=True
        ):
            if not renewed:
                await self.write(instance_id, workspace_id, written[workspace_id])

    def _keep_alive(
        self, pipe: Pipeline, key: bytes, instances_key: bytes, instance_id: str
    ) -> None:
        """Queue what keeps an instance's entries alive for `ttl_s`: the expiry of its hash
        (first, so its reply tells whether the hash exists), its membership of the
        workspace's instance set and that set's expiry (`KEEP_ALIVE_COMMANDS` in all)."""
        pipe.pexpire(key, self._ttl_ms)
        pipe.sadd(instances_key, instance_id)
        pipe.pexpire(instances_key, self._ttl_ms)

    async def read(self, workspace_id: str) -> dict[str, PresenceEntry]:
        return (await self.read_many([workspace_id]))[workspace_id]

    async def read_many(
        self, workspace_ids: Collection[str]
    ) -> dict[str, dict[str, PresenceEntry]]:
        """Two round trips whatever the number of workspaces (one more per workspace where an
        instance's entries expired, to forget it)."""
        self._check_open()
        ordered = list(workspace_ids)
        what = (
            f"reading the presence of workspace {ordered[0]!r}"
            if len(ordered) == 1
            else f"reading the presence of {len(ordered)} workspaces"
        )
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for workspace_id in ordered:
                    pipe.smembers(self._instances_key(workspace_id))
                members: list[set[bytes]] = await pipe.execute()
            keys = {
                workspace_id: [
                    (instance_id, self._entries_key(workspace_id, instance_id))
                    for instance_id in sorted(instance_ids)
                ]
                for workspace_id, instance_ids in zip(ordered, members, strict=True)
            }
            async with self._client.pipeline(transaction=False) as pipe:
                for workspace_keys in keys.values():
                    for _, key in workspace_keys:
                        pipe.hgetall(key)
                replies: list[dict[bytes, bytes]] = await pipe.execute()
            # The replies come in the order of `keys`: each workspace takes as many as it has
            # instances.
            next_reply = iter(replies)
            hashes = {
                workspace_id: [next(next_reply) for _ in workspace_keys]
                for workspace_id, workspace_keys in keys.items()
            }
            for workspace_id, workspace_keys in keys.items():
                expired = [
                    (instance_id, key)
                    for (instance_id, key), found in zip(
                        workspace_keys, hashes[workspace_id], strict=True
                    )
                    if not found
                ]
                if expired:
                    await self._forget_expired(
                        keys=[self._instances_key(workspace_id), *(key for _, key in expired)],
                        args=[instance_id for instance_id, _ in expired],
                    )
        except _FAILURES as error:
            raise self._error(what, error) from None
        return {
            workspace_id: merge_instances(
                self._decode(workspace_id, found) for found in hashes[workspace_id] if found
            )
            for workspace_id in ordered
        }

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._client.aclose()
            await self._pool.aclose()
        except _FAILURES as error:
            log.debug("presence store: error while closing Redis connections: %s", error)

    # -- internals -------------------------------------------------------------------------

    def _check_open(self) -> None:
        # redis-py would reconnect a closed client on the next command: refuse instead.
        if self._closed:
            raise BusError("the presence store is closed")

    def _error(self, what: str, error: BaseException) -> BusError:
        # redis-py messages hold no credentials; the URL is the redacted one.
        return BusError(f"{what} at {self._safe_url} failed: {type(error).__name__}: {error}")

    def _entries_key(self, workspace_id: str, instance_id: bytes) -> bytes:
        return b"%spresence:%s:%s" % (self._prefix, workspace_id.encode(), instance_id)

    def _instances_key(self, workspace_id: str) -> bytes:
        return b"%spresence-instances:%s" % (self._prefix, workspace_id.encode())

    def _decode(self, workspace_id: str, fields: dict[bytes, bytes]) -> dict[str, PresenceEntry]:
        entries: dict[str, PresenceEntry] = {}
        for field, value in fields.items():
            try:
                user_id = field.decode()
                parsed: Any = orjson.loads(value)
                if not isinstance(parsed, dict):
                    raise TypeError(f"an entry is a JSON object, not {type(parsed).__name__}")
                entry = PresenceEntry.from_json(parsed)
                if entry.user_id != user_id:
                    raise ValueError(f"the entry of {user_id!r} is of {entry.user_id!r}")
            except (ValueError, KeyError, TypeError) as error:
                self._log_malformed(workspace_id, field, error)
                continue
            entries[user_id] = entry
        return entries

    def _log_malformed(self, workspace_id: str, field: bytes, error: Exception) -> None:
        self.malformed_skipped += 1
        now = time.monotonic()
        if now < self._malformed_next_log_at:
            self._malformed_suppressed += 1
            return
        log.warning(
            "presence store: workspace %s: skipped a malformed entry %r: %s: %s"
            " (and %d more since the last report)",
            workspace_id,
            field[:64],
            type(error).__name__,
            error,
            self._malformed_suppressed,
        )
        self._malformed_suppressed = 0
        self._malformed_next_log_at = now + LOG_INTERVAL_S


def _encode(entry: PresenceEntry) -> bytes:
    return orjson.dumps({**entry.to_json(), "updated": entry.updated})
