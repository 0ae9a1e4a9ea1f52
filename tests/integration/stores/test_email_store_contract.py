"""One contract suite for every `EmailStore` backend (memory, SQLite, Postgres): recipients from
the member directory, claims (also raced by two store instances on one database), the emailed
marker and opt-outs."""

from __future__ import annotations

import asyncio

import pytest

from collab.store import Database
from collab.store.email import MAX_DIGEST_NOTIFICATIONS, MAX_RECIPIENT_WORKSPACES
from collab.store.members import SeenMember
from collab.store.notifications import NewNotification
from tests.support.store_backends import Backend

NOW = 1_000_000.0
HOLD_S = 300.0
AT = "2026-12-06T10:00:00.000000+00:00"


def seen(
    user_id: str,
    workspace_id: str = "w1",
    *,
    name: str | None = None,
    email: str | None = None,
    minute: int = 0,
) -> SeenMember:
    return SeenMember(
        workspace_id, user_id, name, "editor", f"2026-12-06T10:{minute:02d}:00.000000+00:00", email
    )


async def notify(store: Database, user_id: str, count: int) -> list[int]:
    created = await store.create_notifications(
        [NewNotification(user_id, "w1", "message", {"n": i}) for i in range(count)]
    )
    return [notification.id for notification in created]


async def test_a_user_the_directory_does_not_know_has_no_address(store: Database) -> None:
    """No membership: no address, no name, no workspaces, not opted out."""
    recipient = await store.email_recipient("u1")
    assert (recipient.email, recipient.name, recipient.workspace_ids) == (None, None, ())
    assert not recipient.opted_out


async def test_the_token_address_of_the_latest_sighting_is_used(store: Database) -> None:
    """The address a token carried is recorded when its user is seen; the latest wins, and a
    later token without one keeps it."""
    await store.record_seen([seen("u1", "w1", name="Ann", email="old@example.com", minute=1)])
    await store.record_seen([seen("u1", "w2", name="Ann Lee", email="ann@example.com", minute=2)])
    await store.record_seen([seen("u1", "w2", minute=3)])
    recipient = await store.email_recipient("u1")
    assert recipient.email == "ann@example.com"
    assert recipient.name == "Ann Lee"
    assert recipient.workspace_ids == ("w1", "w2")


async def test_an_owners_address_and_name_win_over_the_tokens(store: Database) -> None:
    """An address an owner gave, in any workspace, wins over any token's."""
    await store.record_seen([seen("u1", "w2", name="Ann", email="token@example.com", minute=5)])
    await store.put_member(
        "w1", "u1", role="editor", name="Ann Owner-Named", email="work@example.com", at=AT
    )
    await store.put_member("w2", "u1", role="editor", name=None, email=None, at=AT)
    recipient = await store.email_recipient("u1")
    assert recipient.email == "work@example.com"
    assert recipient.workspace_ids == ("w1", "w2")


async def test_an_owner_given_address_digests_refuse_does_not_hide_the_tokens(
    store: Database,
) -> None:
    """An address an owner gave before the members API checked it as the digests do (one
    they refuse) is passed over: the token's address is used, not none."""
    await store.record_seen([seen("u1", "w2", name="Ann", email="token@example.com", minute=5)])
    await store.put_member("w1", "u1", role="editor", name=None, email="ann@example.com>", at=AT)
    recipient = await store.email_recipient("u1")
    assert recipient.email == "token@example.com"


async def test_removed_memberships_give_no_address_nor_workspace(store: Database) -> None:
    """A membership an owner removed counts for nothing: its address and workspace are gone."""
    await store.record_seen([seen("u1", "w1", email="a@example.com")])
    await store.put_member("w2", "u1", role="editor", name=None, email="b@example.com", at=AT)
    await store.remove_member("w2", "u1", at=AT)
    recipient = await store.email_recipient("u1")
    assert (recipient.email, recipient.workspace_ids) == ("a@example.com", ("w1",))


async def test_recipient_workspaces_are_bounded(store: Database) -> None:
    """A member of very many workspaces is read for the first MAX_RECIPIENT_WORKSPACES."""
    await store.record_seen([seen("u1", f"w{i:04d}") for i in range(MAX_RECIPIENT_WORKSPACES + 5)])
    recipient = await store.email_recipient("u1")
    assert len(recipient.workspace_ids) == MAX_RECIPIENT_WORKSPACES
    assert recipient.workspace_ids[0] == "w0000"


async def test_a_claim_holds_until_finished_then_the_interval_applies(store: Database) -> None:
    """The first claim wins; the next fails until the finished digest's interval is over."""
    claim = await store.claim_digest("u1", claim_id="a", now=NOW, hold_s=HOLD_S)
    assert claim is not None
    assert claim.emailed_up_to == 0
    assert await store.claim_digest("u1", claim_id="b", now=NOW + 1, hold_s=HOLD_S) is None
    assert await store.digest_due_at("u1") == NOW + HOLD_S
    assert await store.finish_digest(claim, emailed_up_to=7, next_allowed_at=NOW + 600, at=AT)
    assert await store.digest_due_at("u1") == NOW + 600
    assert await store.claim_digest("u1", claim_id="c", now=NOW + 599, hold_s=HOLD_S) is None
    again = await store.claim_digest("u1", claim_id="d", now=NOW + 600, hold_s=HOLD_S)
    assert again is not None
    assert again.emailed_up_to == 7


async def test_a_user_never_claimed_is_due_at_once(store: Database) -> None:
    """A user with no digest state is due now."""
    assert await store.digest_due_at("u9") == 0.0


