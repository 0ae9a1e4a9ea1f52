"""`LocalPresence`: one instance's connections turned into presence entries, with no I/O."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from collab.presence.base import MAX_STATUS_CHARS, PresenceEntry, apply_changes
from collab.presence.registry import LocalPresence


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def local(clock: FakeClock) -> LocalPresence:
    return LocalPresence(clock)


def test_a_live_connection_is_present_only_in_workspaces_it_joined(local: LocalPresence) -> None:
    """Connecting alone makes no presence; joining a workspace does, there only."""
    assert local.connect("c1", "u1", "Ann") == frozenset()
    assert local.workspaces() == frozenset()
    assert local.join_workspace("c1", "w1") == {"w1"}
    assert local.workspaces() == {"w1"}
    assert set(local.entries("w1")) == {"u1"}
    assert local.entries("w2") == {}


def test_several_tabs_of_a_user_count_once(local: LocalPresence) -> None:
    """Two live connections of one user in one workspace make one entry."""
    for conn_id in ("c1", "c2"):
        local.connect(conn_id, "u1", "Ann")
        local.join_workspace(conn_id, "w1")
    entries = local.entries("w1")
    assert list(entries) == ["u1"]
    assert entries["u1"].name == "Ann"


def test_notes_of_document_connections_are_united(local: LocalPresence) -> None:
    """A user's entry lists the notes of all their document connections, each once."""
    local.connect("live", "u1", "Ann")
    local.join_workspace("live", "w1")
    local.open_note("d1", "u1", "Ann", "w1", "n1")
    local.open_note("d2", "u1", "Ann", "w1", "n2")
    local.open_note("d3", "u1", "Ann", "w1", "n2")
    assert local.entries("w1")["u1"].notes == {"n1", "n2"}
    local.close_note("d2")
    assert local.entries("w1")["u1"].notes == {"n1", "n2"}
    local.close_note("d3")
    assert local.entries("w1")["u1"].notes == {"n1"}


def test_a_document_connection_alone_makes_the_user_present(local: LocalPresence) -> None:
    """With no live connection, a note open in a workspace puts the user there."""
    assert local.open_note("d1", "u1", "Ann", "w1", "n1") == {"w1"}
    entry = local.entries("w1")["u1"]
    assert entry.notes == {"n1"}
    assert entry.name == "Ann"
    assert local.close_note("d1") == {"w1"}
    assert local.entries("w1") == {}
    assert local.workspaces() == frozenset()


def test_notes_stay_in_their_own_workspace(local: LocalPresence) -> None:
    """A note open in one workspace does not appear in the user's entry of another."""
    local.open_note("d1", "u1", "Ann", "w1", "n1")
    local.open_note("d2", "u1", "Ann", "w2", "n9")
    assert local.entries("w1")["u1"].notes == {"n1"}
    assert local.entries("w2")["u1"].notes == {"n9"}


def test_disconnecting_the_last_connection_removes_the_user(local: LocalPresence) -> None:
    """The user stays while any connection does, and goes with the last one."""
    local.connect("c1", "u1", "Ann")
    local.join_workspace("c1", "w1")
    local.open_note("d1", "u1", "Ann", "w1", "n1")
    assert local.disconnect("c1") == {"w1"}
    assert set(local.entries("w1")) == {"u1"}
    assert local.disconnect("d1") == {"w1"}
    assert local.entries("w1") == {}
    assert local.workspaces() == frozenset()


def test_disconnect_returns_every_workspace_the_connection_was_in(local: LocalPresence) -> None:
    """A live connection in two workspaces changes both when it goes."""
    local.connect("c1", "u1", "Ann")
    local.join_workspace("c1", "w1")
    local.join_workspace("c1", "w2")
    assert local.disconnect("c1") == {"w1", "w2"}
    assert local.disconnect("c1") == frozenset()


def test_leaving_a_workspace_keeps_the_others(local: LocalPresence) -> None:
    """`leave_workspace` removes presence in that workspace only, and is idempotent."""
    local.connect("c1", "u1", "Ann")
    local.join_workspace("c1", "w1")
    local.join_workspace("c1", "w2")
    assert local.leave_workspace("c1", "w1") == {"w1"}
    assert local.leave_workspace("c1", "w1") == frozenset()
    assert local.workspaces() == {"w2"}


