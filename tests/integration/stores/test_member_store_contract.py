"""One contract suite for every `MemberStore` backend (memory, SQLite, Postgres)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from collab.errors import StoreError
from collab.store import Database, MemoryStore, PostgresStore
from collab.store.members import MAX_MEMBER_PAGE, MAX_MEMBERS_READ, Member, SeenMember
from tests.support.postgres_fixtures import gate_held, hold_trigger, open_stores, sessions_waiting
from tests.support.store_backends import Backend
from tests.support.waiting import eventually

WS = "w1"


def at(second: int) -> str:
    """A timestamp `second` seconds into a fixed day, as `format_timestamp` writes them."""
    return f"2026-12-06T10:{second // 60:02d}:{second % 60:02d}.000000+00:00"


def seen(
    user_id: str,
    name: str | None = None,
    role: str = "editor",
    second: int = 0,
    workspace_id: str = WS,
) -> SeenMember:
    return SeenMember(workspace_id, user_id, name, role, at(second))


async def put(
    store: Database,
    user_id: str,
    role: str = "viewer",
    name: str | None = None,
    email: str | None = None,
    *,
    workspace_id: str = WS,
    second: int = 0,
) -> tuple[Member, bool]:
    return await store.put_member(
        workspace_id, user_id, role=role, name=name, email=email, at=at(second)
    )


async def listed(
    store: Database, *, prefix: str = "", after: str = "", limit: int = 50
) -> list[str]:
    """The user ids `list_members` returns for the workspace `WS`."""
    members = await store.list_members(WS, prefix=prefix, after=after, limit=limit)
    return [member.user_id for member in members]


async def the_member(store: Database, user_id: str, workspace_id: str = WS) -> Member:
    member = await store.get_member(workspace_id, user_id)
    assert member is not None
    return member


# --- seen ---------------------------------------------------------------------------------


async def test_a_member_seen_is_stored_with_the_token_name_and_role(store: Database) -> None:
    """A user seen once is a member row with the token's name and role, seen at that time,
    managed by no one, listed in its workspace only."""
    await store.record_seen([seen("u1", "Ann", "owner", 5)])

    member = await the_member(store, "u1")
    assert member == Member(
        workspace_id=WS,
        user_id="u1",
        assigned_name=None,
        token_name="Ann",
        email=None,
        token_role="owner",
        assigned_role=None,
        last_seen_at=at(5),
        removed_at=None,
    )
    assert (member.name, member.role, member.managed) == ("Ann", "owner", False)
    assert await store.list_members(WS) == [member]
    assert await store.list_members("w2") == []
    assert await store.get_member("w2", "u1") is None


async def test_seeing_a_member_again_updates_role_and_name_and_moves_last_seen_forward(
    store: Database,
) -> None:
    """Seen again, a member takes the token's role, its name when one is given (None keeps the
    old), and a later `last_seen_at`; an earlier sight does not move it back."""
    await store.record_seen([seen("u1", "Ann", "editor", 10)])

    await store.record_seen([seen("u1", None, "viewer", 5)])
    earlier = await the_member(store, "u1")
    await store.record_seen([seen("u1", "Ann B.", "owner", 20)])
    later = await the_member(store, "u1")

    assert (earlier.token_name, earlier.token_role, earlier.last_seen_at) == (
        "Ann",
        "viewer",
        at(10),
    )
    assert (later.token_name, later.token_role, later.last_seen_at) == ("Ann B.", "owner", at(20))


async def test_a_member_seen_without_a_name_gets_one_later(store: Database) -> None:
    """A member first seen without a name has none, then takes the first name given."""
    await store.record_seen([seen("u1", None)])
    unnamed = await the_member(store, "u1")
    await store.record_seen([seen("u1", "Ann", second=1)])

    assert unnamed.name is None
    assert (await the_member(store, "u1")).name == "Ann"
    assert await listed(store, prefix="an") == ["u1"]


async def test_a_batch_records_every_member_and_the_last_entry_of_one_wins(
    store: Database,
) -> None:
    """A batch writes each member it names, in any workspace; a member named twice gets the
    last entry (even an earlier time, or no name), once."""
    await store.record_seen(
        [
            seen("u1", "First", "owner", 30),
            seen("u2", "Bob"),
            seen("u1", None, "viewer", 3),
            seen("u1", "Other", workspace_id="w2"),
        ]
    )

    member = await the_member(store, "u1")
    assert (member.token_name, member.token_role, member.last_seen_at) == (None, "viewer", at(3))
    assert await listed(store) == ["u1", "u2"]
    assert (await the_member(store, "u1", "w2")).token_name == "Other"


async def test_an_empty_batch_records_nothing(store: Database) -> None:
    """`record_seen([])` writes nothing and succeeds."""
    await store.record_seen([])

    assert await store.list_members(WS) == []


async def test_a_removed_member_seen_again_is_left_as_it_is(store: Database) -> None:
    """Being seen does not bring a removed member back, nor change their row."""
    await store.record_seen([seen("u1", "Ann", "editor", 1)])
    removed = await store.remove_member(WS, "u1", at=at(2))

    await store.record_seen([seen("u1", "Ann B.", "owner", 3)])

    assert removed is not None
    assert await store.get_member(WS, "u1") == removed
    assert await store.list_members(WS) == []
    assert await store.non_members(WS, ["u1"]) == ["u1"]


async def test_batches_naming_the_same_members_in_any_order_all_commit(backend: Backend) -> None:
    """Batches over overlapping members in opposite orders, from two instances at once, all
    commit (no deadlock) and leave one row per member."""
    first = await backend.new_store()
    second = await backend.another_store(first)
    users = [f"u{n}" for n in range(20)]

    await asyncio.gather(
        *(
            store.record_seen([seen(u, u.upper(), second=n) for u in order])
            for n, (store, order) in enumerate([(first, users), (second, users[::-1])] * 5)
        )
    )

    assert await listed(first) == sorted(users)
    assert (await the_member(second, "u7")).last_seen_at == at(9)


# --- put and remove -----------------------------------------------------------------------


async def test_a_member_put_before_being_seen_is_a_listed_member_with_the_assigned_role(
    store: Database,
) -> None:
    """An owner can provision someone never seen: a new row (reported as added) with the
    assigned role, name and email, no token role and no sight; listed, and a member."""
    member, added = await put(store, "u1", "editor", "Ann", "ann@example.com")

    assert added
    assert member == Member(
        workspace_id=WS,
        user_id="u1",
        assigned_name="Ann",
        token_name=None,
        email="ann@example.com",
        token_role=None,
        assigned_role="editor",
        last_seen_at=None,
        removed_at=None,
    )
    assert (member.name, member.role, member.managed) == ("Ann", "editor", True)
    assert await store.get_member(WS, "u1") == member
    assert await store.list_members(WS) == [member]
    assert await store.non_members(WS, ["u1"]) == []


async def test_putting_a_seen_member_caps_the_listed_role_and_keeps_the_token_fields(
    store: Database,
) -> None:
    """A member seen as owner, then put as viewer, is listed as viewer under the assigned
    name; the token's role, name and last sight are kept; not reported as added."""
    await store.record_seen([seen("u1", "ann", "owner", 4)])

    member, added = await put(store, "u1", "viewer", "Ann Admin", second=5)

    assert not added
    assert (member.role, member.name) == ("viewer", "Ann Admin")
    assert (member.token_role, member.token_name, member.last_seen_at) == ("owner", "ann", at(4))
    assert await store.list_members(WS) == [member]


