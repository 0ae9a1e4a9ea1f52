"""The loaded rooms: each loaded once, held while used, unloaded when nobody holds it.

- **Single-flight load.** The first `acquire` of a room loads it from the store; every
  concurrent `acquire` awaits that same load. A failed load raises `RoomUnavailable` to all of
  them and leaves nothing behind, so no client ever syncs against an empty stand-in.
- **Unload.** A room nobody holds is flushed, compacted and dropped after `grace_s`. If the
  store is down, the room stays loaded and the unload is retried.

What a loaded room needs besides its document (the bus subscription, its value index) is
the manager's, through the `on_loaded` and `on_dropped` hooks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from collab.errors import ProtocolError, RoomUnavailable, StoreError
from collab.rooms.commit import GroupCommit
from collab.rooms.document import DocumentRoom
from collab.rooms.live import LiveRoom, RoomLimits
from collab.store.base import Store, stored_digest_off_loop

log = logging.getLogger(__name__)

RoomHook = Callable[[LiveRoom], Awaitable[None]]


class RoomRegistry:
    def __init__(
        self,
        store: Store,
        commit: GroupCommit,
        limits: RoomLimits,
        *,
        on_loaded: RoomHook,
        on_dropped: RoomHook,
    ) -> None:
        self._store = store
        self._commit = commit
        self._limits = limits
        self._on_loaded = on_loaded
        self._on_dropped = on_dropped
        self._rooms: dict[str, LiveRoom] = {}
        self._loading: dict[str, asyncio.Future[LiveRoom]] = {}
        self._closed = False

    def __len__(self) -> int:
        return len(self._rooms)

    def get(self, room_id: str) -> LiveRoom | None:
        return self._rooms.get(room_id)

    def loaded(self) -> list[LiveRoom]:
        """The loaded rooms (a copy: the caller may await while going through it)."""
        return list(self._rooms.values())

    async def acquire(self, room_id: str) -> LiveRoom:
        """Hold a room (loading it once if needed). Raises `RoomUnavailable`."""
        while True:
            if self._closed:
                raise RoomUnavailable("the server is shutting down")
            live = self._rooms.get(room_id)
            if live is None:
                loading = self._loading.get(room_id)
                if loading is None:
                    loading = asyncio.ensure_future(self._load(room_id))
                    self._loading[room_id] = loading
                live = await asyncio.shield(loading)
            if live.dropped:
                continue  # dropped by a draining server before this hold was counted
            if live.unloading is not None:
                await asyncio.shield(live.unloading)
                continue
            live.holders += 1
            if live.unload_timer is not None:
                live.unload_timer.cancel()
                live.unload_timer = None
            return live

    def release(self, live: LiveRoom) -> None:
        live.holders -= 1
        if live.holders == 0 and not self._closed:
            self._schedule_unload(live)

    @contextlib.asynccontextmanager
    async def holding(self, room_id: str) -> AsyncIterator[LiveRoom]:
        live = await self.acquire(room_id)
        try:
            yield live
        finally:
            self.release(live)

    def close(self) -> None:
        """Refuse new holds and cancel pending unloads (the caller flushes, then `drop_all`)."""
        self._closed = True
        for live in self._rooms.values():
            if live.unload_timer is not None:
                live.unload_timer.cancel()

    async def unload_unheld(self) -> None:
        """Once closed: compact and drop every room nobody holds any more whose updates
        the group commit has written (the rooms a draining server's clients left; the others
        wait for the commit). Raises `StoreError`; the rooms not dropped yet stay loaded."""
        if not self._closed:
            return
        for live in list(self._rooms.values()):
            if self._unheld_and_written(live):
                await self._commit.compact(live)
                if self._unheld_and_written(live):
                    await self._drop(live)

    @staticmethod
    def _unheld_and_written(live: LiveRoom) -> bool:
        return (
            live.holders == 0
            and live.unloading is None
            and not live.dropped
            and not live.peers
            and not live.pending
            and not live.authors_new
        )

    async def drop_all(self) -> None:
        for live in list(self._rooms.values()):
            await self._drop(live)

    async def _load(self, room_id: str) -> LiveRoom:
        try:
            try:
                stored = await self._store.load(room_id)
            except StoreError as error:
                self._commit.note_store_result(ok=False)
                raise RoomUnavailable(f"could not load {room_id}: {error}") from error
            self._commit.note_store_result(ok=True)
            loaded = await _digest_of(stored.parts)
            try:
                room = DocumentRoom.from_stored(
                    room_id,
                    stored,
                    max_document_bytes=self._limits.max_document_bytes,
                    awareness_batch_s=self._limits.awareness_batch_s,
                    awareness_max_per_s=self._limits.awareness_max_per_s,
                )
            except ProtocolError as error:
                log.error("room %s: stored document does not decode: %s", room_id, error)
                raise RoomUnavailable(f"stored document {room_id} is corrupt") from error
            live = LiveRoom(room, logged_updates=len(stored.updates), loaded=loaded)
            # Registered before the hook: bus messages arriving while it subscribes find it.
            self._rooms[room_id] = live
            try:
                await self._on_loaded(live)
            except BaseException:
                self._rooms.pop(room_id, None)
                live.room.close()
                raise
            self._schedule_unload(live)
            log.debug("room %s loaded (%d logged updates)", room_id, len(stored.updates))
            return live
        finally:
            self._loading.pop(room_id, None)

    def _schedule_unload(self, live: LiveRoom) -> None:
        if live.unload_timer is not None:
            live.unload_timer.cancel()
        loop = asyncio.get_running_loop()
        live.unload_timer = loop.call_later(self._limits.grace_s, self._start_unload, live)

    def _start_unload(self, live: LiveRoom) -> None:
        live.unload_timer = None
        if live.holders == 0 and live.unloading is None and not self._closed:
            live.unloading = asyncio.create_task(self._unload(live), name=f"unload-{live.room_id}")

    async def _unload(self, live: LiveRoom) -> None:
        try:
            await self._commit.flush()
            await self._commit.compact(live)
        except StoreError as error:
            log.warning("room %s: unload postponed, store failed: %s", live.room_id, error)
            live.unloading = None
            self._schedule_unload(live)
            return
        await self._drop(live)

    async def _drop(self, live: LiveRoom) -> None:
        self._rooms.pop(live.room_id, None)
        self._commit.forget(live)
        live.dropped = True
        await self._on_dropped(live)
        live.room.close()
        log.debug("room %s unloaded", live.room_id)


async def _digest_of(parts: list[bytes]) -> bytes | None:
    """The `stored_digest` of a loaded document's parts; None for a document never stored."""
    if not parts:
        return None
    return await stored_digest_off_loop(parts)
