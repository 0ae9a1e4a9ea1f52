"""The workspaces' member directories as every instance enforces them (`MemberDirectory`).

A token says which workspaces a user has a role in; the directory is what the workspace's
owners decided on top of it, and who has been seen:

- **Seen.** Every authenticated request and connection records its user as a member of each
  workspace the token grants a role in, with the token's display name, email and role (`seen`):
  written on first sight on each instance, then at most once per `seen_interval_s` per member
  while nothing changes, so `last_seen_at` is exact to that interval.
- **Managed.** An owner provisions or changes a member (`put`: a role, a name, an email) or
  removes one (`remove`). A role an owner assigned caps the token's; a removed member is
  refused in the workspace (403, `ForbiddenError`) whatever their token says, until put back.

Requests are checked against memory, not the store: each instance keeps every managed row
(few: owners' decisions, not every member), loaded at start, kept current by the bus room
`DIRECTORY_ROOM` on which each decision is published after it is stored, and reloaded whenever
the bus may have lost messages. `on_change` is told of each decision (from this instance or
another) so the web layer applies it to open connections at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeGuard

import orjson

from collab.auth.tokens import Identity, Role
from collab.bus.base import Bus
from collab.errors import ForbiddenError, StoreError
from collab.rooms.note_fields import CONTROL_CHARACTERS
from collab.store.members import MAX_MEMBER_NAME_CHARS, Member, MemberStore, SeenMember
from collab.store.rows import format_timestamp
from collab.tasks import cancel_and_wait

log = logging.getLogger(__name__)

DIRECTORY_ROOM = "admin:members"
MAX_USER_ID_CHARS = 256
"""The longest user id the server keeps (members, revocations)."""
# Workspaces recorded per authentication: a token naming thousands costs no more.
MAX_WORKSPACES_RECORDED = 32
# Members whose last recording this instance remembers (oldest forgotten first).
MAX_REMEMBERED = 100_000


@dataclass(frozen=True, slots=True)
class MemberChange:
    """An owner's decision about one member, as `on_change` is told of it: `role` is the
    assigned role (None: none), `removed` whether the member is now removed."""

    workspace_id: str
    user_id: str
    role: Role | None
    removed: bool


ChangeListener = Callable[[MemberChange], None]
_Recorded = tuple[str | None, str | None, Role, float]
"""A member's name and email as a token gave them, their role, and when they were recorded."""