async def test_a_put_member_seen_later_keeps_the_assigned_role_and_name(store: Database) -> None:
    """Being seen after a put updates the token's fields only: the listed role and name stay
    the assigned ones, and a prefix of the token's name does not find the member."""
    await put(store, "u1", "viewer", "Ann Admin")

    await store.record_seen([seen("u1", "Zed", "owner", 6)])

    member = await the_member(store, "u1")
    assert (member.role, member.name) == ("viewer", "Ann Admin")
    assert (member.token_role, member.token_name, member.last_seen_at) == ("owner", "Zed", at(6))
    assert await listed(store, prefix="ann") == ["u1"]
    assert await listed(store, prefix="zed") == []


async def test_putting_again_replaces_name_and_email_and_none_clears_them(
    store: Database,
) -> None:
    """A second put sets the role, name and email it is given; None clears a name (the
    token's is listed again, and searched) and an email."""
    await store.record_seen([seen("u1", "Token Name")])
    await put(store, "u1", "owner", "Zed", "z@example.com")

    member, added = await put(store, "u1", "editor", None, None, second=1)

    assert not added
    assert (member.assigned_role, member.assigned_name, member.email) == ("editor", None, None)
    assert member.name == "Token Name"
    assert await listed(store, prefix="zed") == []
    assert await listed(store, prefix="token") == ["u1"]


