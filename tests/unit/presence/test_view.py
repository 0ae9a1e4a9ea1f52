"""`WorkspaceView`: re-reads and one instance's changes, applied in order or not at all."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from collab.presence.base import Changes, InstanceEntries, PresenceEntry, apply_changes
from collab.presence.snapshots import diff_snapshots, merge_instances, snapshot_json
from collab.presence.view import WorkspaceView


def entry(
    user_id: str, *notes: str, status: str | None = None, updated: float = 0.0
) -> PresenceEntry:
    return PresenceEntry(user_id, user_id.upper(), status, frozenset(notes), 1.0, updated)


def test_changes_following_the_held_write_are_applied_as_events() -> None:
    """A join, an update and a leave from one instance, each at the cost of its user."""
    view = WorkspaceView("w1", {"A": InstanceEntries(3, {"u1": entry("u1")})}, 1)
    assert view.apply("A", 3, 5, {"u2": entry("u2", "n1")}, 1) == [
        {"type": "presence.join", "workspace": "w1", "user": entry("u2", "n1").to_json()}
    ]
    assert view.apply("A", 5, 6, {"u1": entry("u1", status="away", updated=2.0)}, 1) == [
        {
            "type": "presence.update",
            "workspace": "w1",
            "user": entry("u1", status="away").to_json(),
        }
    ]
    assert view.apply("A", 6, 9, {"u2": None}, 1) == [
        {"type": "presence.leave", "workspace": "w1", "user": "u2"}
    ]
    assert set(view.snapshot) == {"u1"}


def test_changes_that_do_not_follow_the_held_write_change_nothing() -> None:
    """A missed write, a repeated one, one of an instance never read: None, and the
    view as it was (the caller re-reads)."""
    view = WorkspaceView("w1", {"A": InstanceEntries(3, {"u1": entry("u1")})}, 1)
    before = dict(view.snapshot)
    assert view.apply("A", 2, 3, {"u2": entry("u2")}, 1) is None  # repeated
    assert view.apply("A", 4, 5, {"u2": entry("u2")}, 1) is None  # 3 -> 4 missed
    assert view.apply("A", 3, 3, {"u2": entry("u2")}, 1) is None  # not a later write
    assert view.apply("B", 0, 1, {"u2": entry("u2")}, 1) is None  # never read
    assert view.snapshot == before


def test_a_user_on_two_instances_leaves_when_both_let_go() -> None:
    """Merged per user: one instance's leave is an update while the other holds the user."""
    view = WorkspaceView(
        "w1",
        {
            "A": InstanceEntries(1, {"u1": entry("u1", "n1")}),
            "B": InstanceEntries(7, {"u1": entry("u1", "n2")}),
        },
        1,
    )
    assert view.snapshot["u1"].notes == {"n1", "n2"}
    [event] = view.apply("A", 1, 2, {"u1": None}, 1) or []
    assert event["type"] == "presence.update"
    assert event["user"]["notes"] == ["n2"]
    assert view.apply("B", 7, 8, {"u1": None}, 1) == [
        {"type": "presence.leave", "workspace": "w1", "user": "u1"}
    ]
    assert view.snapshot == {}
    assert view.apply("B", 8, 9, {"u3": entry("u3")}, 1) is None  # emptied: gone, re-read


def test_a_reread_keeps_only_changes_applied_after_it_started() -> None:
    """A read that started before a change was applied does not undo it; one that
    started after takes what it found; an instance a read did not find is gone."""
    view = WorkspaceView(
        "w1",
        {
            "A": InstanceEntries(3, {"u1": entry("u1")}),
            "B": InstanceEntries(1, {"u2": entry("u2")}),
        },
        1,
    )
    assert view.apply("A", 3, 4, {"u3": entry("u3")}, 2) is not None  # read 2 under way
    events = view.replace({"A": InstanceEntries(3, {"u1": entry("u1")})}, 2)
    assert events == [{"type": "presence.leave", "workspace": "w1", "user": "u2"}]
    assert set(view.snapshot) == {"u1", "u3"}
    events = view.replace({"A": InstanceEntries(4, {"u3": entry("u3")})}, 3)
    assert events == [{"type": "presence.leave", "workspace": "w1", "user": "u1"}]