class MemberDirectory:
    def __init__(
        self,
        store: MemberStore,
        bus: Bus,
        *,
        on_change: ChangeListener,
        seen_interval_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._bus = bus
        self._on_change = on_change
        self._seen_interval_s = seen_interval_s
        self._clock = clock
        # (workspace, user) -> the decision in force: assigned role (None) and removal.
        self._managed: dict[tuple[str, str], MemberChange] = {}
        # (workspace, user) -> (name, email, role, when written): what was last recorded (one
        # flat tuple: one is kept for every member seen).
        self._recorded: dict[tuple[str, str], _Recorded] = {}
        self._reload_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Load the managed members, then follow the bus. Raises `StoreError`."""
        await self._reload()
        await self._bus.subscribe(DIRECTORY_ROOM, self._on_message, self._on_resync)

    async def close(self) -> None:
        await cancel_and_wait([self._reload_task])
        await self._bus.unsubscribe(DIRECTORY_ROOM)

    # -- checks ------------------------------------------------------------------------------

    def role(self, identity: Identity, workspace_id: str) -> Role:
        """The user's role in the workspace: the token's, capped by a role an owner assigned.
        Raises `ForbiddenError` when the token grants none or an owner removed the user."""
        role = identity.role_in(workspace_id)
        decision = self._managed.get((workspace_id, identity.user_id))
        if decision is None:
            return role
        if decision.removed:
            raise ForbiddenError(
                f"user {identity.user_id!r} was removed from workspace {workspace_id!r}; "
                "an owner can add them back"
            )
        return role.capped(decision.role)

    def is_removed(self, workspace_id: str, user_id: str) -> bool:
        decision = self._managed.get((workspace_id, user_id))
        return decision is not None and decision.removed

    # -- seen --------------------------------------------------------------------------------

    async def seen(self, identity: Identity) -> None:
        """Record the user as a member of each workspace their token grants a role in (at
        most MAX_WORKSPACES_RECORDED): written on first sight on this instance, and again
        when their name, email or role changed or `seen_interval_s` passed. A store failure is
        logged, never raised: the request goes on, and the next one records it."""
        await self._record(identity, list(identity.workspaces.items())[:MAX_WORKSPACES_RECORDED])

    async def seen_in(self, identity: Identity, workspace_id: str) -> None:
        """`seen` for one workspace the request names (a document's, a live subscription's),
        when the token grants a role there: also one past the MAX_WORKSPACES_RECORDED that
        `seen` takes. One lookup when it is recorded already."""
        role = identity.workspaces.get(workspace_id)
        if role is not None:
            await self._record(identity, [(workspace_id, role)])

    async def _record(self, identity: Identity, granted: list[tuple[str, Role]]) -> None:
        if not is_user_id(identity.user_id):
            return  # an id no member can have (the directory's API refuses it too)
        name = _listed_name(identity.name)
        now = self._clock()
        at: str | None = None
        batch: list[SeenMember] = []
        for workspace_id, role in granted:
            key = (workspace_id, identity.user_id)
            if self.is_removed(*key):
                continue
            last = self._recorded.get(key)
            if (
                last is not None
                and last[0] == name
                and last[1] == identity.email
                and last[2] is role
                and now - last[3] < self._seen_interval_s
            ):
                continue
            at = at or format_timestamp()
            batch.append(
                SeenMember(workspace_id, identity.user_id, name, role.value, at, identity.email)
            )
        if not batch:
            return
        try:
            await self._store.record_seen(batch)
        except StoreError as error:
            log.warning("could not record %s as a member: %s", identity.user_id, error)
            return
        for seen in batch:
            recorded = (name, identity.email, Role(seen.role), now)
            self._remember((seen.workspace_id, seen.user_id), recorded)

    def _remember(self, key: tuple[str, str], value: _Recorded) -> None:
        self._recorded.pop(key, None)
        self._recorded[key] = value
        if len(self._recorded) > MAX_REMEMBERED:
            del self._recorded[next(iter(self._recorded))]

    # -- owners' decisions -------------------------------------------------------------------

    async def put(
        self,
        workspace_id: str,
        user_id: str,
        *,
        role: Role,
        name: str | None,
        email: str | None,
    ) -> tuple[Member, bool]:
        """Provision or change a member (see `MemberStore.put_member`), then apply it on
        every instance. Raises `StoreError` (then nothing is applied)."""
        member, added = await self._store.put_member(
            workspace_id, user_id, role=role.value, name=name, email=email, at=format_timestamp()
        )
        self._decided(MemberChange(workspace_id, user_id, role, removed=False))
        return member, added

    async def remove(self, workspace_id: str, user_id: str) -> Member | None:
        """Remove an active member, then apply it on every instance (their connections in
        the workspace close, their requests there are refused). None if the user was not an
        active member. Raises `StoreError` (then nothing is applied)."""
        member = await self._store.remove_member(workspace_id, user_id, at=format_timestamp())
        if member is None:
            return None
        role = Role(member.assigned_role) if member.assigned_role else None
        self._decided(MemberChange(workspace_id, user_id, role, removed=True))
        return member

    async def non_members(self, workspace_id: str, user_ids: Sequence[str]) -> list[str]:
        """Those of `user_ids` who are not active members (`MemberStore.non_members`)."""
        return await self._store.non_members(workspace_id, user_ids)

    async def get(self, workspace_id: str, user_id: str) -> Member | None:
        return await self._store.get_member(workspace_id, user_id)

    async def list_members(
        self, workspace_id: str, *, prefix: str, after: str, limit: int
    ) -> Sequence[Member]:
        return await self._store.list_members(workspace_id, prefix=prefix, after=after, limit=limit)

    def _decided(self, change: MemberChange) -> None:
        self._bus.publish(
            DIRECTORY_ROOM,
            orjson.dumps(
                {
                    "workspace": change.workspace_id,
                    "user": change.user_id,
                    "role": None if change.role is None else change.role.value,
                    "removed": change.removed,
                }
            ),
        )
        self._apply(change)

    def _apply(self, change: MemberChange) -> None:
        key = (change.workspace_id, change.user_id)
        if self._managed.get(key) == change:
            return
        if change.role is None and not change.removed:
            self._managed.pop(key, None)
        else:
            self._managed[key] = change
        if change.removed:
            self._recorded.pop(key, None)
        try:
            self._on_change(change)
        except Exception:
            log.exception("applying the directory change of %s in %s failed", *key[::-1])

    def _on_message(self, room_id: str, frame: bytes) -> None:
        try:
            message = orjson.loads(frame)
            change = MemberChange(
                _string(message["workspace"]),
                _string(message["user"]),
                None if message["role"] is None else Role(message["role"]),
                message["removed"] is True,
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("dropped an invalid directory message from the bus: %r", frame[:100])
            return
        self._apply(change)

    def _on_resync(self, room_id: str) -> None:
        # Messages may have been lost: the store has every decision.
        if self._reload_task is None or self._reload_task.done():
            self._reload_task = asyncio.create_task(self._reload_logged(), name="directory")

    async def _reload_logged(self) -> None:
        try:
            await self._reload()
        except StoreError as error:
            log.error("the member directory could not be reloaded: %s", error)

    async def _reload(self) -> None:
        managed = await self._store.managed_members()
        decisions = {
            (m.workspace_id, m.user_id): MemberChange(
                m.workspace_id,
                m.user_id,
                Role(m.assigned_role) if m.assigned_role else None,
                m.removed_at is not None,
            )
            for m in managed
        }
        # Decisions no longer in force (a member put back without a role while the bus was
        # away) are applied as lifted; those in force are applied (closing what they close).
        for key, old in list(self._managed.items()):
            if key not in decisions:
                self._apply(MemberChange(old.workspace_id, old.user_id, None, removed=False))
        for change in decisions.values():
            self._apply(change)


def has_control_characters(text: str) -> bool:
    """Whether `text` holds characters no user id, name or email of the directory may."""
    return CONTROL_CHARACTERS.search(text) is not None


def is_user_id(value: object) -> TypeGuard[str]:
    """Whether `value` can be a member's user id: 1 to MAX_USER_ID_CHARS characters, none a
    control character. What every request naming a user is checked against."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_USER_ID_CHARS
        and not has_control_characters(value)
    )


def _listed_name(name: str | None) -> str | None:
    """A token's display name as the directory lists it: control characters as spaces, at
    most MAX_MEMBER_NAME_CHARS, None when nothing is left."""
    if name is None:
        return None
    cleaned = " ".join(CONTROL_CHARACTERS.sub(" ", name[: MAX_MEMBER_NAME_CHARS * 2]).split())
    return cleaned[:MAX_MEMBER_NAME_CHARS] or None


def _string(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError("expected a non-empty string")
    return value
