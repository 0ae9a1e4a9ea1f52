"""The version history of `MemoryStore`: the reference for what every backend's history
answers. The SQL backends are held to the same answers by the version contract suite.

States are kept compressed, as the SQL backends keep them, so `version_bytes` counts alike.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from collab.store.versions import (
    PackedState,
    Version,
    page_limit,
    refused,
    room_page_limit,
    version_number,
    version_numbers,
)


@dataclass(frozen=True, slots=True)
class _StoredState:
    data: bytes
    size: int


@dataclass(frozen=True, slots=True)
class _StoredVersion:
    version: Version
    digest: bytes


class MemoryVersions:
    """The versions, states and authors since the last version of every room."""

    def __init__(self) -> None:
        # Per room, by id; dicts keep insertion order, which is id order.
        self._versions: dict[str, dict[int, _StoredVersion]] = {}
        # Per room, by digest.
        self._states: dict[str, dict[bytes, _StoredState]] = {}
        self._authors: dict[str, set[str]] = {}
        self._last_id = 0

    def record_authors(self, authors: Iterable[tuple[str, str]]) -> None:
        for room_id, user_id in authors:
            self._authors.setdefault(room_id, set()).add(user_id)

    def add_version(
        self,
        room_id: str,
        packed: PackedState,
        *,
        kind: str,
        name: str | None,
        created_by: str | None,
        at: str,
        min_gap_s: float | None,
    ) -> Version | None:
        versions = self._versions.get(room_id, {})
        newest = next(reversed(versions.values()), None)
        last = None if newest is None else (newest.digest, newest.version.created_at)
        if refused(kind, last, packed.digest, at, min_gap_s):
            return None
        states = self._states.setdefault(room_id, {})
        states.setdefault(packed.digest, _StoredState(packed.data, packed.size))
        self._last_id += 1
        version = Version(
            id=str(self._last_id),
            room_id=room_id,
            created_at=at,
            kind=kind,
            name=name,
            created_by=created_by,
            authors=tuple(sorted(self._authors.pop(room_id, ()))),
            size=packed.size,
        )
        self._versions.setdefault(room_id, {})[self._last_id] = _StoredVersion(
            version, packed.digest
        )
        return version

    def list_versions(self, room_id: str, *, limit: int, before: str | None) -> list[Version]:
        bound = None if before is None else version_number(before)
        if before is not None and bound is None:
            return []
        page = page_limit(limit)
        found: list[Version] = []
        for number, stored in reversed(self._versions.get(room_id, {}).items()):
            if len(found) == page:
                break
            if bound is None or number < bound:
                found.append(stored.version)
        return found

    def get_version(self, room_id: str, version_id: str) -> Version | None:
        stored = self._find(room_id, version_id)
        return None if stored is None else stored.version

    def state_data(self, room_id: str, version_id: str) -> bytes | None:
        """The compressed state of the version; None if there is no such version."""
        stored = self._find(room_id, version_id)
        return None if stored is None else self._states[room_id][stored.digest].data

    def delete_versions(self, room_id: str, version_ids: Collection[str]) -> int:
        versions = self._versions.get(room_id, {})
        gone = [versions.pop(n) for n in version_numbers(version_ids) if n in versions]
        kept = {stored.digest for stored in versions.values()}
        for digest in {stored.digest for stored in gone} - kept:
            del self._states[room_id][digest]
        if not versions:
            self._versions.pop(room_id, None)
            self._states.pop(room_id, None)
        return len(gone)

    def rooms_with_versions(
        self, *, created_before: str, after: str | None, limit: int
    ) -> list[str]:
        rooms = sorted(
            room_id
            for room_id, versions in self._versions.items()
            if (after is None or room_id > after)
            and any(
                s.version.kind == "auto" and s.version.created_at < created_before
                for s in versions.values()
            )
        )
        return rooms[: room_page_limit(limit)]

    def version_bytes(self) -> int:
        return sum(len(s.data) for states in self._states.values() for s in states.values())

    def forget(self, room_id: str) -> None:
        """Delete the room's versions, states and authors (its note is purged)."""
        self._versions.pop(room_id, None)
        self._states.pop(room_id, None)
        self._authors.pop(room_id, None)

    def _find(self, room_id: str, version_id: str) -> _StoredVersion | None:
        number = version_number(version_id)
        return None if number is None else self._versions.get(room_id, {}).get(number)
