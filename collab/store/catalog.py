"""The `CatalogStore` interface: every note of a workspace as one row, derived from its document.

Part of `Database`: every backend (memory, SQLite, Postgres) keeps the catalog beside the
documents, so a purge removes a note's content and its row in one transaction and leaves a
tombstone that no later write of its document gets past.

A row holds what a notes dashboard lists, filters, sorts and searches on (`NoteFields`, read
from the document by the rooms layer and already sanitized) and the note's lifecycle:
created, updated (by whom), trashed. The store never reads documents itself.

Sort keys are compared as the store keeps them, and a page ends with the key of its last
row (`CatalogPage.next_key`): the next page starts strictly after it (keyset pagination),
so rows inserted or moved meanwhile neither repeat nor shift what follows.

Each note is readable by the whole workspace or, when private, by its creator and the users
its share list names (`NoteAccess`); a listing for a reader (`CatalogQuery.reader`) leaves
out the private notes they cannot read.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import IntEnum, StrEnum
from functools import cached_property
from typing import Any, Protocol

import orjson

MAX_CATALOG_PAGE = 200
EXCERPT_CHARS = 200
MAX_SHARED_USERS = 100


class Priority(IntEnum):
    """`meta.priority`, ranked so that sorting by it puts the most urgent first (desc)."""

    NONE = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    URGENT = 4

    @property
    def label(self) -> str | None:
        return None if self is Priority.NONE else self.name.lower()

    @classmethod
    def from_label(cls, label: str) -> Priority | None:
        """The priority named `label` (`low`, `medium`, `high`, `urgent`), or None."""
        member = cls.__members__.get(label.upper()) if label.islower() else None
        return member if member is not Priority.NONE else None


@dataclass(frozen=True)
class NoteFields:
    """What the catalog knows of a note's content, already sanitized (see `note_fields`)."""

    title: str = ""
    tags: tuple[str, ...] = ()
    pinned: bool = False
    priority: Priority = Priority.NONE
    due: str | None = None
    """As written (a date `2026-12-24` or a date-time), normalized to ISO-8601."""
    due_at: str | None = None
    """`due` as a UTC instant (`format_timestamp`); a date alone is that day at 00:00 UTC."""
    assignees: tuple[str, ...] = ()
    excerpt: str = ""
    text: str = ""
    """The body's text as searched (at most `note_fields.MAX_SEARCH_CHARS`)."""

    @property
    def listed(self) -> tuple[Any, ...]:
        """What a listing shows of a note (`Indexed.changed` compares it): not its body text
        or `due_at`."""
        return (
            self.title,
            self.tags,
            self.pinned,
            self.priority,
            self.due,
            self.assignees,
            self.excerpt,
        )

    @cached_property
    def content_digest(self) -> str:
        """A digest of everything a row holds of a note's content: a row with the same
        digest needs no rewrite (`index_note` then only moves its clock and `updated_*`).
        Computed once per reading (the indexer reuses a note's fields while no change
        reached them)."""
        encoded = orjson.dumps(
            [
                self.title,
                self.tags,
                self.pinned,
                int(self.priority),
                self.due,
                self.due_at,
                self.assignees,
                self.excerpt,
                self.text,
            ]
        )
        return hashlib.blake2b(encoded, digest_size=16).hexdigest()


class NoteStatus(StrEnum):
    ABSENT = "absent"
    """Never created, nor edited (the id is free)."""
    ACTIVE = "active"
    """In the catalog, or with stored content not indexed yet."""
    TRASHED = "trashed"
    PURGED = "purged"
    """Gone for good: only a tombstone is left, and the id can never be used again."""


class Visibility(StrEnum):
    WORKSPACE = "workspace"
    """Every member of the workspace reads it, by their role (the default)."""
    PRIVATE = "private"
    """Only its creator and the users of its share list read it."""


