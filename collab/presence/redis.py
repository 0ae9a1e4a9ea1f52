"""`RedisPresenceStore`: the presence of every instance, shared through Redis.

Per (workspace, instance), one hash `{prefix}presence:{workspace_id}:{instance_id}` maps each
user id to the JSON of the instance's entry (`PresenceEntry.to_record`), and the empty field
(no user id is empty) to the number of the write that left it so. A whole write replaces the
hash and renews its expiry in one MULTI; a write of changes sets and deletes only the changed
users' fields, in a script that does nothing when the hash is gone (then the whole entries
are written instead). So an instance that stops writing (it died) vanishes `ttl_s` after its
last write. Per workspace, the set `{prefix}presence-instances:{workspace_id}` names
the instances that wrote there, so a read needs no KEYS or SCAN: it reads each of their hashes
and removes from the set the instances whose hash has expired (atomically, in a script, so an
instance writing at that moment is not removed). The set expires too, `ttl_s` after the last
write of any instance.

Redis and OS errors become `BusError`; entries that do not parse are skipped and logged (at
most once per `RateLimitedLog`'s interval).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Collection, Mapping
from typing import Any, TypeVar

import orjson
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.maint_notifications import MaintNotificationsConfig
from redis.typing import EncodableT, FieldT

from collab.bus.redis_log import redact_url
from collab.errors import BusError, ConfigError
from collab.observability.throttled import RateLimitedLog
from collab.presence.base import Changes, InstanceEntries, PresenceEntry, apply_changes
from collab.presence.snapshots import merge_instances

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 8
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

SEQ_FIELD = b""
"""The hash field holding the number of the instance's last write (no user id is empty)."""

# KEYS[1] is the instance's hash, KEYS[2] the workspace's instance set. ARGV: the TTL in ms,
# the instance id, the write's number, the number n of fields to set, n field/value pairs,
# then the fields to delete. Returns 0, changing nothing, when the hash is gone.
_WRITE_CHANGES_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local set_count = tonumber(ARGV[4])
for i = 0, set_count - 1 do
  redis.call('HSET', KEYS[1], ARGV[5 + 2 * i], ARGV[6 + 2 * i])
end
for i = 5 + 2 * set_count, #ARGV do
  redis.call('HDEL', KEYS[1], ARGV[i])