async def test_putting_a_removed_member_back_clears_the_removal(store: Database) -> None:
    """A put undoes a removal: reported as added, listed again, a member again."""
    await store.record_seen([seen("u1", "Ann")])
    await store.remove_member(WS, "u1", at=at(1))

    member, added = await put(store, "u1", "editor", second=2)

    assert added
    assert member.removed_at is None
    assert await listed(store) == ["u1"]
    assert await store.non_members(WS, ["u1"]) == []


async def test_removing_marks_the_member_removed_and_keeps_the_row(store: Database) -> None:
    """A removed member is returned as now stored, read by `get_member`, not listed, and
    not a member."""
    await store.record_seen([seen("u1", "Ann", "owner")])

    removed = await store.remove_member(WS, "u1", at=at(7))

    assert removed is not None
    assert (removed.removed_at, removed.token_name, removed.token_role) == (at(7), "Ann", "owner")
    assert removed.managed
    assert await store.get_member(WS, "u1") == removed
    assert await store.list_members(WS) == []
    assert await store.non_members(WS, ["u1"]) == ["u1"]


async def test_removing_a_stranger_or_a_removed_member_returns_none(store: Database) -> None:
    """Removing someone with no row, or removed already, changes nothing and returns None."""
    await store.record_seen([seen("u1")])
    first = await store.remove_member(WS, "u1", at=at(1))

    assert await store.remove_member(WS, "u1", at=at(2)) is None
    assert await store.remove_member(WS, "nobody", at=at(2)) is None
    assert await store.remove_member("w2", "u1", at=at(2)) is None
    assert await store.get_member(WS, "u1") == first
    assert await store.get_member(WS, "nobody") is None


async def test_concurrent_puts_of_a_new_member_report_one_addition(backend: Backend) -> None:
    """Of several puts of one new member at once, over two instances, exactly one reports
    the member added, and one row is left."""
    first = await backend.new_store()
    second = await backend.another_store(first)

    results = await asyncio.gather(
        *(put(store, "u1", "viewer", f"Ann {n}") for n, store in enumerate([first, second] * 3))
    )

    assert sum(added for _, added in results) == 1
    assert await listed(first) == ["u1"]


# --- listing ------------------------------------------------------------------------------


async def test_members_are_listed_by_user_id_in_pages_after_a_user_id(store: Database) -> None:
    """Pages follow user id (code point) order: at most `limit`, strictly after `after`."""
    users = ["b", "a", "B", "é", "a1", "c"]
    await store.record_seen([seen(u) for u in users])

    assert await listed(store) == ["B", "a", "a1", "b", "c", "é"]
    assert await listed(store, limit=2) == ["B", "a"]
    assert await listed(store, after="a", limit=2) == ["a1", "b"]
    assert await listed(store, after="b") == ["c", "é"]
    assert await listed(store, after="é") == []


async def test_a_read_holds_at_most_a_page_and_one_more(store: Database) -> None:
    """However large `limit` is, a read holds at most `MAX_MEMBERS_READ` members: a page of
    `MAX_MEMBER_PAGE` and one more, which tells the listing whether another page follows."""
    await store.record_seen([seen(f"u{n:04d}") for n in range(MAX_MEMBERS_READ + 1)])

    assert MAX_MEMBERS_READ == MAX_MEMBER_PAGE + 1
    assert len(await listed(store, limit=MAX_MEMBER_PAGE + 50)) == MAX_MEMBERS_READ


async def test_a_prefix_matches_the_start_of_the_user_id_with_its_case(store: Database) -> None:
    """A prefix finds the user ids it begins, case included (ids are case-sensitive)."""
    await store.record_seen([seen("ann"), seen("Anna"), seen("bob"), seen("joann")])

    assert await listed(store, prefix="an") == ["ann"]
    assert await listed(store, prefix="An") == ["Anna"]
    assert await listed(store, prefix="ann") == ["ann"]
    assert await listed(store, prefix="x") == []


