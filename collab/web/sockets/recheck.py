"""Open document connections re-decided after their user's role or their note's access
changed (`recheck_connections`): a connection whose user may no longer read its note closes
with 4403, the others write or not by their role now, and a private note leaves presence.

Run on every instance: after an owner's directory decision (`web/api/members.py`), after a
note's access changed (`NotesCatalog`'s access listener), and after an in-band token refresh.
"""

from __future__ import annotations

import logging

from aiohttp import web

from collab.auth.tokens import Role
from collab.errors import ForbiddenError, RoomUnavailable
from collab.protocol.close_codes import CloseCode
from collab.rooms.directory import MemberDirectory
from collab.store.catalog import NoteAccess, room_parts
from collab.tasks import spawn
from collab.web.keys import CATALOG, DIRECTORY, PRESENCE, SESSIONS
from collab.web.sockets.sessions import TokenSession

log = logging.getLogger(__name__)

ACCESS_WITHDRAWN_REASON = "access to this note was withdrawn"


def recheck_connections(app: web.Application, room_ids: list[str]) -> None:
    """Re-decide every document connection to these notes by the member
    directory and the notes' access, off the caller's path: a connection whose user may no
    longer read its note closes with 4403, the others write or not by their role now.

    A role that no longer writes stops the connection's writes before this returns: the
    note's access, read from the catalog afterwards, can only narrow the role further, and
    a frame arriving meanwhile must not pass where a request to the same instance is
    already refused. Writes come back only after that read."""
    sessions = app[SESSIONS].in_rooms(set(room_ids))
    if not sessions:
        return
    directory = app[DIRECTORY]
    for session in sessions:
        if session.peer.can_write:
            role = _role_by_directory(directory, session)
            if role is not None and not role.can_write:
                session.peer.can_write = False
    spawn(_recheck(app, sessions), name="recheck-connections")


async def recheck_session(app: web.Application, session: TokenSession) -> None:
    """`recheck_connections` of one connection, awaited (after an in-band token refresh set
    its role from the token and the directory alone)."""
    await _recheck(app, [session])


async def _recheck(app: web.Application, sessions: list[TokenSession]) -> None:
    catalog, directory = app[CATALOG], app[DIRECTORY]
    for session in sessions:
        room_id = session.room_id
        if room_id is None or session.peer.closing:
            continue
        role = _role_by_directory(directory, session)
        if role is None:
            continue
        try:
            on_note, access = await catalog.role_on(room_id, session.user_id, role)
        except RoomUnavailable as error:
            # Left as it was (a store outage is no reason to widen or close access).
            log.warning("conn %s not re-checked: %s", session.peer.peer_id, error)
            continue
        if on_note is None:
            log.info(
                "conn %s: %s; closing with %d",
                session.peer.peer_id,
                ACCESS_WITHDRAWN_REASON,
                CloseCode.FORBIDDEN,
            )
            session.peer.request_close(CloseCode.FORBIDDEN, ACCESS_WITHDRAWN_REASON)
        else:
            session.peer.can_write = on_note.can_write
            _show_in_presence(app, session, access)


def _role_by_directory(directory: MemberDirectory, session: TokenSession) -> Role | None:
    """The session's role in its note's workspace by the member directory; None for a
    member removed from it (the directory closes those) or a session without a note."""
    if session.room_id is None:
        return None
    try:
        return directory.role(session.identity, room_parts(session.room_id)[0])
    except ForbiddenError:
        return None


def _show_in_presence(
    app: web.Application, session: TokenSession, access: NoteAccess | None
) -> None:
    """A private note leaves its readers' presence (which the whole workspace sees); a note
    back in the workspace comes back."""
    presence, peer_id = app[PRESENCE], session.peer.peer_id
    if access is not None and access.readers() is not None:
        presence.close_note(peer_id)
        return
    workspace_id, note_id = room_parts(session.room_id or "")
    try:
        presence.open_note(peer_id, session.user_id, session.identity.name, workspace_id, note_id)
    except ValueError:
        pass  # shown already