def test_status_is_per_workspace(local: LocalPresence, clock: FakeClock) -> None:
    """A status set in one workspace is not the user's status in another."""
    local.connect("c1", "u1", "Ann")
    local.join_workspace("c1", "w1")
    local.join_workspace("c1", "w2")
    clock.now = 1005.0
    assert local.set_status("c1", "w1", "in a meeting") == {"w1"}
    assert local.entries("w1")["u1"].status == "in a meeting"
    assert local.entries("w1")["u1"].updated == 1005.0
    assert local.entries("w2")["u1"].status is None


def test_status_is_shared_by_the_users_connections(local: LocalPresence) -> None:
    """A status set through one tab is the user's, and clearing it through another works."""
    for conn_id in ("c1", "c2"):
        local.connect(conn_id, "u1", "Ann")
        local.join_workspace(conn_id, "w1")
    local.set_status("c1", "w1", "busy")
    local.disconnect("c1")
    assert local.entries("w1")["u1"].status == "busy"
    assert local.set_status("c2", "w1", None) == {"w1"}
    assert local.entries("w1")["u1"].status is None
    assert local.set_status("c2", "w1", None) == frozenset()


def test_status_goes_when_the_user_leaves_the_workspace(local: LocalPresence) -> None:
    """A user who comes back has no status: it lasted while they were present."""
    local.connect("c1", "u1", "Ann")
    local.join_workspace("c1", "w1")
    local.set_status("c1", "w1", "busy")
    local.leave_workspace("c1", "w1")
    local.join_workspace("c1", "w1")
    assert local.entries("w1")["u1"].status is None


def test_status_longer_than_the_maximum_is_refused(local: LocalPresence) -> None:
    """A status over MAX_STATUS_CHARS raises ValueError and changes nothing."""
    local.connect("c1", "u1", "Ann")
    local.join_workspace("c1", "w1")
    local.set_status("c1", "w1", "x" * MAX_STATUS_CHARS)
    with pytest.raises(ValueError, match=f"at most {MAX_STATUS_CHARS} characters"):
        local.set_status("c1", "w1", "y" * (MAX_STATUS_CHARS + 1))
    assert local.entries("w1")["u1"].status == "x" * MAX_STATUS_CHARS


def test_status_needs_presence_in_the_workspace(local: LocalPresence) -> None:
    """Setting a status where the user is not present raises ValueError."""
    local.connect("c1", "u1", "Ann")
    with pytest.raises(ValueError, match="not present in workspace 'w1'"):
        local.set_status("c1", "w1", "busy")


def test_unknown_connections_raise_key_error(local: LocalPresence) -> None:
    """Joining or setting a status through an unregistered connection is a KeyError."""
    with pytest.raises(KeyError):
        local.join_workspace("nope", "w1")
    with pytest.raises(KeyError):
        local.set_status("nope", "w1", "busy")


def test_connection_ids_are_unique(local: LocalPresence) -> None:
    """Registering a connection id twice raises ValueError."""
    local.connect("c1", "u1", "Ann")
    with pytest.raises(ValueError, match="already registered"):
        local.open_note("c1", "u1", "Ann", "w1", "n1")


def test_since_is_when_the_user_arrived_in_the_workspace(
    local: LocalPresence, clock: FakeClock
) -> None:
    """`since` is the first connection's time and survives later tabs."""
    local.connect("c1", "u1", "Ann")
    local.join_workspace("c1", "w1")
    clock.now = 2000.0
    local.open_note("d1", "u1", "Ann", "w1", "n1")
    assert local.entries("w1")["u1"].since == 1000.0


def test_updated_is_zero_until_name_or_status_changes(
    local: LocalPresence, clock: FakeClock
) -> None:
    """Opening notes does not bump `updated`, so it never outweighs a status set elsewhere."""
    local.connect("c1", "u1", "Ann")
    local.join_workspace("c1", "w1")
    clock.now = 1500.0
    local.open_note("d1", "u1", "Ann", "w1", "n1")
    assert local.entries("w1")["u1"].updated == 0.0


def test_a_new_connection_with_another_name_renames_the_user_everywhere(
    local: LocalPresence, clock: FakeClock
) -> None:
    """The newest connection's name wins, in every workspace the user is present in."""
    local.connect("c1", "u1", "Ann")
    local.join_workspace("c1", "w1")
    local.join_workspace("c1", "w2")
    clock.now = 1100.0
    assert local.open_note("d1", "u1", "Ann B.", "w3", "n1") == {"w1", "w2", "w3"}
    for workspace_id in ("w1", "w2", "w3"):
        entry = local.entries(workspace_id)["u1"]
        assert entry.name == "Ann B."
        assert entry.updated == 1100.0