@dataclass(frozen=True, slots=True)
class NoteAccess:
    """Who may read a note. `users` maps user ids to "editor" or "viewer" (at most
    `MAX_SHARED_USERS`, checked by the web layer, not the store). A workspace note may keep a
    list: it has no effect until the note is made private."""

    visibility: Visibility
    users: Mapping[str, str]
    created_by: str | None

    def readers(self) -> frozenset[str] | None:
        """Who the note lets read it: None for every member (a workspace note), else its
        creator and the users of its list."""
        if self.visibility is Visibility.WORKSPACE:
            return None
        creator = () if self.created_by is None else (self.created_by,)
        return frozenset((*self.users, *creator))

    def can_read(self, user_id: str) -> bool:
        """Whether the note lets `user_id` read it (their workspace role still applies)."""
        readers = self.readers()
        return readers is None or user_id in readers

    def listed_role(self, user_id: str) -> str | None:
        """The role the share list caps `user_id` at: "editor" or "viewer" for a listed user
        of a private note; None (no cap from the note) for a workspace note, for the creator,
        and for a user the note does not let read it at all (see `can_read`)."""
        if self.visibility is Visibility.WORKSPACE or user_id == self.created_by:
            return None
        return self.users.get(user_id)


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    workspace_id: str
    note_id: str
    fields: NoteFields
    created_at: str
    created_by: str | None
    updated_at: str
    updated_by: str | None
    trashed_at: str | None = None
    visibility: Visibility = Visibility.WORKSPACE

    @property
    def room_id(self) -> str:
        return f"{self.workspace_id}/{self.note_id}"

    @property
    def status(self) -> NoteStatus:
        return NoteStatus.TRASHED if self.trashed_at is not None else NoteStatus.ACTIVE

    def reindexed(self, fields: NoteFields, *, actor: str | None, at: str) -> CatalogEntry:
        """This entry written again from a later state, as `index_note` documents it."""
        return replace(
            self,
            fields=fields,
            updated_at=max(at, self.updated_at),
            updated_by=actor if actor is not None else self.updated_by,
        )

    def to_json(self) -> dict[str, Any]:
        f = self.fields
        return {
            "id": self.note_id,
            "workspace": self.workspace_id,
            "title": f.title,
            "tags": list(f.tags),
            "pinned": f.pinned,
            "priority": f.priority.label,
            "due": f.due,
            "assignees": list(f.assignees),
            "excerpt": f.excerpt,
            "created_at": self.created_at,
            "created_by": self.created_by,
            "updated_at": self.updated_at,
            "updated_by": self.updated_by,
            "trashed_at": self.trashed_at,
            "visibility": self.visibility.value,
        }


class SortKey(StrEnum):
    DEFAULT = "default"
    """Pinned first, then most recently updated (ignores `CatalogQuery.descending`)."""
    RELEVANCE = "relevance"
    """Best match of `CatalogQuery.text` first (only with a text query): by `SearchRank`,
    then the note first indexed last. Its key is (rank, the row's sequence number)."""
    UPDATED = "updated"
    CREATED = "created"
    DUE = "due"
    """Notes without a due date come last in either direction."""
    PRIORITY = "priority"
    TITLE = "title"
    """Case-insensitive (`str.casefold`)."""


class SearchRank(IntEnum):
    """How well a note matches a text query whose every term it holds (a term "is in" a
    column when it begins a word there), best first. Ranks, not scores: each is one
    full-text condition over the title, tags and body columns, so every backend reads the
    notes of a rank in index order and stops when the page is full, instead of scoring every
    match (a word in every note costs a page, not 100,000 rows). The rank depends on the
    note alone, so it stays put while other notes change (page cursors hold it)."""

    BODY = 0
    """No term in the title or tags."""
    PARTLY = 1
    """Some terms in the title or tags, others only in the body."""
    TITLE_OR_TAGS = 2
    """Every term in the title or tags, not all in the title."""
    TITLE = 3
    """Every term in the title."""


