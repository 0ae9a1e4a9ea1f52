"""Generated note ids follow the id rule every endpoint checks."""

from __future__ import annotations

from collab.web.http.requests import NEW_NOTE_ID_CHARS, new_note_id, valid_id


def test_every_generated_id_is_a_valid_id_and_new() -> None:
    # With `secrets.token_urlsafe`, one id in 32 started with `-` or `_` and was refused by
    # the rule: among 5,000, some would.
    ids = [new_note_id() for _ in range(5000)]
    for note_id in ids:
        assert valid_id("note", note_id) == note_id
        assert len(note_id) == NEW_NOTE_ID_CHARS
    assert len(set(ids)) == len(ids)