async def test_a_prefix_matches_the_start_of_the_name_ignoring_case(store: Database) -> None:
    """A prefix finds the names it begins, compared case-folded (Unicode case folding)."""
    await store.record_seen(
        [
            seen("u1", "élodie Martin"),
            seen("u2", "STRAẞE"),
            seen("u3", "Martin"),
            seen("u4", None),
        ]
    )

    assert await listed(store, prefix="Él") == ["u1"]
    assert await listed(store, prefix="ÉLODIE M") == ["u1"]
    assert await listed(store, prefix="strasse") == ["u2"]
    assert await listed(store, prefix="Straß") == ["u2"]
    assert await listed(store, prefix="mart") == ["u3"]
    assert await listed(store, prefix="lodie") == []


async def test_a_prefix_matches_the_id_or_the_name_and_pages_like_any_list(
    store: Database,
) -> None:
    """Members found by id and by name come in one user id order, paged by `after`."""
    await store.record_seen(
        [seen("ann1"), seen("u2", "Annie"), seen("ann3", "Zoe"), seen("u4", "Bob")]
    )

    assert await listed(store, prefix="ann") == ["ann1", "ann3", "u2"]
    assert await listed(store, prefix="ANN") == ["u2"]
    assert await listed(store, prefix="ann", limit=2) == ["ann1", "ann3"]
    assert await listed(store, prefix="ann", after="ann3") == ["u2"]


@pytest.mark.parametrize(
    ("prefix", "found"),
    [
        ("%", ["u1"]),
        ("_", ["u3"]),
        ("a_", ["u4"]),
        ("\\", ["u6"]),
        ("100%", ["u2"]),
        ("[", ["u7"]),
        ("*", []),
        ("'", ["u8"]),
        ("x_", ["x_1"]),
    ],
)
async def test_wildcard_characters_in_a_prefix_are_taken_literally(
    store: Database, prefix: str, found: list[str]
) -> None:
    """`%`, `_`, `\\`, `[`, `*` and quotes in a prefix match only themselves."""
    await store.record_seen(
        [
            seen("u1", "%off"),
            seen("u2", "100% done"),
            seen("u3", "_under"),
            seen("u4", "a_b"),
            seen("u5", "axb"),
            seen("u6", "\\slash"),
            seen("u7", "[x]"),
            seen("u8", "'quoted'"),
            seen("x_1"),
            seen("xy1"),
        ]
    )

    assert await listed(store, prefix=prefix) == found


async def test_a_prefix_ending_in_the_last_code_point_matches(store: Database) -> None:
    """A prefix ending in U+10FFFF (whose range has no end above it) still matches exactly."""
    await store.record_seen([seen("a\U0010ffff"), seen("a\U0010ffffz"), seen("b")])

    assert await listed(store, prefix="a\U0010ffff") == ["a\U0010ffff", "a\U0010ffffz"]
    assert await listed(store, prefix="\U0010ffff") == []


# --- managed members and non-members ------------------------------------------------------


async def test_managed_members_are_the_put_and_removed_ones_of_every_workspace(
    store: Database,
) -> None:
    """`managed_members` lists rows with an assigned role or a removal, of all workspaces,
    by workspace then user id; members only seen are not in it."""
    await store.record_seen([seen("u1"), seen("u2"), seen("u3", workspace_id="w2")])
    await put(store, "u2", "viewer")
    await put(store, "u9", "owner", workspace_id="w2")
    await store.remove_member("w2", "u3", at=at(1))

    managed = await store.managed_members()

    assert [(m.workspace_id, m.user_id) for m in managed] == [
        (WS, "u2"),
        ("w2", "u3"),
        ("w2", "u9"),
    ]
    assert all(m.managed for m in managed)
    assert managed[1].removed_at == at(1)


