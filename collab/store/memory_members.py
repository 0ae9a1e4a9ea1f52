"""The member directory of `MemoryStore`: the reference for what every backend's directory
answers. The SQL backends are held to the same answers by the member contract suite."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from collab.store.email import MAX_RECIPIENT_WORKSPACES, MembershipRow
from collab.store.members import MAX_MEMBERS_READ, Member, SeenMember, latest_seen, name_key


class MemoryMembers:
    """The member rows of every workspace."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], Member] = {}
        # The `token_email` column of the SQL backends, which `Member` does not show.
        self._token_emails: dict[tuple[str, str], str] = {}

    def record_seen(self, seen: Sequence[SeenMember]) -> None:
        for entry in latest_seen(seen):
            key = (entry.workspace_id, entry.user_id)
            row = self._rows.get(key)
            if entry.email is not None and (row is None or row.removed_at is None):
                self._token_emails[key] = entry.email
            if row is None:
                self._rows[key] = Member(
                    workspace_id=entry.workspace_id,
                    user_id=entry.user_id,
                    assigned_name=None,
                    token_name=entry.name,
                    email=None,
                    token_role=entry.role,
                    assigned_role=None,
                    last_seen_at=entry.at,
                    removed_at=None,
                )
            elif row.removed_at is None:
                self._rows[key] = replace(
                    row,
                    token_role=entry.role,
                    token_name=row.token_name if entry.name is None else entry.name,
                    last_seen_at=max(row.last_seen_at or "", entry.at),
                )

    def put_member(
        self,
        workspace_id: str,
        user_id: str,
        *,
        role: str,
        name: str | None,
        email: str | None,
    ) -> tuple[Member, bool]:
        row = self._rows.get((workspace_id, user_id))
        member = Member(
            workspace_id=workspace_id,
            user_id=user_id,
            assigned_name=name,
            token_name=None if row is None else row.token_name,
            email=email,
            token_role=None if row is None else row.token_role,
            assigned_role=role,
            last_seen_at=None if row is None else row.last_seen_at,
            removed_at=None,
        )
        self._rows[(workspace_id, user_id)] = member
        return member, row is None or row.removed_at is not None

    def remove_member(self, workspace_id: str, user_id: str, *, at: str) -> Member | None:
        row = self._rows.get((workspace_id, user_id))
        if row is None or row.removed_at is not None:
            return None
        removed = replace(row, removed_at=at)
        self._rows[(workspace_id, user_id)] = removed
        return removed

    def get_member(self, workspace_id: str, user_id: str) -> Member | None:
        return self._rows.get((workspace_id, user_id))

    def list_members(
        self, workspace_id: str, *, prefix: str, after: str, limit: int
    ) -> list[Member]:
        folded = prefix.casefold()
        found = sorted(
            (
                row
                for (row_workspace_id, user_id), row in self._rows.items()
                if row_workspace_id == workspace_id
                and row.removed_at is None
                and user_id > after
                and (
                    user_id.startswith(prefix)
                    or name_key(row.assigned_name, row.token_name).startswith(folded)
                )
            ),
            key=lambda row: row.user_id,
        )
        return found[: max(1, min(limit, MAX_MEMBERS_READ))]

    def managed_members(self) -> list[Member]:
        return [row for _, row in sorted(self._rows.items()) if row.managed]

    def memberships(self, user_id: str) -> list[MembershipRow]:
        """The user's active memberships by workspace id, as `email_recipient` reads them."""
        rows = sorted(
            (row for (_, row_user_id), row in self._rows.items() if row_user_id == user_id),
            key=lambda row: row.workspace_id,
        )
        return [
            MembershipRow(
                workspace_id=row.workspace_id,
                assigned_name=row.assigned_name,
                token_name=row.token_name,
                email=row.email,
                token_email=self._token_emails.get((row.workspace_id, user_id)),
                last_seen_at=row.last_seen_at,
            )
            for row in rows
            if row.removed_at is None
        ][:MAX_RECIPIENT_WORKSPACES]

    def non_members(self, workspace_id: str, user_ids: Sequence[str]) -> list[str]:
        return [u for u in user_ids if self._is_stranger(workspace_id, u)]

    def _is_stranger(self, workspace_id: str, user_id: str) -> bool:
        row = self._rows.get((workspace_id, user_id))
        return row is None or row.removed_at is not None
