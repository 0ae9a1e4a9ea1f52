"""The `EmailStore` interface: who gets email digests, and which instance sends each one.

Part of `Database`. A user's digest state is one row (created on first use):

- **claims**: `claim_digest` takes the right to send the user's next digest when it is due
  (`next_allowed_at` has passed) and they have not opted out, and holds it until `now +
  hold_s`. Of several instances claiming at once, one wins; a claim whose holder died lapses
  when its hold ends. Its holder then either `finish_digest`es (a digest went out: nothing
  more before `next_allowed_at`, and the notifications up to `emailed_up_to` are emailed) or
  `release_digest`s (nothing was sent: try again at the time it gives).
- **emailed marker**: `emailed_up_to`, the greatest notification id a digest covered. A user's
  notifications commit in id order (`NotificationStore`), so the ones above it are exactly
  those not emailed yet (`unemailed_notifications`).
- **opt-out**: `set_email_opt_out`; a user who opted out is never claimed for.

The address comes from the member directory (`email_recipient`): an owner's `email` for the
user wins over the `email` their token carried when they were last seen (`record_seen`).
Times of claims are Unix seconds of the caller's clock; other times `format_timestamp`
strings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from collab.settings.email import is_address
from collab.store.notifications import Notification

MAX_RECIPIENT_WORKSPACES = 100
"""Memberships `email_recipient` reads: the user's workspaces by id, at most this many."""
MAX_DIGEST_NOTIFICATIONS = 100


@dataclass(frozen=True, slots=True)
class MembershipRow:
    """What `email_recipient` reads of one active membership of the user."""

    workspace_id: str
    assigned_name: str | None
    token_name: str | None
    email: str | None
    """The address an owner gave."""
    token_email: str | None
    """The address the user's token carried when last seen."""
    last_seen_at: str | None


@dataclass(frozen=True, slots=True)
class Recipient:
    user_id: str
    email: str | None
    """Where digests go; None: no address is known."""
    name: str | None
    """The display name to address them by."""
    workspace_ids: tuple[str, ...]
    """Their active memberships, by id (at most `MAX_RECIPIENT_WORKSPACES`)."""
    opted_out: bool


@dataclass(frozen=True, slots=True)
class DigestClaim:
    """The right to send one user's next digest, until its hold ends."""

    user_id: str
    claim_id: str
    emailed_up_to: int
    """The greatest notification id an earlier digest covered (0: none)."""


class EmailStore(Protocol):
    """Every method raises `StoreError` (and nothing else) when the backend fails."""

    async def email_recipient(self, user_id: str) -> Recipient:
        """The user's address, name, workspaces and opt-out (`pick_recipient` of their active
        memberships)."""

    async def claim_digest(
        self, user_id: str, *, claim_id: str, now: float, hold_s: float
    ) -> DigestClaim | None:
        """Claim the user's next digest under `claim_id`: when they have not opted out and
        their next digest is due (`next_allowed_at <= now`, true of a user never claimed),
        it is no longer due before `now + hold_s` and the claim is returned; otherwise None.
        Of concurrent claims for one user, on any instance, at most one wins."""

    async def digest_due_at(self, user_id: str) -> float | None:
        """When the user's next digest may be claimed (0.0 for a user never claimed); None
        once they opted out."""

    async def unemailed_notifications(
        self, user_id: str, *, after_id: int, limit: int
    ) -> tuple[list[Notification], int]:
        """The user's unread notifications with ids above `after_id`, newest first, at most
        `limit` (capped at `MAX_DIGEST_NOTIFICATIONS`), and how many there are in all."""

    async def finish_digest(
        self, claim: DigestClaim, *, emailed_up_to: int, next_allowed_at: float, at: str
    ) -> bool:
        """A digest was sent under `claim`: no next digest before `next_allowed_at`, and the
        emailed marker moves up to `emailed_up_to` (never down). Only while the claim is the
        one in force; returns whether it was."""

    async def release_digest(self, claim: DigestClaim, *, next_allowed_at: float) -> bool:
        """Give `claim` up with nothing sent: the next digest may be claimed from
        `next_allowed_at`. Only while the claim is the one in force; returns whether it was."""

    async def set_email_opt_out(self, user_id: str, *, opted_out: bool, at: str) -> None:
        """Record that the user wants no more digests (`opted_out`), or wants them again."""


def pick_recipient(user_id: str, rows: Sequence[MembershipRow], opted_out: bool) -> Recipient:
    """The recipient every backend answers, from the user's active memberships ordered by
    workspace id: the first address an owner gave, else the token's address of the most
    recent sighting; the listed name (an owner's, else the token's) of the most recent
    sighting that has one."""
    by_recency = sorted(rows, key=lambda row: row.last_seen_at or "", reverse=True)
    # Only addresses the digests send to: one an owner gave before the members API checked
    # them as strictly must not stop the member's digests.
    email = next((row.email for row in rows if row.email and is_address(row.email)), None) or next(
        (row.token_email for row in by_recency if row.token_email), None
    )
    names = (row.assigned_name or row.token_name for row in by_recency)
    name = next((name for name in names if name), None)
    return Recipient(
        user_id=user_id,
        email=email,
        name=name,
        workspace_ids=tuple(row.workspace_id for row in rows),
        opted_out=opted_out,
    )


def digest_page(limit: int) -> int:
    """`limit` within 1..`MAX_DIGEST_NOTIFICATIONS`."""
    return max(1, min(limit, MAX_DIGEST_NOTIFICATIONS))