@dataclass(frozen=True, slots=True)
class CatalogQuery:
    """Which notes of a workspace, in which order, from where. Every filter given must match."""

    text: str | None = None
    """Full-text terms over title, tags and body text; every term must match a word (the
    last one as a prefix). Empty after reading terms (say, only punctuation): no notes."""
    tags: tuple[str, ...] = ()
    assignee: str | None = None
    pinned: bool | None = None
    priority: Priority | None = None
    due_before: str | None = None
    """Exclusive; compared with `NoteFields.due_at`; notes without a due date never match."""
    due_after: str | None = None
    """Inclusive."""
    trashed: bool = False
    """The trash only (else the trash is left out)."""
    sort: SortKey = SortKey.DEFAULT
    descending: bool = True
    limit: int = 50
    after: tuple[Any, ...] | None = None
    """The `next_key` of the previous page, as returned."""
    reader: str | None = None
    """The user listing: private notes they cannot read (`NoteAccess.can_read`) are left
    out. None lists every note (internal callers)."""


@dataclass(frozen=True, slots=True)
class CatalogPage:
    entries: list[CatalogEntry] = field(default_factory=list)
    next_key: tuple[Any, ...] | None = None
    """The sort key of the last entry when more may follow (JSON-encodable: strings, numbers,
    booleans and None), else None."""


@dataclass(frozen=True, slots=True)
class Indexed:
    """What `index_note` did. `entry` is None when nothing was written: the note is purged
    (`status`), or the row holds a later state than the one offered."""

    entry: CatalogEntry | None
    status: NoteStatus
    created: bool = False
    changed: bool = False
    """Whether the listed fields changed (not only `updated_at`): worth a `note.updated`."""

    @classmethod
    def rewritten(cls, stored: CatalogEntry, entry: CatalogEntry) -> Indexed:
        """A row that held `stored` now holds `entry`."""
        return cls(entry, stored.status, changed=entry.fields.listed != stored.fields.listed)


@dataclass(frozen=True, slots=True)
class NoteReading:
    """A note's fields as read from its document (`clock` is the document's), by the edit
    of `actor` at `at`: what `CatalogStore.index_notes` writes."""

    workspace_id: str
    note_id: str
    fields: NoteFields
    clock: int
    actor: str | None
    at: str

    @property
    def note_key(self) -> tuple[str, str]:
        return (self.workspace_id, self.note_id)