def test_an_instance_restarted_under_its_id_is_taken_from_the_next_read() -> None:
    """An instance that restarted numbers its writes anew: the next read replaces what the
    view held of it, whatever the numbers, and its changes apply from there."""
    view = WorkspaceView("w1", {"A": InstanceEntries(5000, {"u1": entry("u1")})}, 1)
    view.replace({"A": InstanceEntries(7, {"u4": entry("u4")})}, 2)
    assert set(view.snapshot) == {"u4"}
    assert view.apply("A", 7, 8, {"u5": entry("u5")}, 2) is not None
    assert set(view.snapshot) == {"u4", "u5"}


_users = st.sampled_from(["u1", "u2", "u3", "u4"])
_writes = st.lists(
    st.tuples(
        st.sampled_from(["A", "B"]),
        st.dictionaries(
            _users,
            st.none() | st.builds(entry, _users, st.sampled_from(["n1", "n2"])),
            min_size=1,
            max_size=3,
        ),
    ),
    max_size=20,
)


@given(_writes)
def test_a_view_kept_by_changes_is_the_view_of_a_reread(
    writes: list[tuple[str, dict[str, PresenceEntry | None]]],
) -> None:
    """Applying each instance's writes in order gives the snapshot a re-read would, and the
    events along the way turn the first snapshot into it."""
    stored: dict[str, InstanceEntries] = {
        "A": InstanceEntries(1, {"u1": entry("u1")}),
        "B": InstanceEntries(2, {"u2": entry("u2", "n1")}),
    }
    view = WorkspaceView("w1", stored, 1)
    replayed = dict(view.snapshot)
    seq, reads = 2, 1
    for instance_id, raw in writes:
        changes: Changes = {
            user_id: None if e is None else PresenceEntry(user_id, *_fields(e))
            for user_id, e in raw.items()
        }
        seq += 1
        held = stored.get(instance_id)
        if held is None:
            # Emptied before: the instance's next write is whole, and readers re-read.
            entries = {u: e for u, e in changes.items() if e is not None}
            if entries:
                stored[instance_id] = InstanceEntries(seq, entries)
            reads += 1
            events = view.replace(stored, reads)
        else:
            entries = dict(held.entries)
            apply_changes(entries, changes)
            if entries:
                stored[instance_id] = InstanceEntries(seq, entries)
            else:
                del stored[instance_id]
            applied = view.apply(instance_id, held.seq, seq, changes, reads)
            assert applied is not None
            events = applied
        assert events == diff_snapshots("w1", replayed, view.snapshot)
        replayed = dict(view.snapshot)
    assert view.snapshot == merge_instances(e.entries for e in stored.values())


def _fields(e: PresenceEntry) -> tuple[str | None, str | None, frozenset[str], float, float]:
    return (e.name, e.status, e.notes, e.since, e.updated)


def test_a_view_holds_the_writes_a_check_found_or_later_ones() -> None:
    """`holds` is false for a write the view missed, an instance it does not know, and
    one gone from the store; an instance changed after the check started is not judged."""
    view = WorkspaceView(
        "w1",
        {
            "A": InstanceEntries(3, {"u1": entry("u1")}),
            "B": InstanceEntries(7, {"u2": entry("u2")}),
        },
        1,
    )
    assert view.holds({"A": 3, "B": 7}, 2)
    assert not view.holds({"A": 4, "B": 7}, 2)  # a write of A missed
    assert not view.holds({"A": 3, "B": 7, "C": 1}, 2)  # C never read
    assert not view.holds({"A": 3}, 2)  # B gone (expired)
    assert view.apply("A", 3, 5, {"u3": entry("u3")}, 2) is not None  # after check 2 began
    assert view.holds({"A": 4, "B": 7}, 2)
    assert not view.holds({"A": 4, "B": 7}, 3)
    assert view.holds({"A": 5, "B": 7}, 3)
    unnumbered = WorkspaceView("w1", {"OLD": InstanceEntries(0, {"u1": entry("u1")})}, 1)
    assert not unnumbered.holds({"OLD": 0}, 2)  # an earlier version's: always re-read


def test_the_json_snapshot_is_built_once_per_change() -> None:
    """Subscribers share one JSON snapshot until the view changes; it is always the view's
    current snapshot."""
    view = WorkspaceView("w1", {"A": InstanceEntries(3, {"u1": entry("u1")})}, 1)
    first = view.shown()
    assert view.shown() is first
    assert first == snapshot_json(view.snapshot)
    assert view.apply("A", 3, 4, {"u2": entry("u2")}, 1) is not None
    second = view.shown()
    assert second is not first
    assert [user["user"] for user in second] == ["u1", "u2"]
    view.replace({"A": InstanceEntries(4, {"u2": entry("u2")})}, 2)
    assert [user["user"] for user in view.shown()] == ["u2"]
