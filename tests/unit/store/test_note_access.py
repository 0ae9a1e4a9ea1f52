"""`NoteAccess`: who may read a note, and the role its share list caps each reader at."""

from __future__ import annotations

from collab.store.catalog import CatalogEntry, NoteAccess, NoteFields, Visibility

USERS = {"u2": "editor", "u3": "viewer"}


def test_a_workspace_note_is_read_by_everyone_and_caps_no_one() -> None:
    """A workspace note's list has no effect until the note is made private."""
    access = NoteAccess(Visibility.WORKSPACE, USERS, "u1")

    for user_id in ("u1", "u2", "u3", "u9"):
        assert access.can_read(user_id)
        assert access.listed_role(user_id) is None


def test_a_private_note_is_read_by_its_creator_and_listed_users_only() -> None:
    access = NoteAccess(Visibility.PRIVATE, USERS, "u1")

    assert access.can_read("u1")
    assert access.can_read("u2")
    assert access.can_read("u3")
    assert not access.can_read("u9")


def test_a_private_note_caps_listed_users_at_their_listed_role() -> None:
    """Listed users get their role; the creator and unlisted users get no cap (None)."""
    access = NoteAccess(Visibility.PRIVATE, USERS, "u1")

    assert access.listed_role("u2") == "editor"
    assert access.listed_role("u3") == "viewer"
    assert access.listed_role("u1") is None
    assert access.listed_role("u9") is None


def test_a_creator_listed_on_their_own_note_is_not_capped() -> None:
    access = NoteAccess(Visibility.PRIVATE, {"u1": "viewer"}, "u1")

    assert access.listed_role("u1") is None


def test_a_private_note_without_a_creator_is_read_by_its_list_only() -> None:
    """A note indexed from another instance's change may have no creator recorded."""
    access = NoteAccess(Visibility.PRIVATE, USERS, None)

    assert access.can_read("u2")
    assert not access.can_read("u1")


def test_an_entry_names_its_visibility_in_json() -> None:
    entry = CatalogEntry("w1", "n1", NoteFields(), "t", "u1", "t", "u1")

    assert entry.to_json()["visibility"] == "workspace"
    private = CatalogEntry("w1", "n1", NoteFields(), "t", "u1", "t", "u1", None, Visibility.PRIVATE)
    assert private.to_json()["visibility"] == "private"
