"""The catalog of `MemoryStore`: the reference for what every backend's catalog answers.

Filters, sort keys and search follow `collab.store.catalog` word for word; the SQL backends
are held to the same answers by the catalog contract suite.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from collab.store.catalog import (
    MAX_CATALOG_PAGE,
    CatalogEntry,
    CatalogPage,
    CatalogQuery,
    Indexed,
    NoteAccess,
    NoteFields,
    NoteStatus,
    SearchRank,
    SortKey,
    Visibility,
    due_sort_key,
    room_parts,
    search_terms,
    search_words,
)
from collab.store.memory_versions import MemoryVersions


@dataclass(slots=True)
class _Row:
    entry: CatalogEntry
    clock: int
    seq: int
    """Order of first indexing, as the SQL backends number their rows: relevance ties."""


class MemoryCatalog:
    """The catalog rows and tombstones; `snapshots` and `updates` tell which rooms have
    stored content, and are deleted with `versions` by a purge."""

    def __init__(
        self,
        snapshots: dict[str, tuple[bytes, int | None]],
        updates: dict[str, list[tuple[bytes, int | None]]],
        versions: MemoryVersions,
    ) -> None:
        self._snapshots = snapshots
        self._updates = updates
        self._versions = versions
        self._rows: dict[str, _Row] = {}
        self._tombstones: dict[str, str] = {}
        self._shares: dict[str, dict[str, str]] = {}
        self._last_seq = 0
        self.first_stored: dict[str, str] = {}

    def _next_seq(self) -> int:
        self._last_seq += 1
        return self._last_seq

    def is_purged(self, room_id: str) -> bool:
        return room_id in self._tombstones

    def entries(self) -> list[CatalogEntry]:
        """Every note's entry, trashed or not."""
        return [row.entry for row in self._rows.values()]

    def _has_content(self, room_id: str) -> bool:
        return room_id in self._snapshots or bool(self._updates.get(room_id))

    def index_note(
        self,
        workspace_id: str,
        note_id: str,
        fields: NoteFields,
        *,
        clock: int,
        actor: str | None,
        at: str,
    ) -> Indexed:
        room_id = f"{workspace_id}/{note_id}"
        if room_id in self._tombstones:
            return Indexed(None, NoteStatus.PURGED)
        row = self._rows.get(room_id)
        if row is None:
            entry = CatalogEntry(workspace_id, note_id, fields, at, actor, at, actor)
            self._rows[room_id] = _Row(entry, clock, self._next_seq())
            return Indexed(entry, NoteStatus.ACTIVE, created=True, changed=True)
        if clock < row.clock:
            return Indexed(None, row.entry.status)
        entry = row.entry.reindexed(fields, actor=actor, at=at)
        indexed = Indexed.rewritten(row.entry, entry)
        self._rows[room_id] = _Row(entry, clock, row.seq)
        return indexed

    def create_note(
        self, workspace_id: str, note_id: str, fields: NoteFields, *, actor: str, at: str
    ) -> CatalogEntry | None:
        room_id = f"{workspace_id}/{note_id}"
        if room_id in self._rows or room_id in self._tombstones or self._has_content(room_id):
            return None
        entry = CatalogEntry(workspace_id, note_id, fields, at, actor, at, actor)
        self._rows[room_id] = _Row(entry, 0, self._next_seq())
        return entry

    def get_note(self, workspace_id: str, note_id: str) -> CatalogEntry | None:
        row = self._rows.get(f"{workspace_id}/{note_id}")
        return None if row is None else row.entry

    def note_status(self, room_id: str) -> NoteStatus:
        if room_id in self._tombstones:
            return NoteStatus.PURGED
        row = self._rows.get(room_id)
        if row is not None:
            return row.entry.status
        return NoteStatus.ACTIVE if self._has_content(room_id) else NoteStatus.ABSENT

    def list_notes(self, workspace_id: str, query: CatalogQuery) -> CatalogPage:
        terms = search_terms(query.text) if query.text is not None else None
        keyed: list[tuple[tuple[Any, ...], CatalogEntry]] = []
        for row in self._rows.values():
            entry = row.entry
            if entry.workspace_id != workspace_id or not _matches(entry, query):
                continue
            if query.reader is not None and not self._access(entry).can_read(query.reader):
                continue
            rank = SearchRank.BODY
            if terms is not None:
                found = relevance(entry.fields, terms)
                if found is None:
                    continue
                rank = found
            keyed.append((sort_key(entry, query, rank, row.seq), entry))
        descending = query.descending or query.sort in (SortKey.DEFAULT, SortKey.RELEVANCE)
        keyed.sort(key=lambda pair: pair[0], reverse=descending)
        if query.after is not None:
            after = tuple(query.after)
            keyed = [pair for pair in keyed if (pair[0] < after if descending else pair[0] > after)]
        limit = max(1, min(query.limit, MAX_CATALOG_PAGE))
        page = keyed[:limit]
        more = len(keyed) > limit
        return CatalogPage([entry for _, entry in page], page[-1][0] if more else None)

    def get_access(self, workspace_id: str, note_id: str) -> NoteAccess | None:
        row = self._rows.get(f"{workspace_id}/{note_id}")
        return None if row is None else self._access(row.entry)

    def set_access(
        self, workspace_id: str, note_id: str, *, visibility: Visibility, users: Mapping[str, str]
    ) -> NoteAccess | None:
        room_id = f"{workspace_id}/{note_id}"
        row = self._rows.get(room_id)
        if row is None:
            return None
        row.entry = replace(row.entry, visibility=visibility)
        self._shares[room_id] = dict(users)
        return self._access(row.entry)

    def _access(self, entry: CatalogEntry) -> NoteAccess:
        users = dict(self._shares.get(entry.room_id, {}))
        return NoteAccess(entry.visibility, users, entry.created_by)

    def trash_note(self, workspace_id: str, note_id: str, *, at: str) -> CatalogEntry | None:
        row = self._rows.get(f"{workspace_id}/{note_id}")
        if row is None:
            return None
        if row.entry.trashed_at is None:
            row.entry = replace(row.entry, trashed_at=at)
        return row.entry

    def restore_note(self, workspace_id: str, note_id: str) -> CatalogEntry | None:
        row = self._rows.get(f"{workspace_id}/{note_id}")
        if row is None:
            return None
        row.entry = replace(row.entry, trashed_at=None)
        return row.entry

    def purge_note(self, workspace_id: str, note_id: str, *, at: str) -> bool:
        room_id = f"{workspace_id}/{note_id}"
        if room_id in self._tombstones:
            return False
        existed = self._rows.pop(room_id, None) is not None or self._has_content(room_id)
        self._shares.pop(room_id, None)
        self._snapshots.pop(room_id, None)
        self._updates.pop(room_id, None)
        self._versions.forget(room_id)
        self.first_stored.pop(room_id, None)
        if existed:
            self._tombstones[room_id] = at
        return existed

    def trashed_before(self, cutoff: str, *, limit: int) -> list[str]:
        trashed = sorted(
            (row.entry.trashed_at, room_id)
            for room_id, row in self._rows.items()
            if row.entry.trashed_at is not None and row.entry.trashed_at < cutoff
        )
        return [room_id for _, room_id in trashed[:limit]]

    def rooms_to_index(
        self, *, workspace_id: str | None, everything: bool, limit: int, after: str
    ) -> list[str]:
        rooms = {room_id for room_id in self._snapshots} | {
            room_id for room_id, log in self._updates.items() if log
        }
        found = sorted(
            room_id
            for room_id in rooms
            if room_id > after
            and room_id not in self._tombstones
            and (everything or room_id not in self._rows)
            and (workspace_id is None or room_parts(room_id)[0] == workspace_id)
        )
        return found[:limit]


