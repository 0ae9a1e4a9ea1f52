"""The email digests of `MemoryStore`: the reference for what every backend's `EmailStore`
answers. The SQL backends are held to the same answers by the email contract suite.

Nothing here awaits, so each method is atomic in the event loop, as a transaction is."""

from __future__ import annotations

from dataclasses import dataclass

from collab.store.email import DigestClaim, Recipient, pick_recipient
from collab.store.memory_members import MemoryMembers


@dataclass(slots=True)
class _DigestRow:
    next_allowed_at: float = 0.0
    claim_id: str | None = None
    emailed_up_to: int = 0
    last_sent_at: str | None = None
    opted_out_at: str | None = None


class MemoryEmail:
    """Every user's digest row, and their recipients read from `members`."""

    def __init__(self, members: MemoryMembers) -> None:
        self._members = members
        self._rows: dict[str, _DigestRow] = {}

    def email_recipient(self, user_id: str) -> Recipient:
        row = self._rows.get(user_id)
        opted_out = row is not None and row.opted_out_at is not None
        return pick_recipient(user_id, self._members.memberships(user_id), opted_out)

    def claim_digest(
        self, user_id: str, *, claim_id: str, now: float, hold_s: float
    ) -> DigestClaim | None:
        row = self._rows.setdefault(user_id, _DigestRow())
        if row.opted_out_at is not None or row.next_allowed_at > now:
            return None
        row.next_allowed_at = now + hold_s
        row.claim_id = claim_id
        return DigestClaim(user_id, claim_id, row.emailed_up_to)

    def digest_due_at(self, user_id: str) -> float | None:
        row = self._rows.get(user_id)
        if row is None:
            return 0.0
        return None if row.opted_out_at is not None else row.next_allowed_at

    def finish_digest(
        self, claim: DigestClaim, *, emailed_up_to: int, next_allowed_at: float, at: str
    ) -> bool:
        row = self._held(claim)
        if row is None:
            return False
        row.claim_id = None
        row.emailed_up_to = max(row.emailed_up_to, emailed_up_to)
        row.next_allowed_at = next_allowed_at
        row.last_sent_at = at
        return True

    def release_digest(self, claim: DigestClaim, *, next_allowed_at: float) -> bool:
        row = self._held(claim)
        if row is None:
            return False
        row.claim_id = None
        row.next_allowed_at = next_allowed_at
        return True

    def set_email_opt_out(self, user_id: str, *, opted_out: bool, at: str) -> None:
        self._rows.setdefault(user_id, _DigestRow()).opted_out_at = at if opted_out else None

    def _held(self, claim: DigestClaim) -> _DigestRow | None:
        row = self._rows.get(claim.user_id)
        return row if row is not None and row.claim_id == claim.claim_id else None
