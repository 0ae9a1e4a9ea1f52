"""Merging the instances' entries, and the events between two snapshots."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from collab.presence.base import PresenceEntry, merge_entries
from collab.presence.snapshots import (
    PresenceEvent,
    diff_snapshots,
    merge_instances,
    snapshot_json,
)


def entry(
    user_id: str = "u1",
    *,
    name: str | None = "Ann",
    status: str | None = None,
    notes: frozenset[str] = frozenset(),
    since: float = 100.0,
    updated: float = 0.0,
) -> PresenceEntry:
    return PresenceEntry(user_id, name, status, notes, since, updated)


def test_merge_unites_notes_and_keeps_the_earliest_since() -> None:
    """One user on two instances: all notes, the first arrival."""
    merged = merge_entries(
        [entry(notes=frozenset({"n1"}), since=200.0), entry(notes=frozenset({"n2"}), since=150.0)]
    )
    assert merged.notes == {"n1", "n2"}
    assert merged.since == 150.0


def test_merge_takes_name_and_status_from_the_latest_update() -> None:
    """The most recently updated entry decides the name and the status."""
    older = entry(name="Ann", status="busy", updated=10.0)
    newer = entry(name="Ann B.", status=None, updated=20.0)
    for order in ([older, newer], [newer, older]):
        merged = merge_entries(order)
        assert (merged.name, merged.status, merged.updated) == ("Ann B.", None, 20.0)


def test_a_status_set_on_one_instance_survives_notes_opened_on_another() -> None:
    """An entry that never changed name or status (updated 0.0) loses to one that did."""
    with_status = entry(status="busy", updated=50.0)
    with_note = entry(notes=frozenset({"n1"}), since=300.0)
    merged = merge_instances([{"u1": with_status}, {"u1": with_note}])["u1"]
    assert merged.status == "busy"
    assert merged.notes == {"n1"}


def test_merge_instances_counts_each_user_once() -> None:
    """Users of several instances are merged per user id."""
    merged = merge_instances(
        [{"u1": entry("u1"), "u2": entry("u2")}, {"u1": entry("u1", notes=frozenset({"n"}))}]
    )
    assert set(merged) == {"u1", "u2"}
    assert merged["u1"].notes == {"n"}


def test_snapshot_json_is_ordered_by_user() -> None:
    """The JSON snapshot lists users sorted by id, without `updated`."""
    users = snapshot_json({"u2": entry("u2"), "u1": entry("u1", notes=frozenset({"b", "a"}))})
    assert [user["user"] for user in users] == ["u1", "u2"]
    assert users[0] == {"user": "u1", "name": "Ann", "status": None, "notes": ["a", "b"],
                        "since": 100.0}  # fmt: skip


def test_diff_reports_joins_leaves_and_updates() -> None:
    """A new user joins, a gone one leaves, a changed one updates; the rest is silent."""
    before = {"stay": entry("stay"), "go": entry("go"), "change": entry("change")}
    after = {
        "stay": entry("stay", updated=99.0),
        "change": entry("change", status="busy"),
        "come": entry("come"),
    }
    assert diff_snapshots("w1", before, after) == [
        {"type": "presence.update", "workspace": "w1", "user": after["change"].to_json()},
        {"type": "presence.join", "workspace": "w1", "user": after["come"].to_json()},
        {"type": "presence.leave", "workspace": "w1", "user": "go"},
    ]


def test_diff_of_equal_snapshots_is_empty() -> None:
    """No change, no event."""
    snapshot = {"u1": entry()}
    assert diff_snapshots("w1", snapshot, dict(snapshot)) == []


def apply(view: dict[str, dict[str, Any]], events: list[PresenceEvent]) -> None:
    for event in events:
        if event["type"] == "presence.leave":
            assert event["user"] in view
            del view[event["user"]]
        else:
            user = event["user"]
            assert (user["user"] in view) == (event["type"] == "presence.update")
            view[user["user"]] = user


entries = st.builds(
    entry,
    st.sampled_from(["u1", "u2", "u3", "u4"]),
    name=st.sampled_from([None, "Ann", "Bob"]),
    status=st.sampled_from([None, "busy", "away"]),
    notes=st.frozensets(st.sampled_from(["n1", "n2", "n3"])),
    since=st.sampled_from([1.0, 2.0]),
)
snapshots = st.lists(entries).map(lambda es: {e.user_id: e for e in es})


@given(snapshots, snapshots)
def test_applying_the_diff_to_a_view_of_before_gives_a_view_of_after(
    before: dict[str, PresenceEntry], after: dict[str, PresenceEntry]
) -> None:
    """A subscriber that applies the events to its snapshot sees exactly the new one."""
    view = {user["user"]: user for user in snapshot_json(before)}
    apply(view, diff_snapshots("w1", before, after))
    assert view == {user["user"]: user for user in snapshot_json(after)}
