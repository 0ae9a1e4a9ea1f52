"""`PresenceService`: shares this instance's presence and follows everyone's, for the web layer.

One worker task does all the I/O, woken by `changed` (a local mutation), by a nudge from the
bus it could not apply and by the heartbeat timer:
- it writes each changed workspace to the store (coalesced: many changes between two
  wake-ups make one write, and wake-ups are at least `min_flush_interval_s` apart): whole
  the first time, then only the users whose entries changed (`LocalPresence.take_changed`),
  and publishes those changes on the bus room `presence:{workspace_id}` (`nudges.py`);
- the other instances following the workspace apply them to their `WorkspaceView`s as they
  arrive, and this instance to its own: a change costs what it changed, not the size of the
  workspace. A view that cannot apply them (a message missed, a write too large for one
  message) re-reads the workspace;
- on each heartbeat it renews the expiry of what it wrote (the store's `ttl_s` should be
  about 3 x `heartbeat_s`) and reads the number of every live instance's last write in each
  followed workspace; a view that does not hold those writes is re-read, handing the
  difference from the last snapshot to `on_events`. That check is how an instance that died
  is noticed (its entries expire, and its users leave at most `ttl_s + heartbeat_s` after
  its last write), and how a lost message is healed.

A store or bus failure is logged once (and the recovery once) and retried at the next
heartbeat; the worker never stops for one. `close` removes this instance's entries; the store
and the bus belong to whoever created them and are closed by them, after this service.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from collab.bus.base import Bus
from collab.errors import BusError, ConfigError
from collab.presence.base import InstanceEntries, PresenceEntry, PresenceStore, apply_changes
from collab.presence.nudges import REREAD, decode_nudge, encode_changes
from collab.presence.registry import LocalPresence
from collab.presence.snapshots import PresenceEvent, snapshot_json
from collab.presence.view import UNNUMBERED, WorkspaceView
from collab.tasks import cancel_and_wait

log = logging.getLogger(__name__)

ROOM_PREFIX = "presence:"
MIN_FLUSH_INTERVAL_S = 0.05
"""Flushes at most this often: the changes of many users arriving at once (a join storm
after a deploy) go out as one write and one message per workspace, for 50 ms of delay on a
presence change."""

EventsHandler = Callable[[str, list[PresenceEvent]], None]
"""Called with `(workspace_id, events)` for the local subscribers of the workspace."""


@dataclass(slots=True)
class _Written:
    """What this instance last wrote for a workspace, changed in place by each write."""

    seq: int
    entries: dict[str, PresenceEntry]


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
        self._views: dict[str, WorkspaceView] = {}
        # Reads are numbered when they start; one that ends after a later one is dropped.
        self._last_read = 0
        self._applied_read: dict[str, int] = {}
        # This instance's writes are numbered, increasing over all its workspaces, from the
        # clock's microseconds: a restart under the same id does not repeat numbers.
        self._seqs = itertools.count(time.time_ns() // 1000)
        self._written: dict[str, _Written] = {}
        """What this instance last wrote to the store, per workspace (never empty)."""
        self._unwritten: dict[str, set[str]] = {}
        """Per workspace, users whose changes a failed write did not store."""
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
                removal = InstanceEntries(next(self._seqs), {})
                try:
                    await self._store.write(self._instance_id, workspace_id, removal)
                except BusError as error:
                    self._report_failure(error)
                    break  # the rest expire
                self._publish(workspace_id, REREAD)
            self._written.clear()
        self._subscribers.clear()
        self._views.clear()
        for workspace_id in sorted(self._bus_rooms):
            await self._sync_bus_room(workspace_id)

    def _log_crash(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("presence %s: worker crashed", self._instance_id, exc_info=error)

    # -- the API of the web layer ----------------------------------------------------------

    def changed(self, workspace_id: str) -> None:
        """Note that `LocalPresence` changed in the workspace: the changes are written and
        sent to the other instances soon, once for many changes."""
        self._dirty.add(workspace_id)
        self._wakeup.set()

    async def subscribe(self, workspace_id: str) -> list[dict[str, Any]]:
        """Follow the workspace (once more) and return its snapshot as JSON (shared with
        the other subscribers until the next change: do not change it). The events
        passed to `on_events` from then on start from this snapshot, so register the
        subscriber before awaiting anything else. When the store fails, the snapshot is the
        last known one (or this instance's own entries) and is corrected at the next
        heartbeat. Raises `BusError` once closed."""
        if self._closed:
            raise BusError("the presence service is closed")
        self._subscribers[workspace_id] = self._subscribers.get(workspace_id, 0) + 1
        if workspace_id not in self._views:
            # Subscribed before reading, so no nudge falls between the read and the
            # subscription; written before reading, so the snapshot has our own users.
            await self._sync_bus_room(workspace_id)
            try:
                await self._write(workspace_id)
                await self._refresh([workspace_id], initial=True)
            except BusError as error:
                self._report_failure(error)
            if workspace_id not in self._views and workspace_id in self._subscribers:
                # No change follows these entries: the first one makes the view re-read.
                own = InstanceEntries(UNNUMBERED, self._local.entries(workspace_id))
                self._views[workspace_id] = WorkspaceView(
                    workspace_id, {self._instance_id: own}, self._last_read
                )
            if workspace_id in self._stale:
                self._wakeup.set()  # nudged meanwhile: re-read, from the snapshot returned now
        view = self._views.get(workspace_id)
        return view.shown() if view is not None else []

    async def unsubscribe(self, workspace_id: str) -> None:
        """Undo one `subscribe`; the last one stops following the workspace."""
        count = self._subscribers.get(workspace_id, 0) - 1
        if count > 0:
            self._subscribers[workspace_id] = count
            return
        self._subscribers.pop(workspace_id, None)
        self._views.pop(workspace_id, None)
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
        workspace_id = room_id.removeprefix(ROOM_PREFIX)
        view = self._views.get(workspace_id)
        if view is not None and (nudge := decode_nudge(frame)) is not None:
            events = view.apply(
                nudge.instance_id, nudge.previous_seq, nudge.seq, nudge.changes, self._last_read
            )
            if events is not None:
                self._deliver(workspace_id, events)
                return
        self._stale.add(workspace_id)
        self._wakeup.set()

    def _on_resync(self, room_id: str) -> None:
        # Nudges may have been lost: re-read.
        self._on_nudge(room_id, REREAD)

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
                # what is unwritten and re-reads every followed workspace it finds behind.
                self._report_failure(error)
            except Exception:
                # A bug, not a backend failure (those are handled above): report it and
                # carry on with the next wake-up rather than leave presence frozen.
                log.exception("presence %s: flushing failed", self._instance_id)

    async def _flush(self) -> None:
        beat, self._beat_due = self._beat_due, False
        dirty, self._dirty = self._dirty, set()
        stale, self._stale = self._stale, set()
        if beat:
            # What a failed write left (in `subscribe`, where nothing retries it) is written.
            dirty |= self._local.workspaces() - self._written.keys()
            dirty |= self._unwritten.keys()
            for workspace_id in sorted(self._subscribers.keys() - self._bus_rooms):
                await self._sync_bus_room(workspace_id)
        ordered, done, written = sorted(dirty), 0, set()
        try:
            for workspace_id in ordered:
                wrote, reread = await self._write(workspace_id)
                if wrote:
                    written.add(workspace_id)
                if reread:
                    stale.add(workspace_id)
                done += 1
        finally:
            # Not written (the store failed): still dirty, for the next round.
            self._dirty.update(ordered[done:])
        if beat:
            # What a write renewed is not renewed again. One store call for all the rest:
            # with Redis, one round trip for every renewal, and two for every check.
            await self._renew(self._written.keys() - written)
            stale |= await self._outdated(self._subscribers.keys() - stale)
        await self._refresh(stale)

    async def _write(self, workspace_id: str) -> tuple[bool, bool]:
        """Write what changed of the workspace's local entries: all of them the first time,
        then the users whose entries changed, and tell the other instances. Return whether
        it wrote, and whether the workspace's view must be re-read (after a whole write).
        Raises `BusError`."""
        async with self._write_lock:
            users = self._local.take_changed(workspace_id)
            users |= self._unwritten.pop(workspace_id, set())
            last = self._written.get(workspace_id)
            if last is None:
                entries = self._local.entries(workspace_id)
                if not entries:
                    return False, False
                seq = next(self._seqs)
                await self._store.write(
                    self._instance_id, workspace_id, InstanceEntries(seq, entries)
                )
                self._recovered()
                self._written[workspace_id] = _Written(seq, entries)
                self._publish(workspace_id, REREAD)
                return True, True
            changes: dict[str, PresenceEntry | None] = {}
            for user_id in users:
                entry = self._local.entry(workspace_id, user_id)
                if entry != last.entries.get(user_id):
                    changes[user_id] = entry
            if not changes:
                return False, False
            seq, previous_seq = next(self._seqs), last.seq
            try:
                await self._store.write_changes(
                    self._instance_id,
                    workspace_id,
                    changes,
                    seq,
                    InstanceEntries(previous_seq, last.entries),
                )
            except BusError:
                self._unwritten.setdefault(workspace_id, set()).update(users)
                raise
            self._recovered()
            apply_changes(last.entries, changes)
            last.seq = seq
            if not last.entries:
                del self._written[workspace_id]
        self._publish(workspace_id, encode_changes(self._instance_id, previous_seq, seq, changes))
        view = self._views.get(workspace_id)
        if view is None:
            return True, False
        events = view.apply(self._instance_id, previous_seq, seq, changes, self._last_read)
        if events is None:
            return True, True
        self._deliver(workspace_id, events)
        return True, False

    async def _renew(self, workspace_ids: set[str]) -> None:
        """Renew the expiry of the entries last written for the workspaces. Raises
        `BusError`."""
        async with self._write_lock:
            # One emptied since is no longer in `_written`: its removal was written.
            written = {
                w: InstanceEntries(self._written[w].seq, self._written[w].entries)
                for w in sorted(workspace_ids)
                if w in self._written
            }
            if not written:
                return
            await self._store.renew(self._instance_id, written)
            self._recovered()

    async def _refresh(self, workspace_ids: Iterable[str], *, initial: bool = False) -> None:
        """Re-read followed workspaces and emit, for each, what changed since its last
        snapshot; the `initial` read (by `subscribe`) makes the first view and emits
        nothing. Raises `BusError`."""
        wanted: list[str] = []
        for workspace_id in sorted(workspace_ids):
            if workspace_id not in self._subscribers:
                continue
            if not initial and workspace_id not in self._views:
                # `subscribe` is making the first view; no event may come before it. It
                # wakes the worker again when it is done.
                self._stale.add(workspace_id)
                continue
            wanted.append(workspace_id)
        if not wanted:
            return
        self._last_read += 1
        read = self._last_read
        by_workspace = await self._store.read_instances(wanted)
        self._recovered()
        for workspace_id, instances in by_workspace.items():
            if workspace_id not in self._subscribers:
                continue
            if read < self._applied_read.get(workspace_id, 0):
                continue  # a read that started later has been applied
            self._applied_read[workspace_id] = read
            view = self._views.get(workspace_id)
            if view is None:
                self._views[workspace_id] = WorkspaceView(workspace_id, instances, read)
            elif events := view.replace(instances, read):
                self._deliver(workspace_id, events)

    async def _outdated(self, workspace_ids: Iterable[str]) -> set[str]:
        """The followed workspaces whose views do not hold every live instance's last write
        (an instance died, a message was lost): those to re-read. Costs the instances, not
        the users. Raises `BusError`."""
        wanted = sorted(w for w in workspace_ids if w in self._views)
        if not wanted:
            return set()
        self._last_read += 1
        read = self._last_read
        seqs = await self._store.read_seqs(wanted)
        self._recovered()
        return {
            workspace_id
            for workspace_id, numbers in seqs.items()
            if (view := self._views.get(workspace_id)) is not None and not view.holds(numbers, read)
        }

    def _deliver(self, workspace_id: str, events: list[PresenceEvent]) -> None:
        if not events:
            return
        try:
            self._on_events(workspace_id, events)
        except Exception:
            # A bug delivering one workspace's events: logged, and the others are still
            # delivered (this workspace's view is already up to date).
            log.exception(
                "presence %s: workspace %s: on_events failed", self._instance_id, workspace_id
            )

    def _publish(self, workspace_id: str, frame: bytes) -> None:
        try:
            self._bus.publish(ROOM_PREFIX + workspace_id, frame)
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
