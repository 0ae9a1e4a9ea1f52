"""`PresenceService`: shares this instance's presence and follows everyone's, for the web layer.

One worker task does all the I/O, woken by `changed` (a local mutation), by a nudge from the
bus (another instance changed a workspace we follow) and by the heartbeat timer:
- it writes the entries of each changed workspace to the store (coalesced: many changes
  between two wake-ups make one write, and wake-ups are at least `min_flush_interval_s`
  apart), and publishes a nudge on the bus room
  `presence:{workspace_id}` when they differ from what it wrote last;
- on each heartbeat it rewrites every workspace with local presence, which renews their expiry
  (the store's `ttl_s` should be about 3 x `heartbeat_s`); one that did not change since it
  was last written is only renewed, without rebuilding or resending its entries;
- it re-reads each followed workspace that was nudged or written, and all of them on each
  heartbeat, and hands the difference from the last snapshot to `on_events`. That periodic
  re-read is how an instance that died is noticed: its entries expire, and its users leave
  at most `ttl_s + heartbeat_s` after its last write.

A store or bus failure is logged once (and the recovery once) and retried at the next
heartbeat; the worker never stops for one. `close` removes this instance's entries; the store
and the bus belong to whoever created them and are closed by them, after this service.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Iterable
from typing import Any

from collab.bus.base import Bus
from collab.errors import BusError, ConfigError
from collab.presence.base import PresenceStore
from collab.presence.registry import LocalPresence
from collab.presence.snapshots import PresenceEvent, Snapshot, diff_snapshots, snapshot_json
from collab.tasks import cancel_and_wait

log = logging.getLogger(__name__)

ROOM_PREFIX = "presence:"
NUDGE_FRAME = b"\x01"
"""The whole content of a nudge: "re-read this workspace"."""
MIN_FLUSH_INTERVAL_S = 0.05
"""Writing a workspace rebuilds every entry of it and re-reading it reads them all: when
users join one at a time, as in a join storm after a deploy, one flush per join made the
cost grow with the square of the workspace's size (1,000 joins of one workspace: half the
server's CPU in presence). Flushes at most this often keep it linear, for 50 ms of delay on
a presence change."""

EventsHandler = Callable[[str, list[PresenceEvent]], None]
"""Called with `(workspace_id, events)` for the local subscribers of the workspace."""


class PresenceService:
    """The presence of the workspaces this instance's clients follow, kept current."""

    def __init__(
        self,
        local: LocalPresence,
        store: PresenceStore,
        bus: Bus,
        *,
        instance_id: str,
        heartbeat_s: float,
        on_events: EventsHandler,
        min_flush_interval_s: float = MIN_FLUSH_INTERVAL_S,
    ) -> None:
        if not heartbeat_s > 0:
            raise ConfigError(["heartbeat_s must be positive"])
        self._min_flush_interval_s = min_flush_interval_s
        self._last_flush_at = float("-inf")
        self._local = local
        self._store = store
        self._bus = bus
        self._instance_id = instance_id
        self._heartbeat_s = heartbeat_s
        self._on_events = on_events

        self._subscribers: dict[str, int] = {}
        self._snapshots: dict[str, Snapshot] = {}
        # Reads are numbered when they start; one that ends after a later one is dropped.
        self._reads = itertools.count(1)
        self._applied_read: dict[str, int] = {}
        self._written: dict[str, Snapshot] = {}
        """What this instance last wrote to the store, per workspace (never empty)."""
        self._dirty: set[str] = set()
        self._stale: set[str] = set()
        self._beat_due = False
        self._wakeup = asyncio.Event()
        self._write_lock = asyncio.Lock()
        self._bus_lock = asyncio.Lock()
        self._bus_rooms: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._beat_timer: asyncio.TimerHandle | None = None
        self._failing = False
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is not None or self._closed:
            return
        self._task = asyncio.create_task(self._run(), name=f"presence-{self._instance_id}")
        self._task.add_done_callback(self._log_crash)
        self._beat_timer = asyncio.get_running_loop().call_later(self._heartbeat_s, self._beat)

    async def close(self) -> None:
        """Stop, remove this instance's entries from the store (best effort: they expire
        anyway) and leave the bus rooms. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._beat_timer is not None:
            self._beat_timer.cancel()
        self._wakeup.set()
        await cancel_and_wait([self._task])
        async with self._write_lock:
            for workspace_id in sorted(self._written):
                try:
                    await self._store.write(self._instance_id, workspace_id, {})
                except BusError as error:
                    self._report_failure(error)
                    break  # the rest expire
                self._nudge(workspace_id)
            self._written.clear()
        self._subscribers.clear()
        self._snapshots.clear()
        for workspace_id in sorted(self._bus_rooms):
            await self._sync_bus_room(workspace_id)

    def _log_crash(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("presence %s: worker crashed", self._instance_id, exc_info=error)

    # -- the API of the web layer ----------------------------------------------------------

    def changed(self, workspace_id: str) -> None:
        """Note that `LocalPresence` changed in the workspace: its entries are written, the
        other instances nudged and the workspace re-read soon, once for many changes."""
        self._dirty.add(workspace_id)
        self._wakeup.set()

    async def subscribe(self, workspace_id: str) -> list[dict[str, Any]]:
        """Follow the workspace (once more) and return its snapshot as JSON. The events
        passed to `on_events` from then on start from this snapshot, so register the
        subscriber before awaiting anything else. When the store fails, the snapshot is the
        last known one (or this instance's own entries) and is corrected at the next
        heartbeat. Raises `BusError` once closed."""
        if self._closed:
            raise BusError("the presence service is closed")
        self._subscribers[workspace_id] = self._subscribers.get(workspace_id, 0) + 1
        if workspace_id not in self._snapshots:
            # Subscribed before reading, so no nudge falls between the read and the
            # subscription; written before reading, so the snapshot has our own users.
            await self._sync_bus_room(workspace_id)
            try:
                await self._write(workspace_id, renew=False)
                await self._refresh([workspace_id], initial=True)
            except BusError as error:
                self._report_failure(error)
            if workspace_id not in self._snapshots and workspace_id in self._subscribers:
                self._snapshots[workspace_id] = self._local.entries(workspace_id)
            if workspace_id in self._stale:
                self._wakeup.set()  # nudged meanwhile: re-read, from the snapshot returned now
        return snapshot_json(self._snapshots.get(workspace_id, {}))

    async def unsubscribe(self, workspace_id: str) -> None:
        """Undo one `subscribe`; the last one stops following the workspace."""
        count = self._subscribers.get(workspace_id, 0) - 1
        if count > 0:
            self._subscribers[workspace_id] = count
            return
        self._subscribers.pop(workspace_id, None)
        self._snapshots.pop(workspace_id, None)
        self._applied_read.pop(workspace_id, None)
        await self._sync_bus_room(workspace_id)

    async def snapshot(self, workspace_id: str) -> list[dict[str, Any]]:
        """The workspace's presence as JSON, read from the store now (no subscription
        needed). Raises `BusError` when the store fails."""
        return snapshot_json(await self._store.read(workspace_id))

    # -- the worker ------------------------------------------------------------------------

    def _beat(self) -> None:
        self._beat_timer = asyncio.get_running_loop().call_later(self._heartbeat_s, self._beat)
        self._beat_due = True
        self._wakeup.set()

    def _on_nudge(self, room_id: str, frame: bytes) -> None:
        self._stale.add(room_id.removeprefix(ROOM_PREFIX))
        self._wakeup.set()

    def _on_resync(self, room_id: str) -> None:
        # Nudges may have been lost: re-read, as for a nudge.
        self._on_nudge(room_id, NUDGE_FRAME)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._closed:
            await self._wakeup.wait()
            # What changes while this waits joins this flush.
            wait_s = self._last_flush_at + self._min_flush_interval_s - loop.time()
            if wait_s > 0:
                await asyncio.sleep(wait_s)
            self._wakeup.clear()
            self._last_flush_at = loop.time()
            try:
                await self._flush()
            except BusError as error:
                # What is left of this round is redone by the next heartbeat, which writes
                # every local workspace and re-reads every followed one.
                self._report_failure(error)
            except Exception:
                # A bug, not a backend failure (those are handled above): report it and
                # carry on with the next wake-up rather than leave presence frozen.
                log.exception("presence %s: flushing failed", self._instance_id)

    async def _flush(self) -> None:
        beat, self._beat_due = self._beat_due, False
        dirty, self._dirty = self._dirty, set()
        stale, self._stale = self._stale, set()
        unchanged: set[str] = set()
        if beat:
            # Every change of LocalPresence reaches `changed`, so a workspace that is not
            # dirty still has the entries written last: renewing it rewrites those, where
            # rebuilding every user's entry on every heartbeat would cost as much as the
            # workspace has users. One present here but never written is rebuilt.
            unchanged = self._written.keys() - dirty
            dirty |= self._local.workspaces() - self._written.keys()
            stale |= self._subscribers.keys()
            for workspace_id in sorted(self._subscribers.keys() - self._bus_rooms):
                await self._sync_bus_room(workspace_id)
        ordered, written = sorted(dirty), 0
        try:
            for workspace_id in ordered:
                if await self._write(workspace_id, renew=beat):
                    stale.add(workspace_id)
                written += 1
        finally:
            # Not written (the store failed): still dirty, for the next round to rebuild.
            self._dirty.update(ordered[written:])
        # One store call each for all workspaces: with Redis, one round trip for every
        # renewal and two for every re-read, not one or two per workspace.
        await self._renew(unchanged)
        await self._refresh(stale)

    async def _write(self, workspace_id: str, *, renew: bool) -> bool:
        """Write the workspace's local entries if they changed (or, with `renew`, if there
        are any), and nudge the other instances if they changed. Return whether they did.
        Raises `BusError`."""
        async with self._write_lock:
            entries = self._local.entries(workspace_id)
            changed = entries != self._written.get(workspace_id, {})
            if not changed and not (renew and entries):
                return False
            await self._store.write(self._instance_id, workspace_id, entries)
            self._recovered()
            if entries:
                self._written[workspace_id] = entries
            else:
                self._written.pop(workspace_id, None)
        if changed:
            self._nudge(workspace_id)
        return changed

    async def _renew(self, workspace_ids: set[str]) -> None:
        """Renew the expiry of the entries last written for the workspaces. Raises
        `BusError`."""
        async with self._write_lock:
            # One emptied since is no longer in `_written`: its removal was written.
            written = {w: self._written[w] for w in sorted(workspace_ids) if w in self._written}
            if not written:
                return
            await self._store.renew(self._instance_id, written)
            self._recovered()

    async def _refresh(self, workspace_ids: Iterable[str], *, initial: bool = False) -> None:
        """Re-read followed workspaces and emit, for each, what changed since its last
        snapshot; the `initial` read (by `subscribe`) makes the first snapshot and emits
        nothing. Raises `BusError`."""
        wanted: list[str] = []
        for workspace_id in sorted(workspace_ids):
            if workspace_id not in self._subscribers:
                continue
            if not initial and workspace_id not in self._snapshots:
                # `subscribe` is making the first snapshot; no event may come before it. It
                # wakes the worker again when it is done.
                self._stale.add(workspace_id)
                continue
            wanted.append(workspace_id)
        if not wanted:
            return
        read = next(self._reads)
        merged_by_workspace = await self._store.read_many(wanted)
        self._recovered()
        for workspace_id, merged in merged_by_workspace.items():
            if workspace_id not in self._subscribers:
                continue
            if read < self._applied_read.get(workspace_id, 0):
                continue  # a read that started later has been applied
            self._applied_read[workspace_id] = read
            before = self._snapshots.get(workspace_id)
            self._snapshots[workspace_id] = merged
            if before is not None and (events := diff_snapshots(workspace_id, before, merged)):
                try:
                    self._on_events(workspace_id, events)
                except Exception:
                    # A bug delivering one workspace's events: logged, and the others are
                    # still delivered (this workspace's snapshot is already up to date).
                    log.exception(
                        "presence %s: workspace %s: on_events failed",
                        self._instance_id,
                        workspace_id,
                    )

    def _nudge(self, workspace_id: str) -> None:
        try:
            self._bus.publish(ROOM_PREFIX + workspace_id, NUDGE_FRAME)
        except BusError as error:
            self._report_failure(error)

    async def _sync_bus_room(self, workspace_id: str) -> None:
        """Subscribe the workspace's bus room if it is followed, else unsubscribe it."""
        async with self._bus_lock:
            room_id = ROOM_PREFIX + workspace_id
            followed = workspace_id in self._subscribers and not self._closed
            if followed and workspace_id not in self._bus_rooms:
                try:
                    await self._bus.subscribe(room_id, self._on_nudge, self._on_resync)
                except BusError as error:
                    self._report_failure(error)
                    return
                self._bus_rooms.add(workspace_id)
            elif not followed and workspace_id in self._bus_rooms:
                self._bus_rooms.discard(workspace_id)
                try:
                    await self._bus.unsubscribe(room_id)
                except BusError as error:
                    self._report_failure(error)

    def _report_failure(self, error: BusError) -> None:
        """Log the first failure of an outage; the rest are retried quietly."""
        if self._failing:
            return
        self._failing = True
        log.warning("presence %s: %s; retrying at each heartbeat", self._instance_id, error)

    def _recovered(self) -> None:
        if self._failing:
            self._failing = False
            log.info("presence %s: the presence store answers again", self._instance_id)