async def test_a_released_claim_may_be_claimed_again_from_its_time(store: Database) -> None:
    """Releasing gives the claim up until the time it names; the marker stays."""
    claim = await store.claim_digest("u1", claim_id="a", now=NOW, hold_s=HOLD_S)
    assert claim is not None
    assert await store.release_digest(claim, next_allowed_at=NOW + 30)
    assert await store.claim_digest("u1", claim_id="b", now=NOW + 29, hold_s=HOLD_S) is None
    retry = await store.claim_digest("u1", claim_id="c", now=NOW + 30, hold_s=HOLD_S)
    assert retry is not None
    assert retry.emailed_up_to == 0


async def test_a_lapsed_claim_is_taken_over_and_its_holder_changes_nothing(
    store: Database,
) -> None:
    """Once a claim's hold is over another claim wins, and the first holder can neither finish
    nor release any more."""
    stale = await store.claim_digest("u1", claim_id="a", now=NOW, hold_s=HOLD_S)
    assert stale is not None
    fresh = await store.claim_digest("u1", claim_id="b", now=NOW + HOLD_S, hold_s=HOLD_S)
    assert fresh is not None
    assert not await store.finish_digest(stale, emailed_up_to=9, next_allowed_at=NOW, at=AT)
    assert not await store.release_digest(stale, next_allowed_at=NOW)
    assert await store.finish_digest(fresh, emailed_up_to=3, next_allowed_at=NOW + 900, at=AT)
    assert await store.digest_due_at("u1") == NOW + 900


async def test_the_emailed_marker_never_moves_down(store: Database) -> None:
    """Finishing with a smaller id than a digest already covered keeps the greater."""
    first = await store.claim_digest("u1", claim_id="a", now=NOW, hold_s=HOLD_S)
    assert first is not None
    await store.finish_digest(first, emailed_up_to=10, next_allowed_at=NOW, at=AT)
    second = await store.claim_digest("u1", claim_id="b", now=NOW, hold_s=HOLD_S)
    assert second is not None
    await store.finish_digest(second, emailed_up_to=4, next_allowed_at=NOW, at=AT)
    third = await store.claim_digest("u1", claim_id="c", now=NOW, hold_s=HOLD_S)
    assert third is not None
    assert third.emailed_up_to == 10


async def test_unemailed_notifications_are_unread_above_the_marker_newest_first(
    store: Database,
) -> None:
    """The page lists unread notifications above `after_id`, newest first, with their count;
    read ones and other users' are left out."""
    ids = await notify(store, "u1", 5)
    await notify(store, "u2", 2)
    await store.mark_read("u1", [ids[3]])
    page, total = await store.unemailed_notifications("u1", after_id=ids[0], limit=2)
    assert [n.id for n in page] == [ids[4], ids[2]]
    assert total == 3
    assert all(n.read_at is None and n.user_id == "u1" for n in page)
    assert await store.unemailed_notifications("u1", after_id=ids[4], limit=10) == ([], 0)


async def test_unemailed_pages_are_capped(store: Database) -> None:
    """A page holds at most MAX_DIGEST_NOTIFICATIONS, and the count says how many in all."""
    await notify(store, "u1", MAX_DIGEST_NOTIFICATIONS + 3)
    page, total = await store.unemailed_notifications("u1", after_id=0, limit=10**6)
    assert (len(page), total) == (MAX_DIGEST_NOTIFICATIONS, MAX_DIGEST_NOTIFICATIONS + 3)


async def test_an_opted_out_user_is_never_claimed_until_they_opt_in(store: Database) -> None:
    """An opt-out shows on the recipient, stops claims and leaves no due time; opting in
    again brings them back, with their marker."""
    claim = await store.claim_digest("u1", claim_id="a", now=NOW, hold_s=HOLD_S)
    assert claim is not None
    await store.finish_digest(claim, emailed_up_to=5, next_allowed_at=NOW, at=AT)
    await store.set_email_opt_out("u1", opted_out=True, at=AT)
    await store.set_email_opt_out("u2", opted_out=True, at=AT)
    assert (await store.email_recipient("u1")).opted_out
    assert (await store.email_recipient("u2")).opted_out
    assert await store.claim_digest("u1", claim_id="b", now=NOW + 10**6, hold_s=1) is None
    assert await store.claim_digest("u2", claim_id="b", now=NOW + 10**6, hold_s=1) is None
    assert await store.digest_due_at("u1") is None
    await store.set_email_opt_out("u1", opted_out=False, at=AT)
    back = await store.claim_digest("u1", claim_id="c", now=NOW, hold_s=HOLD_S)
    assert back is not None
    assert back.emailed_up_to == 5


@pytest.mark.parametrize("rounds", [20])
async def test_of_claims_raced_by_two_store_instances_one_wins(
    backend: Backend, store: Database, rounds: int
) -> None:
    """Two store instances on one database (two servers) claiming the same users at once: for
    each user exactly one claim wins, whether the user had a row or not."""
    other = await backend.another_store(store)
    for round_number in range(rounds):
        user_id = f"u{round_number}"
        if round_number % 2:
            first = await store.claim_digest(user_id, claim_id="x", now=NOW, hold_s=0)
            assert first is not None
            await store.release_digest(first, next_allowed_at=NOW)
        claims = await asyncio.gather(
            *(
                instance.claim_digest(user_id, claim_id=f"{i}", now=NOW, hold_s=HOLD_S)
                for i, instance in enumerate([store, other, store, other])
            )
        )
        assert sum(claim is not None for claim in claims) == 1, claims
