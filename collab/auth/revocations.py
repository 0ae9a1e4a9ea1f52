"""The revocations this instance enforces: user id -> time until which the user is shut out.

A plain in-memory map, filled from the store at start and kept current by bus messages, so
checking a new connection costs one dict lookup and no query. Times are Unix seconds.
"""

from __future__ import annotations

import time
from collections.abc import Mapping


class RevocationList:
    def __init__(self) -> None:
        self._until: dict[str, float] = {}

    def revoked_until(self, user_id: str, now: float | None = None) -> float | None:
        """When the user's revocation ends, or None if the user is not revoked now."""
        until = self._until.get(user_id)
        if until is None:
            return None
        if until <= (time.time() if now is None else now):
            # Expired entries go on first sight, so the map holds only live revocations
            # (plus expired ones nobody asked about since).
            del self._until[user_id]
            return None
        return until

    def set(self, user_id: str, until: float) -> None:
        """Revoke the user until `until`; a time not in the future lifts the revocation."""
        if until <= time.time():
            self._until.pop(user_id, None)
        else:
            self._until[user_id] = until

    def replace_all(self, revocations: Mapping[str, float]) -> None:
        now = time.time()
        self._until = {user: until for user, until in revocations.items() if until > now}

    def __len__(self) -> int:
        return len(self._until)