async def test_non_members_are_listed_in_the_order_given(store: Database) -> None:
    """`non_members` returns, in the caller's order, the ids without an active row in the
    workspace (never seen nor put, or removed), for any number of them."""
    await store.record_seen([seen("u1"), seen("u2"), seen("u3", workspace_id="w2")])
    await put(store, "u4", "viewer")
    await store.remove_member(WS, "u2", at=at(1))

    assert await store.non_members(WS, ["u3", "u1", "u2", "nobody", "u4"]) == [
        "u3",
        "u2",
        "nobody",
    ]
    assert await store.non_members(WS, ["u1", "u4"]) == []
    assert await store.non_members(WS, []) == []
    many = [f"x{i}" for i in range(1200)] + ["u1"]
    assert await store.non_members(WS, many) == many[:-1]


# --- durability and failure ---------------------------------------------------------------


async def test_a_new_instance_on_the_same_database_sees_every_member(
    durable_backend: Backend,
) -> None:
    """Seen, put and removed members read back alike from a new store on the database."""
    first = await durable_backend.new_store()
    await first.record_seen([seen("u1", "Ann", "owner", 1), seen("u2", "Bob", second=2)])
    await put(first, "u3", "viewer", "Cy", "cy@example.com")
    await first.remove_member(WS, "u2", at=at(3))
    before = (await first.list_members(WS), await first.managed_members())
    await first.close()

    second = await durable_backend.another_store(first)

    assert (await second.list_members(WS), await second.managed_members()) == before
    assert await second.non_members(WS, ["u1", "u2", "u3"]) == ["u2"]


async def test_closed_store_raises_store_error_for_every_member_call(store: Database) -> None:
    """Every `MemberStore` call on a closed store raises `StoreError`."""
    await store.close()

    calls = [
        store.record_seen([seen("u1")]),
        put(store, "u1"),
        store.remove_member(WS, "u1", at=at(1)),
        store.get_member(WS, "u1"),
        store.list_members(WS),
        store.managed_members(),
        store.non_members(WS, ["u1"]),
    ]
    for call in calls:
        with pytest.raises(StoreError):
            await call


async def test_memory_store_fault_injection_covers_member_calls() -> None:
    """`fail_next` fails the next member call, changing nothing."""
    store = MemoryStore()
    await store.open()
    store.fail_next = StoreError("injected")

    with pytest.raises(StoreError, match="injected"):
        await store.record_seen([seen("u1")])

    assert await store.list_members(WS) == []


# --- Postgres only: lock order across instances -------------------------------------------

GATE_LOCK_KEY = 4344
# Holds every update of a member row to the token name "held" (its row locked meanwhile)
# until the test releases the gate lock.
HOLD_HELD_MEMBERS = hold_trigger(
    "hold_members", "workspace_members", "UPDATE", "NEW.token_name = 'held'", GATE_LOCK_KEY
)


@pytest.fixture
async def gate(postgres_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection holding the lock that blocks updates of member rows to "held"."""
    async with gate_held(postgres_dsn, HOLD_HELD_MEMBERS, GATE_LOCK_KEY) as conn:
        yield conn


@pytest.fixture
async def postgres_stores(postgres_dsn: str) -> AsyncIterator[list[PostgresStore]]:
    """Two open instances (two pools) on one database."""
    async with open_stores(postgres_dsn, 2) as stores:
        yield stores


async def test_batches_naming_members_in_opposite_orders_wait_instead_of_deadlocking(
    gate: asyncpg.Connection, postgres_stores: list[PostgresStore]
) -> None:
    """Two instances' batches naming the same members in opposite orders lock the rows in
    one order: while the first holds a row, the second waits for it rather than locking
    another row the first needs next; both commit, the later one's sight last."""
    first, second = postgres_stores
    await first.record_seen([seen("a", "A"), seen("b", "B")])
    earlier = asyncio.create_task(
        first.record_seen([seen("a", "held", second=1), seen("b", "x", second=1)])
    )
    await eventually(lambda: sessions_waiting(gate, 1), what="the first batch held")
    later = asyncio.create_task(
        second.record_seen([seen("b", "held", second=2), seen("a", "y", second=2)])
    )
    await eventually(lambda: sessions_waiting(gate, 2), what="the second batch waiting")
    await gate.execute("SELECT pg_advisory_unlock($1)", GATE_LOCK_KEY)
    await asyncio.gather(earlier, later)

    members = await first.list_members(WS)
    assert [(m.user_id, m.token_name, m.last_seen_at) for m in members] == [
        ("a", "y", at(2)),
        ("b", "held", at(2)),
    ]
