"""The `RevocationStore` interface: operator revocations that outlive restarts and instances.

Part of `Database`: every backend (memory, SQLite, Postgres) keeps them beside the documents.
A revocation shuts a user out until a time; a newer one for the same user replaces it (an
operator may shorten or lift one by revoking again until a past time).
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class RevocationStore(Protocol):
    """Every method raises `StoreError` (and nothing else) when the backend fails."""

    async def put_revocation(self, user_id: str, until: datetime) -> None:
        """Revoke `user_id` until `until` (timezone-aware), replacing any earlier revocation
        of that user; a time not in the future lifts it. Expired revocations may be dropped."""

    async def active_revocations(self, now: datetime) -> dict[str, datetime]:
        """Every revocation still in force at `now`, user id -> until (UTC)."""