end
redis.call('HSET', KEYS[1], '', ARGV[3])
if redis.call('HLEN', KEYS[1]) <= 1 then
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[2], ARGV[2])
  return 1
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return 1
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
        self._write_changes = self._client.register_script(_WRITE_CHANGES_SCRIPT)
        self._ttl_ms = max(1, math.ceil(ttl_s * 1000))
        self._prefix = key_prefix.encode()
        self._closed = False
        self._malformed_log = RateLimitedLog(log)
        self.malformed_skipped = 0

    def __repr__(self) -> str:
        return f"RedisPresenceStore({self._safe_url!r})"

    async def write(self, instance_id: str, workspace_id: str, written: InstanceEntries) -> None:
        self._check_open()
        key = self._entries_key(workspace_id, instance_id.encode())
        instances_key = self._instances_key(workspace_id)
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.delete(key)
                if written.entries:
                    pipe.hset(key, mapping=_fields(written))
                    self._keep_alive(pipe, key, instances_key, instance_id)
                else:
                    pipe.srem(instances_key, instance_id)
                await pipe.execute()
        except _FAILURES as error:
            raise self._error(
                f"writing the presence of workspace {workspace_id!r}", error
            ) from None

    async def write_changes(
        self,
        instance_id: str,
        workspace_id: str,
        changes: Changes,
        seq: int,
        before: InstanceEntries,
    ) -> None:
        self._check_open()
        key = self._entries_key(workspace_id, instance_id.encode())
        upserts = [(user_id, entry) for user_id, entry in changes.items() if entry is not None]
        args: list[bytes | str | int] = [self._ttl_ms, instance_id, seq, len(upserts)]
        for user_id, entry in upserts:
            args += (user_id, _encode(entry))
        args += [user_id for user_id, entry in changes.items() if entry is None]
        try:
            applied = await self._write_changes(
                keys=[key, self._instances_key(workspace_id)], args=args
            )
        except _FAILURES as error:
            raise self._error(
                f"writing presence changes of workspace {workspace_id!r}", error
            ) from None
        if not applied:
            # The hash expired or Redis lost it: write the whole result.
            entries = dict(before.entries)
            apply_changes(entries, changes)
            await self.write(instance_id, workspace_id, InstanceEntries(seq, entries))

    async def renew(self, instance_id: str, written: Mapping[str, InstanceEntries]) -> None:
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
        instances = (await self.read_instances([workspace_id]))[workspace_id]
        return merge_instances(read.entries for read in instances.values())

    async def is_present(self, user_id: str, workspace_ids: Collection[str]) -> bool:
        """Two round trips: the workspaces' instances, then whether each one's hash has the
        user (an expired hash has no field)."""
        self._check_open()
        ordered = list(workspace_ids)
        if not ordered:
            return False
        try:
            keys = await self._instance_keys(ordered)
            found = await self._ask_each_hash(keys, lambda pipe, key: pipe.hexists(key, user_id))
        except _FAILURES as error:
            raise self._error(f"looking for user {user_id!r} in presence", error) from None
        return any(found)

    async def read_instances(
        self, workspace_ids: Collection[str]
    ) -> dict[str, dict[str, InstanceEntries]]:
        """Two round trips whatever the number of workspaces (one more per workspace where an
        instance's entries expired, to forget it)."""
        self._check_open()
        ordered = list(workspace_ids)
        try:
            keys = await self._instance_keys(ordered)
            replies = await self._ask_each_hash(keys, lambda pipe, key: pipe.hgetall(key))
            # A hash that is gone reads as no fields.
            found = self._by_instance(keys, [fields or None for fields in replies])
            await self._forget_gone(keys, found)
        except _FAILURES as error:
            raise self._error(self._reading(ordered), error) from None
        return {
            workspace_id: {
                instance_id: self._decode(workspace_id, fields)
                for instance_id, fields in found[workspace_id].items()
            }
            for workspace_id in ordered
        }

    async def read_seqs(self, workspace_ids: Collection[str]) -> dict[str, dict[str, int]]:
        """Two round trips whatever the number of workspaces, and no entry read."""
        self._check_open()
        ordered = list(workspace_ids)
        try:
            keys = await self._instance_keys(ordered)
            replies = await self._ask_each_hash(keys, _ask_number)
            # Per instance, its hash's number, or None when the hash is gone.
            numbers = [
                _seq(number) if exists else None
                for exists, number in zip(replies[::2], replies[1::2], strict=True)
            ]
            found = self._by_instance(keys, numbers)
            await self._forget_gone(keys, found)
        except _FAILURES as error:
            raise self._error(self._reading(ordered), error) from None
        return {workspace_id: found[workspace_id] for workspace_id in ordered}

    async def _instance_keys(self, ordered: list[str]) -> dict[str, list[tuple[str, bytes]]]:
        """Per workspace, the instances that wrote there and the keys of their hashes (one
        round trip)."""
        async with self._client.pipeline(transaction=False) as pipe:
            for workspace_id in ordered:
                pipe.smembers(self._instances_key(workspace_id))
            members: list[set[bytes]] = await pipe.execute()
        return {
            workspace_id: [
                (instance_id.decode(errors="replace"), self._entries_key(workspace_id, instance_id))
                for instance_id in sorted(instance_ids)
            ]
            for workspace_id, instance_ids in zip(ordered, members, strict=True)
        }

    async def _ask_each_hash(
        self,
        keys: dict[str, list[tuple[str, bytes]]],
        ask: Callable[[Pipeline, bytes], object],
    ) -> list[Any]:
        """The replies of what `ask` queues for each hash of `keys`, in their order (one
        round trip)."""
        async with self._client.pipeline(transaction=False) as pipe:
            for instance_keys in keys.values():
                for _, key in instance_keys:
                    ask(pipe, key)
            return await pipe.execute()

    @staticmethod
    def _by_instance(
        keys: dict[str, list[tuple[str, bytes]]], replies: list[_Reply | None]
    ) -> dict[str, dict[str, _Reply]]:
        """The replies (one per key, in the order of `keys`) per workspace and instance,
        without those of hashes that are gone (None)."""
        next_reply = iter(replies)
        found: dict[str, dict[str, _Reply]] = {}
        for workspace_id, instance_keys in keys.items():
            found[workspace_id] = {}
            for instance_id, _ in instance_keys:
                reply = next(next_reply)
                if reply is not None:
                    found[workspace_id][instance_id] = reply
        return found

    async def _forget_gone(
        self, keys: dict[str, list[tuple[str, bytes]]], found: Mapping[str, Mapping[str, object]]
    ) -> None:
        """Remove from each workspace's instance set the instances whose hash is gone
        (expired), atomically, so an instance writing at that moment is not removed."""
        for workspace_id, instance_keys in keys.items():
            gone = [(i, key) for i, key in instance_keys if i not in found[workspace_id]]
            if gone:
                await self._forget_expired(
                    keys=[self._instances_key(workspace_id), *(key for _, key in gone)],
                    args=[instance_id for instance_id, _ in gone],
                )

    @staticmethod
    def _reading(ordered: list[str]) -> str:
        if len(ordered) == 1:
            return f"reading the presence of workspace {ordered[0]!r}"
        return f"reading the presence of {len(ordered)} workspaces"

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

    def _decode(self, workspace_id: str, fields: dict[bytes, bytes]) -> InstanceEntries:
        entries: dict[str, PresenceEntry] = {}
        seq = 0  # a hash written before writes were numbered
        for field, value in fields.items():
            try:
                if field == SEQ_FIELD:
                    seq = int(value)
                    continue
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
        return InstanceEntries(seq, entries)

    def _log_malformed(self, workspace_id: str, field: bytes, error: Exception) -> None:
        self.malformed_skipped += 1
        self._malformed_log.warning(
            "presence store: workspace %s: skipped a malformed entry %r: %s: %s",
            workspace_id,
            field[:64],
            type(error).__name__,
            error,
        )


_Reply = TypeVar("_Reply")


def _ask_number(pipe: Pipeline, key: bytes) -> None:
    """Whether the hash exists, and its number."""
    pipe.exists(key)
    pipe.hget(key, SEQ_FIELD)


def _seq(number: bytes | None) -> int:
    """A hash's number as stored; 0 for a hash written before writes were numbered."""
    try:
        return int(number) if number is not None else 0
    except ValueError:
        return 0


def _encode(entry: PresenceEntry) -> bytes:
    return orjson.dumps(entry.to_record())


def _fields(written: InstanceEntries) -> dict[FieldT, EncodableT]:
    """The hash of a whole write: every entry, and its number."""
    fields: dict[FieldT, EncodableT] = {
        user_id: _encode(entry) for user_id, entry in written.entries.items()
    }
    fields[SEQ_FIELD] = written.seq
    return fields