class CatalogStore(Protocol):
    """Every method raises `StoreError` (and nothing else) when the backend fails. Times are
    `format_timestamp` strings; `room_id` is `"{workspace_id}/{note_id}"` as for `Store`."""

    async def index_note(
        self,
        workspace_id: str,
        note_id: str,
        fields: NoteFields,
        *,
        clock: int,
        actor: str | None,
        at: str,
    ) -> Indexed:
        """Write the row of a note from its document's current content.

        `clock` grows with the document's content (the sum of its state vector): a row
        written from a later state (a larger clock) is not overwritten by an earlier one, so
        instances that index the same note in either order agree. The first write creates
        the row (`created_at`/`created_by` = `at`/`actor`). `updated_at` becomes `at`;
        `updated_by` becomes `actor` unless it is None (another instance's change). A
        trashed note stays trashed; a purged one gets nothing written."""

    async def index_notes(self, readings: Sequence[NoteReading]) -> list[Indexed]:
        """`index_note` of each reading, in order, for notes that differ from each other:
        the indexer's pass over its dirty notes. The notes whose row already holds their
        fields (most passes: an edit that moved the clock only) are written by one statement
        for all of them, the others one transaction each. When it raises, the rows written
        before the failure stay (each a row of its note's state), and indexing them all again
        writes the same."""

    async def create_note(
        self, workspace_id: str, note_id: str, fields: NoteFields, *, actor: str, at: str
    ) -> CatalogEntry | None:
        """Create the row of a new note; None (and nothing written) if the id is taken: it
        has a row, stored content or a tombstone."""

    async def get_note(self, workspace_id: str, note_id: str) -> CatalogEntry | None:
        """The row of a note (trashed or not); None without one."""

    async def note_status(self, room_id: str) -> NoteStatus:
        """Where a note is in its lifecycle (see `NoteStatus`)."""

    async def list_notes(self, workspace_id: str, query: CatalogQuery) -> CatalogPage:
        """One page of the workspace's notes matching `query` (at most `MAX_CATALOG_PAGE`)."""

    async def trash_note(self, workspace_id: str, note_id: str, *, at: str) -> CatalogEntry | None:
        """Move a note to the trash (`trashed_at` = `at`; kept if already trashed); None
        when it has no row."""

    async def restore_note(self, workspace_id: str, note_id: str) -> CatalogEntry | None:
        """Take a note out of the trash (a note not in it is returned as it is); None when
        it has no row."""

    async def purge_note(self, workspace_id: str, note_id: str, *, at: str) -> bool:
        """Delete the note's content (snapshot and log) and row, and leave a tombstone, in
        one transaction. From then on `append_updates` and `compact` drop what they are given
        for it, and `index_note` and `create_note` write nothing. Returns whether there was
        anything (a row or content) to purge; a purged note stays purged."""

    async def get_access(self, workspace_id: str, note_id: str) -> NoteAccess | None:
        """Who may read the note (trashed or not); None when it has no row (never created,
        or purged: a purge deletes its share list too)."""

    async def set_access(
        self,
        workspace_id: str,
        note_id: str,
        *,
        visibility: Visibility,
        users: Mapping[str, str],
        at: str,
    ) -> NoteAccess | None:
        """Replace the note's visibility and its whole share list (trashed or not), and
        nothing else (not `updated_at`); None (nothing written) when it has no row. The
        inputs are trusted: the web layer checks ids, roles and `MAX_SHARED_USERS`. `at` is
        when the change is made (no backend stores it yet)."""

    async def trashed_before(self, cutoff: str, *, limit: int = 100) -> list[str]:
        """Room ids of notes trashed before `cutoff`, oldest first (due for purging)."""

    async def rooms_to_index(
        self,
        *,
        workspace_id: str | None = None,
        everything: bool = False,
        limit: int = 100,
        after: str = "",
    ) -> list[str]:
        """Room ids with stored content, in id order after `after`, of one workspace or all:
        only those without a row (`everything=False`: what the start-up indexing catches up
        on), or all of them (`collab reindex`). Never purged ones."""

    async def first_stored_at(self, room_id: str) -> str | None:
        """When the room's oldest stored content was written, as near as the store knows (a
        note indexed late gets it as `created_at`)."""


def room_parts(room_id: str) -> tuple[str, str]:
    """`(workspace_id, note_id)` of a room id."""
    workspace_id, _, note_id = room_id.partition("/")
    return workspace_id, note_id


_WORD = re.compile(r"[^\W_]+")
MAX_QUERY_TERMS = 16
MAX_TERM_CHARS = 64


def search_terms(text: str) -> list[str]:
    """The terms of a full-text query: its words (runs of letters and digits), case-folded,
    at most MAX_QUERY_TERMS of at most MAX_TERM_CHARS. Punctuation and operators mean
    nothing: a query is never malformed."""
    return [w[:MAX_TERM_CHARS] for w in _WORD.findall(text.casefold())][:MAX_QUERY_TERMS]


def search_words(text: str) -> str:
    """`text` as every backend indexes it: its words, case-folded, separated by spaces. So
    "read_update(v1.2)" is the words read, update, v1 and 2 on every backend alike."""
    return " ".join(_WORD.findall(text.casefold()))


def due_sort_key(due_at: str | None, descending: bool) -> str:
    """The due sort key: notes without a due date last in either direction."""
    if due_at is not None:
        return due_at
    return "" if descending else "~"
