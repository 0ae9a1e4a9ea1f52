"""`note_role`: the least of the workspace role and what the note's access allows."""

from __future__ import annotations

import pytest

from collab.auth.tokens import Role
from collab.rooms.access import note_role
from collab.store.catalog import NoteAccess, Visibility

PRIVATE = NoteAccess(Visibility.PRIVATE, {"ed": "editor", "vi": "viewer"}, created_by="me")
WORKSPACE = NoteAccess(Visibility.WORKSPACE, {"vi": "viewer"}, created_by="me")


@pytest.mark.parametrize(
    ("role", "access", "user", "expected"),
    [
        (Role.EDITOR, None, "anyone", Role.EDITOR),  # no row yet: open to the workspace
        (Role.VIEWER, WORKSPACE, "vi", Role.VIEWER),
        (Role.EDITOR, WORKSPACE, "vi", Role.EDITOR),  # a list has no effect until private
        (Role.OWNER, WORKSPACE, "x", Role.OWNER),
        (Role.EDITOR, PRIVATE, "me", Role.EDITOR),
        (Role.VIEWER, PRIVATE, "me", Role.VIEWER),  # the creator keeps their workspace role
        (Role.OWNER, PRIVATE, "ed", Role.EDITOR),
        (Role.VIEWER, PRIVATE, "ed", Role.VIEWER),  # never above the workspace role
        (Role.EDITOR, PRIVATE, "vi", Role.VIEWER),
        (Role.EDITOR, PRIVATE, "x", None),
        (Role.OWNER, PRIVATE, "x", None),  # workspace owners included
    ],
)
def test_the_role_on_a_note(
    role: Role, access: NoteAccess | None, user: str, expected: Role | None
) -> None:
    assert note_role(role, access, user) is expected
