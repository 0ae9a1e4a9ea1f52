"""A user's role on one note (`note_role`): the least of their workspace role (the token's, as
the member directory caps it) and what the note's access allows.

Pure: the caller has the workspace role (`MemberDirectory.role`) and the note's access
(`CatalogStore.get_access`, None for a note with no catalog row yet: one never edited, which
every member of the workspace may open and so create).

| note | user | role on the note |
|---|---|---|
| no row yet, or `workspace` | any member | their workspace role |
| `private` | its creator | their workspace role |
| `private` | listed as editor / viewer | the lesser of that and their workspace role |
| `private` | anyone else (workspace owners included) | none: the note is not found |
"""

from __future__ import annotations

from collab.auth.tokens import Role
from collab.store.catalog import NoteAccess


def note_role(workspace_role: Role, access: NoteAccess | None, user_id: str) -> Role | None:
    """The user's role on the note, or None when the note does not let them read it."""
    if access is None:
        return workspace_role
    if not access.can_read(user_id):
        return None
    listed = access.listed_role(user_id)
    return workspace_role.capped(None if listed is None else Role(listed))
