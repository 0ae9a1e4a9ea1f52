"""The email digests of `SqliteStore`, as statements over a connection inside its transaction
(`SqliteStore._transaction`).

A claim is one upsert in an IMMEDIATE transaction: SQLite has one writer at a time (of any
process), so of two claims at once the second sees the first's hold and claims nothing.
"""

from __future__ import annotations

from typing import Any

import aiosqlite

from collab.store.email import (
    MAX_RECIPIENT_WORKSPACES,
    DigestClaim,
    MembershipRow,
    Recipient,
    digest_page,
    pick_recipient,
)
from collab.store.notification_rows import from_sqlite_row
from collab.store.notifications import Notification

_NOTIFICATION_COLUMNS = "id, user_id, workspace_id, kind, payload, created_at, read_at"


async def email_recipient(conn: aiosqlite.Connection, user_id: str) -> Recipient:
    rows = await conn.execute_fetchall(
        "SELECT workspace_id, assigned_name, token_name, email, token_email, last_seen_at "
        "FROM workspace_members WHERE user_id = ? AND removed_at IS NULL "
        "ORDER BY workspace_id LIMIT ?",
        (user_id, MAX_RECIPIENT_WORKSPACES),
    )
    opted = await conn.execute_fetchall(
        "SELECT 1 FROM email_digests WHERE user_id = ? AND opted_out_at IS NOT NULL", (user_id,)
    )
    memberships = [_membership(row) for row in rows]
    return pick_recipient(user_id, memberships, bool(list(opted)))


async def claim_digest(
    conn: aiosqlite.Connection, user_id: str, *, claim_id: str, now: float, hold_s: float
) -> DigestClaim | None:
    rows = await conn.execute_fetchall(
        "INSERT INTO email_digests (user_id, next_allowed_at, claim) VALUES (?, ?, ?) "
        "ON CONFLICT (user_id) DO UPDATE SET "
        "next_allowed_at = excluded.next_allowed_at, claim = excluded.claim "
        "WHERE email_digests.next_allowed_at <= ? AND email_digests.opted_out_at IS NULL "
        "RETURNING emailed_up_to",
        (user_id, now + hold_s, claim_id, now),
    )
    row = next(iter(rows), None)
    return None if row is None else DigestClaim(user_id, claim_id, int(row[0]))


async def digest_due_at(conn: aiosqlite.Connection, user_id: str) -> float | None:
    rows = await conn.execute_fetchall(
        "SELECT next_allowed_at, opted_out_at FROM email_digests WHERE user_id = ?", (user_id,)
    )
    row = next(iter(rows), None)
    if row is None:
        return 0.0
    return None if row[1] is not None else float(row[0])


async def unemailed_notifications(
    conn: aiosqlite.Connection, user_id: str, *, after_id: int, limit: int
) -> tuple[list[Notification], int]:
    where = "WHERE user_id = ? AND id > ? AND read_at IS NULL"
    rows = await conn.execute_fetchall(
        f"SELECT {_NOTIFICATION_COLUMNS} FROM notifications {where} ORDER BY id DESC LIMIT ?",
        (user_id, after_id, digest_page(limit)),
    )
    counted = await conn.execute_fetchall(
        f"SELECT count(*) FROM notifications {where}", (user_id, after_id)
    )
    return [from_sqlite_row(row) for row in rows], int(next(iter(counted))[0])


async def finish_digest(
    conn: aiosqlite.Connection,
    claim: DigestClaim,
    *,
    emailed_up_to: int,
    next_allowed_at: float,
    at: str,
) -> bool:
    rows = await conn.execute_fetchall(
        "UPDATE email_digests SET claim = NULL, emailed_up_to = max(emailed_up_to, ?), "
        "next_allowed_at = ?, last_sent_at = ? WHERE user_id = ? AND claim = ? "
        "RETURNING user_id",
        (emailed_up_to, next_allowed_at, at, claim.user_id, claim.claim_id),
    )
    return bool(list(rows))


async def release_digest(
    conn: aiosqlite.Connection, claim: DigestClaim, *, next_allowed_at: float
) -> bool:
    rows = await conn.execute_fetchall(
        "UPDATE email_digests SET claim = NULL, next_allowed_at = ? "
        "WHERE user_id = ? AND claim = ? RETURNING user_id",
        (next_allowed_at, claim.user_id, claim.claim_id),
    )
    return bool(list(rows))


async def set_email_opt_out(
    conn: aiosqlite.Connection, user_id: str, *, opted_out: bool, at: str
) -> None:
    await conn.execute(
        "INSERT INTO email_digests (user_id, opted_out_at) VALUES (?, ?) "
        "ON CONFLICT (user_id) DO UPDATE SET opted_out_at = excluded.opted_out_at",
        (user_id, at if opted_out else None),
    )


def _membership(row: Any) -> MembershipRow:
    workspace_id, assigned_name, token_name, email, token_email, last_seen_at = row
    return MembershipRow(
        workspace_id=str(workspace_id),
        assigned_name=assigned_name,
        token_name=token_name,
        email=email,
        token_email=token_email,
        last_seen_at=last_seen_at,
    )