def test_users_are_independent(local: LocalPresence) -> None:
    """Two users in one workspace have one entry each."""
    local.connect("c1", "u1", "Ann")
    local.connect("c2", "u2", "Bob")
    local.join_workspace("c1", "w1")
    local.join_workspace("c2", "w1")
    local.disconnect("c1")
    assert set(local.entries("w1")) == {"u2"}


def test_take_changed_names_the_users_each_mutation_touched(
    local: LocalPresence, clock: FakeClock
) -> None:
    """Each kind of mutation marks the users it may have changed, per workspace, once."""
    local.connect("c1", "u1", "Ann")
    assert local.take_changed("w1") == set()
    local.join_workspace("c1", "w1")
    local.open_note("d1", "u2", "Bob", "w1", "n1")
    local.open_note("d2", "u3", "Cy", "w2", "n2")
    assert local.take_changed("w1") == {"u1", "u2"}
    assert local.take_changed("w1") == set()
    assert local.take_changed("w2") == {"u3"}
    local.set_status("c1", "w1", "away")
    assert local.take_changed("w1") == {"u1"}
    clock.now += 1
    local.open_note("d3", "u1", "Ann B.", "w2", "n2")  # a new name: every workspace of u1
    assert local.take_changed("w1") == {"u1"}
    assert local.take_changed("w2") == {"u1"}
    local.close_note("d1")
    local.disconnect("c1")
    assert local.take_changed("w1") == {"u1", "u2"}
    assert local.entry("w1", "u1") is None
    assert local.entry("w2", "u1") == local.entries("w2")["u1"]


_CONNECTIONS = ["c1", "c2", "c3"]
_USERS = ["u1", "u2"]
_WORKSPACES = ["w1", "w2"]
_operations = st.lists(
    st.one_of(
        st.tuples(st.just("connect"), st.sampled_from(_CONNECTIONS), st.sampled_from(_USERS)),
        st.tuples(st.just("join"), st.sampled_from(_CONNECTIONS), st.sampled_from(_WORKSPACES)),
        st.tuples(st.just("leave"), st.sampled_from(_CONNECTIONS), st.sampled_from(_WORKSPACES)),
        st.tuples(
            st.just("status"),
            st.sampled_from(_CONNECTIONS),
            st.sampled_from(_WORKSPACES),
            st.sampled_from([None, "away", "busy"]),
        ),
        st.tuples(
            st.just("open"),
            st.sampled_from(_CONNECTIONS),
            st.sampled_from(_USERS),
            st.sampled_from(_WORKSPACES),
            st.sampled_from(["n1", "n2"]),
            st.sampled_from(["Ann", "Bob"]),
        ),
        st.tuples(st.just("disconnect"), st.sampled_from(_CONNECTIONS)),
        st.tuples(st.just("write"), st.sampled_from(_WORKSPACES)),
    ),
    max_size=60,
)


@settings(max_examples=500)
@given(_operations)
@example(  # a new name reaches the user's entries in every workspace
    [
        ("connect", "c1", "u1"),
        ("join", "c1", "w1"),
        ("write", "w1"),
        ("open", "c2", "u1", "w2", "n1", "Bob"),
    ]
)
def test_entries_kept_by_their_changes_are_the_entries_rebuilt(
    operations: list[tuple[str, ...]],
) -> None:
    """What a writer keeps by applying, at any moment, the entries of the users
    `take_changed` names is what `entries` rebuilds: no change goes unmarked."""
    clock = FakeClock()
    local = LocalPresence(clock)
    kept: dict[str, dict[str, PresenceEntry]] = {w: {} for w in _WORKSPACES}

    def write(workspace_id: str) -> None:
        changes = {u: local.entry(workspace_id, u) for u in local.take_changed(workspace_id)}
        apply_changes(kept[workspace_id], changes)

    for operation in operations:
        clock.now += 1
        kind, *args = operation
        try:
            if kind == "connect":
                local.connect(args[0], args[1], "Ann")
            elif kind == "join":
                local.join_workspace(args[0], args[1])
            elif kind == "leave":
                local.leave_workspace(args[0], args[1])
            elif kind == "status":
                local.set_status(args[0], args[1], args[2])
            elif kind == "open":
                local.open_note(args[0], args[1], args[4], args[2], args[3])
            elif kind == "disconnect":
                local.disconnect(args[0])
            else:
                write(args[0])
        except (KeyError, ValueError):
            pass  # refused (a taken id, an unknown connection, a user not present)
    for workspace_id in _WORKSPACES:
        write(workspace_id)
        assert kept[workspace_id] == local.entries(workspace_id)
