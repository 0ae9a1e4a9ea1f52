"""`LocalPresence`: this instance's own connections and the presence entries they make.

Pure bookkeeping, no I/O. Two kinds of connection make a user present in a workspace: a live
connection (the live channel) once it joins the workspace, and a document connection, which
also puts its note into the user's entry. A user is present while any of their connections
is, and counts once however many they have.

Every mutation returns the ids of the workspaces whose entries it may have changed: the caller
passes each to `PresenceService.changed`. Per workspace it also notes which users' entries it
may have changed, until `take_changed`: the service writes those, not the whole workspace.

`PresenceEntry.updated` is the time of the last change of the user's name or status here, or
0.0 when neither changed since the user arrived: it decides whose name and status win when the
instances' entries are merged, so an instance where the user merely opened a tab or a note
never overrides a status set on another.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from collab import few
from collab.presence.base import MAX_STATUS_CHARS, PresenceEntry

# The entries of every user with one note open (most of them) share their `notes`; the entries
# live on as long as the users stay, in what this instance last wrote to the store.
_ONE_NOTE_SETS = 4096


@dataclass(slots=True)
class _Connection:
    user_id: str
    workspace_ids: few.Few[str]
    note_id: str | None = None
    """The note of a document connection (in its one workspace)."""


@dataclass(slots=True)
class _User:
    name: str | None
    name_changed_at: float = 0.0
    # Only whether any is left matters; connection ids are unique (see `_add_connection`).
    connections: int = 0


@dataclass(slots=True)
class _Member:
    """A user present in a workspace."""

    since: float
    connection_ids: few.Few[str] = None
    status: str | None = None
    status_changed_at: float = 0.0


class LocalPresence:
    """The presence of the users connected to this instance, per workspace."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._connections: dict[str, _Connection] = {}
        self._users: dict[str, _User] = {}
        self._members: dict[str, dict[str, _Member]] = {}
        self._changed: dict[str, set[str]] = {}
        """Per workspace, the users whose entries may have changed since `take_changed`."""

    # -- live connections ------------------------------------------------------------------

    def connect(self, conn_id: str, user_id: str, name: str | None) -> frozenset[str]:
        """Register a live connection (present nowhere until it joins a workspace). Raises
        ValueError if `conn_id` is taken."""
        return self._add_connection(conn_id, user_id, name, None)

    def disconnect(self, conn_id: str) -> frozenset[str]:
        """Forget a connection of either kind. Unknown ids are ignored."""
        connection = self._connections.pop(conn_id, None)
        if connection is None:
            return frozenset()
        changed = frozenset(few.members(connection.workspace_ids))
        for workspace_id in changed:
            self._remove_from(workspace_id, conn_id, connection.user_id)
        user = self._users[connection.user_id]
        user.connections -= 1
        if not user.connections:
            del self._users[connection.user_id]
        return changed

    def join_workspace(self, conn_id: str, workspace_id: str) -> frozenset[str]:
        """Make the live connection's user present in the workspace. Raises KeyError for an
        unknown connection."""
        connection = self._connections[conn_id]
        if workspace_id in few.members(connection.workspace_ids):
            return frozenset()
        connection.workspace_ids = few.with_member(connection.workspace_ids, workspace_id)
        self._add_to(workspace_id, conn_id, connection.user_id)
        return frozenset({workspace_id})

    def leave_workspace(self, conn_id: str, workspace_id: str) -> frozenset[str]:
        """Undo `join_workspace`. Unknown connections and workspaces are ignored."""
        connection = self._connections.get(conn_id)
        if connection is None or connection.note_id is not None:
            return frozenset()
        if workspace_id not in few.members(connection.workspace_ids):
            return frozenset()
        connection.workspace_ids = few.without_member(connection.workspace_ids, workspace_id)
        self._remove_from(workspace_id, conn_id, connection.user_id)
        return frozenset({workspace_id})

    def set_status(self, conn_id: str, workspace_id: str, status: str | None) -> frozenset[str]:
        """Set (None: clear) the status of the connection's user in the workspace, where the
        user must be present; it lasts while they stay present there. Raises KeyError for an
        unknown connection, and ValueError for a status over `MAX_STATUS_CHARS` or a
        workspace the user is not present in."""
        if status is not None and len(status) > MAX_STATUS_CHARS:
            raise ValueError(
                f"a status has at most {MAX_STATUS_CHARS} characters, not {len(status)}"
            )
        user_id = self._connections[conn_id].user_id
        member = self._members.get(workspace_id, {}).get(user_id)
        if member is None:
            raise ValueError(f"user {user_id!r} is not present in workspace {workspace_id!r}")
        if member.status == status:
            return frozenset()
        member.status = status
        member.status_changed_at = self._clock()
        self._mark(workspace_id, user_id)
        return frozenset({workspace_id})

    # -- document connections --------------------------------------------------------------

    def open_note(
        self, conn_id: str, user_id: str, name: str | None, workspace_id: str, note_id: str
    ) -> frozenset[str]:
        """Register a document connection to a note: its user is present in the workspace
        with the note open. Raises ValueError if `conn_id` is taken."""
        return self._add_connection(conn_id, user_id, name, workspace_id, note_id)

    def close_note(self, conn_id: str) -> frozenset[str]:
        """Forget a document connection (the same as `disconnect`)."""
        return self.disconnect(conn_id)

    # -- reading ---------------------------------------------------------------------------

    def entries(self, workspace_id: str) -> dict[str, PresenceEntry]:
        """This instance's entry of every user present in the workspace, by user id."""
        members = self._members.get(workspace_id, {})
        return {user_id: self._entry(user_id, member) for user_id, member in members.items()}

    def entry(self, workspace_id: str, user_id: str) -> PresenceEntry | None:
        """This instance's entry of the user in the workspace; None when not present."""
        member = self._members.get(workspace_id, {}).get(user_id)
        return None if member is None else self._entry(user_id, member)

    def take_changed(self, workspace_id: str) -> set[str]:
        """The users whose entries in the workspace may have changed since the last call
        (present or not now), and forget them."""
        return self._changed.pop(workspace_id, set())

    def workspaces(self) -> frozenset[str]:
        """The workspaces where some user is present through this instance."""
        return frozenset(self._members)

    def is_connected(self, user_id: str) -> bool:
        """Whether the user has a connection of either kind here, in a workspace or not."""
        return user_id in self._users

    # -- internals -------------------------------------------------------------------------

    def _add_connection(
        self,
        conn_id: str,
        user_id: str,
        name: str | None,
        workspace_ids: few.Few[str],
        note_id: str | None = None,
    ) -> frozenset[str]:
        if conn_id in self._connections:
            raise ValueError(f"connection {conn_id!r} is already registered")
        changed: set[str] = set()
        user = self._users.get(user_id)
        if user is None:
            user = self._users[user_id] = _User(name)
        elif user.name != name:
            # The newest connection's name is the user's: it comes from their newest token.
            user.name = name
            user.name_changed_at = self._clock()
            for workspace_id, members in self._members.items():
                if user_id in members:
                    changed.add(workspace_id)
                    self._mark(workspace_id, user_id)
        user.connections += 1
        self._connections[conn_id] = _Connection(user_id, workspace_ids, note_id)
        for workspace_id in few.members(workspace_ids):
            self._add_to(workspace_id, conn_id, user_id)
        changed.update(few.members(workspace_ids))
        return frozenset(changed)

    def _add_to(self, workspace_id: str, conn_id: str, user_id: str) -> None:
        members = self._members.setdefault(workspace_id, {})
        member = members.get(user_id)
        if member is None:
            member = members[user_id] = _Member(since=self._clock())
        member.connection_ids = few.with_member(member.connection_ids, conn_id)
        self._mark(workspace_id, user_id)

    def _remove_from(self, workspace_id: str, conn_id: str, user_id: str) -> None:
        members = self._members[workspace_id]
        member = members[user_id]
        member.connection_ids = few.without_member(member.connection_ids, conn_id)
        self._mark(workspace_id, user_id)
        if member.connection_ids is not None:
            return
        del members[user_id]
        if not members:
            del self._members[workspace_id]

    def _mark(self, workspace_id: str, user_id: str) -> None:
        changed = self._changed.get(workspace_id)
        if changed is None:
            self._changed[workspace_id] = {user_id}
        else:
            changed.add(user_id)

    def _entry(self, user_id: str, member: _Member) -> PresenceEntry:
        user = self._users[user_id]
        note_ids = [
            note_id
            for conn_id in few.members(member.connection_ids)
            if (note_id := self._connections[conn_id].note_id) is not None
        ]
        return PresenceEntry(
            user_id=user_id,
            name=user.name,
            status=member.status,
            notes=_notes(note_ids),
            since=member.since,
            updated=max(member.status_changed_at, user.name_changed_at),
        )


_NO_NOTES: frozenset[str] = frozenset()


def _notes(note_ids: list[str]) -> frozenset[str]:
    if not note_ids:
        return _NO_NOTES
    return _one_note(note_ids[0]) if len(note_ids) == 1 else frozenset(note_ids)


@lru_cache(maxsize=_ONE_NOTE_SETS)
def _one_note(note_id: str) -> frozenset[str]:
    return frozenset((note_id,))
