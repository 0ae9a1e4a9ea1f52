"""The email digests of `PostgresStore`, as statements over an asyncpg connection.

Several instances share the database. A claim is one upsert: its `ON CONFLICT DO UPDATE ...
WHERE` locks the user's row and re-checks the condition on its newest version, so of two
instances claiming at once (even for a user with no row yet: the second insert waits for the
first and then meets its row) exactly one gets the row back. Finishing and releasing update
the row only while it still names the caller's claim.
"""

from __future__ import annotations

from typing import Any

from collab.store.email import (
    MAX_RECIPIENT_WORKSPACES,
    DigestClaim,
    MembershipRow,
    Recipient,
    digest_page,
    pick_recipient,
)
from collab.store.notification_rows import from_postgres_record
from collab.store.notifications import Notification

_NOTIFICATION_COLUMNS = "id, user_id, workspace_id, kind, payload, created_at, read_at"


async def email_recipient(conn: Any, user_id: str) -> Recipient:
    rows = await conn.fetch(
        "SELECT workspace_id, assigned_name, token_name, email, token_email, last_seen_at "
        "FROM workspace_members WHERE user_id = $1 AND removed_at IS NULL "
        "ORDER BY workspace_id LIMIT $2",
        user_id,
        MAX_RECIPIENT_WORKSPACES,
    )
    opted_out = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM email_digests WHERE user_id = $1 "
        "AND opted_out_at IS NOT NULL)",
        user_id,
    )
    memberships = [MembershipRow(*row.values()) for row in rows]
    return pick_recipient(user_id, memberships, bool(opted_out))


async def claim_digest(
    conn: Any, user_id: str, *, claim_id: str, now: float, hold_s: float
) -> DigestClaim | None:
    emailed_up_to = await conn.fetchval(
        "INSERT INTO email_digests AS d (user_id, next_allowed_at, claim) VALUES ($1, $2, $3) "
        "ON CONFLICT (user_id) DO UPDATE SET "
        "next_allowed_at = excluded.next_allowed_at, claim = excluded.claim "
        "WHERE d.next_allowed_at <= $4 AND d.opted_out_at IS NULL "
        "RETURNING emailed_up_to",
        user_id,
        now + hold_s,
        claim_id,
        now,
    )
    return None if emailed_up_to is None else DigestClaim(user_id, claim_id, int(emailed_up_to))


async def digest_due_at(conn: Any, user_id: str) -> float | None:
    row = await conn.fetchrow(
        "SELECT next_allowed_at, opted_out_at FROM email_digests WHERE user_id = $1", user_id
    )
    if row is None:
        return 0.0
    return None if row["opted_out_at"] is not None else float(row["next_allowed_at"])


async def unemailed_notifications(
    conn: Any, user_id: str, *, after_id: int, limit: int
) -> tuple[list[Notification], int]:
    where = "WHERE user_id = $1 AND id > $2 AND read_at IS NULL"
    rows = await conn.fetch(
        f"SELECT {_NOTIFICATION_COLUMNS} FROM notifications {where} ORDER BY id DESC LIMIT $3",
        user_id,
        after_id,
        digest_page(limit),
    )
    total = await conn.fetchval(f"SELECT count(*) FROM notifications {where}", user_id, after_id)
    return [from_postgres_record(row) for row in rows], int(total)


async def finish_digest(
    conn: Any, claim: DigestClaim, *, emailed_up_to: int, next_allowed_at: float, at: str
) -> bool:
    updated = await conn.fetchval(
        "UPDATE email_digests SET claim = NULL, "
        "emailed_up_to = greatest(emailed_up_to, $1), next_allowed_at = $2, last_sent_at = $3 "
        "WHERE user_id = $4 AND claim = $5 RETURNING user_id",
        emailed_up_to,
        next_allowed_at,
        at,
        claim.user_id,
        claim.claim_id,
    )
    return updated is not None


async def release_digest(conn: Any, claim: DigestClaim, *, next_allowed_at: float) -> bool:
    updated = await conn.fetchval(
        "UPDATE email_digests SET claim = NULL, next_allowed_at = $1 "
        "WHERE user_id = $2 AND claim = $3 RETURNING user_id",
        next_allowed_at,
        claim.user_id,
        claim.claim_id,
    )
    return updated is not None


async def set_email_opt_out(conn: Any, user_id: str, *, opted_out: bool, at: str) -> None:
    await conn.execute(
        "INSERT INTO email_digests (user_id, opted_out_at) VALUES ($1, $2) "
        "ON CONFLICT (user_id) DO UPDATE SET opted_out_at = excluded.opted_out_at",
        user_id,
        at if opted_out else None,
    )