def _matches(entry: CatalogEntry, query: CatalogQuery) -> bool:
    f = entry.fields
    if (entry.trashed_at is not None) != query.trashed:
        return False
    if query.tags and not set(query.tags) <= set(f.tags):
        return False
    if query.assignee is not None and query.assignee not in f.assignees:
        return False
    if query.pinned is not None and f.pinned != query.pinned:
        return False
    if query.priority is not None and f.priority != query.priority:
        return False
    if query.due_before is not None and (f.due_at is None or f.due_at >= query.due_before):
        return False
    return query.due_after is None or (f.due_at is not None and f.due_at >= query.due_after)


def relevance(fields: NoteFields, terms: list[str]) -> SearchRank | None:
    """The note's `SearchRank` for `terms`, None unless every term begins a word of its
    title, tags or body."""
    if not terms:
        return None
    title = search_words(fields.title).split()
    tags = search_words(" ".join(fields.tags)).split()
    body: list[str] | None = None
    in_title = in_heading = 0
    for term in terms:
        if _begins(title, term):
            in_title += 1
            in_heading += 1
        elif _begins(tags, term):
            in_heading += 1
        else:
            body = search_words(fields.text).split() if body is None else body
            if not _begins(body, term):
                return None
    if in_title == len(terms):
        return SearchRank.TITLE
    if in_heading == len(terms):
        return SearchRank.TITLE_OR_TAGS
    return SearchRank.PARTLY if in_heading else SearchRank.BODY


def _begins(words: list[str], term: str) -> bool:
    return any(word.startswith(term) for word in words)


def sort_key(
    entry: CatalogEntry, query: CatalogQuery, rank: SearchRank, seq: int
) -> tuple[Any, ...]:
    f = entry.fields
    match query.sort:
        case SortKey.DEFAULT:
            return (int(f.pinned), entry.updated_at, entry.note_id)
        case SortKey.RELEVANCE:
            return (int(rank), seq)
        case SortKey.UPDATED:
            return (entry.updated_at, entry.note_id)
        case SortKey.CREATED:
            return (entry.created_at, entry.note_id)
        case SortKey.DUE:
            return (due_sort_key(f.due_at, query.descending), entry.note_id)
        case SortKey.PRIORITY:
            return (int(f.priority), entry.note_id)
        case SortKey.TITLE:
            return (f.title.casefold(), entry.note_id)
