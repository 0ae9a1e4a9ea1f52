"""The `VersionStore` interface: the version history of each note.

Part of `Database`. A version is a copy of a room's whole document state at one moment:

- **auto**: taken by the server now and then while a note is edited; one that would repeat
  the room's newest state, or come too soon after its newest version (`min_gap_s`), is not
  stored, so instances trying the same one at once store it once;
- **named**: asked for by someone, with a name; stored even when the state is unchanged;
- **restore**: the state a note was brought back to, asked for by someone.

Each version names its **authors**: the users whose updates were logged for the room since
its previous version. `Store.append_updates` records them in the room's set of authors since
its last version; storing a version takes that set (empties it) in the same transaction.

A state is stored zlib-compressed, once per room and content (its SHA-256 digest): versions of
an unchanged state share it, and it is deleted with the last version referring to it. Ids
are decimal strings of positive 64-bit integers, unique per database and growing with time;
any other string names no version. Times are `format_timestamp` strings, kept as given.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import zlib
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol, get_args

from collab.errors import StoreError

VersionKind = Literal["auto", "named", "restore"]
VERSION_KINDS: tuple[str, ...] = get_args(VersionKind)
MAX_VERSION_PAGE = 100
MAX_VERSION_ID = 2**63 - 1
"""Version ids fit a signed 64-bit column in every backend."""
COMPRESSION_LEVEL = 6
_VERSION_ID = re.compile(r"[1-9][0-9]{0,18}")


@dataclass(frozen=True, slots=True)
class Version:
    id: str
    """A decimal string of a positive integer, unique per database, growing with time."""
    room_id: str
    created_at: str
    kind: str
    """A `VersionKind`."""
    name: str | None
    created_by: str | None
    """Who asked for it (named, restore); None for an automatic version."""
    authors: tuple[str, ...]
    """The user ids who edited the room since its previous version, sorted."""
    size: int
    """Bytes of the uncompressed state."""

    def to_json(self) -> dict[str, Any]:
        """The version as the REST API, live events and webhooks show it."""
        return {
            "id": self.id,
            "created_at": self.created_at,
            "kind": self.kind,
            "name": self.name,
            "created_by": self.created_by,
            "authors": list(self.authors),
            "size": self.size,
        }


class VersionStore(Protocol):
    """Every method raises `StoreError` (and nothing else) when the backend fails."""

    async def add_version(
        self,
        room_id: str,
        state: bytes,
        *,
        kind: str,
        name: str | None,
        created_by: str | None,
        at: str,
        min_gap_s: float | None = None,
    ) -> Version | None:
        """Store a version of the room's document, `state` being a Yjs v1 update of its whole
        state, in one transaction; return it, or None when nothing was stored:

        - the room's note was purged (it has a tombstone);
        - `kind` is "auto" and `state` is the state of the room's newest version, or
          `min_gap_s` is given and the room's newest version (of any kind) was created less
          than `min_gap_s` seconds before `at`. Automatic versions of one room are decided
          one after the other, by every instance: of several tried at once, one is stored.

        The version's authors are the room's authors since its last version, taken. Raises
        `ValueError` for a `kind` that is not a `VersionKind`."""

    async def list_versions(
        self, room_id: str, *, limit: int, before: str | None = None
    ) -> list[Version]:
        """The room's versions, newest (greatest id) first, at most `limit` (capped at
        `MAX_VERSION_PAGE`); with `before`, only those whose id is less (a page's cursor).
        A `before` that is no version id reads an empty page."""

    async def get_version(self, room_id: str, version_id: str) -> Version | None:
        """The version of the room with that id; None if there is none."""

    async def version_state(self, room_id: str, version_id: str) -> bytes | None:
        """The state of the version of the room with that id, as it was given to
        `add_version`; None if there is no such version."""

    async def delete_versions(self, room_id: str, version_ids: Collection[str]) -> int:
        """Delete those versions of the room (ids naming none are ignored), and the states no
        version refers to any more, in one transaction; return how many were deleted."""

    async def rooms_with_versions(
        self, *, created_before: str, after: str | None, limit: int
    ) -> list[str]:
        """The rooms with at least one automatic version created before `created_before`,
        by room id after `after` (None: from the first), at most `limit` (at least 1): the
        retention sweep's pages."""

    async def version_bytes(self) -> int:
        """Bytes the stored (compressed) states of every room take."""


@dataclass(frozen=True, slots=True)
class PackedState:
    """A state as `add_version` stores it."""

    digest: bytes
    """SHA-256 of the state: equal states, equal digests."""
    data: bytes
    """The state, zlib-compressed."""
    size: int
    """Bytes of the state."""


async def pack_state(state: bytes) -> PackedState:
    """`state` digested and compressed in a worker thread: zlib and hashlib release the GIL,
    and a large state takes milliseconds the event loop should not wait."""
    return await asyncio.to_thread(_pack, bytes(state))


async def unpack_state(data: bytes) -> bytes:
    """The state `data` holds, decompressed in a worker thread; raise `StoreError` if it does
    not decompress."""
    try:
        return await asyncio.to_thread(zlib.decompress, data)
    except zlib.error as exc:
        raise StoreError(f"a stored version state does not decompress: {exc}") from exc


def check_kind(kind: str) -> None:
    """Raise `ValueError` unless `kind` is a `VersionKind`."""
    if kind not in VERSION_KINDS:
        raise ValueError(f"a version kind is one of {', '.join(VERSION_KINDS)}, not {kind!r}")


def version_number(version_id: str) -> int | None:
    """The integer a version id stands for; None for a string that is no version id (only
    the canonical decimal form of 1 to `MAX_VERSION_ID` is one: no sign, no leading zero)."""
    if not isinstance(version_id, str) or not _VERSION_ID.fullmatch(version_id):
        return None
    number = int(version_id)
    return number if number <= MAX_VERSION_ID else None


def version_numbers(version_ids: Collection[str]) -> list[int]:
    """The distinct integers of those of `version_ids` that are version ids, ascending."""
    return sorted({n for n in map(version_number, version_ids) if n is not None})


def page_limit(limit: int) -> int:
    """`limit` within 1 and `MAX_VERSION_PAGE`."""
    return max(1, min(limit, MAX_VERSION_PAGE))


def room_page_limit(limit: int) -> int:
    """`limit` at least 1 (SQLite reads a negative LIMIT as none)."""
    return max(1, limit)


def refused(
    kind: str,
    newest: tuple[bytes, str] | None,
    digest: bytes,
    at: str,
    min_gap_s: float | None,
) -> bool:
    """Whether `add_version` stores nothing, `newest` being the digest and creation time of
    the room's newest version (None: it has none). A newest version created after `at` (by an
    instance whose clock is ahead) is too recent for any gap."""
    if kind != "auto" or newest is None:
        return False
    newest_digest, newest_at = newest
    if newest_digest == digest:
        return True
    if min_gap_s is None:
        return False
    elapsed = datetime.fromisoformat(at) - datetime.fromisoformat(newest_at)
    return elapsed < timedelta(seconds=min_gap_s)


def _pack(state: bytes) -> PackedState:
    return PackedState(
        hashlib.sha256(state).digest(), zlib.compress(state, COMPRESSION_LEVEL), len(state)
    )
