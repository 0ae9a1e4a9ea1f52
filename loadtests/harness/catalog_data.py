"""A notes workspace for the catalog benchmark, written straight through the store.

N notes with fields a real workspace has: titles of a few words and ~1 KB bodies drawn from
one vocabulary with a Zipf distribution (a few dozen English stop words and common words at
the top, then made-up words), 0-5 tags of a set of 50 (Zipf too), pinned ~2 %, a priority
(none 45 %, low 20 %, medium 20 %, high 10 %, urgent 5 %), a due date for ~30 % spread over
±60 days around now (half of them dates, half date-times), 0-3 assignees of 40 users,
created over the past year, ~40 % edited again later, ~1 % in the trash (put there in
the last 20 days, so the server's retention does not purge them while it is measured).

Rows are written with the store's catalog interface (`index_note` with `NoteFields`, then
`trash_note`), not with WebSocket edits. On SQLite the very statements `SqliteStore` runs for
them (`sqlite_catalog.index_note`, `trash_note`) go through a plain `sqlite3` connection, a
thousand notes per transaction (`SqliteWriter`), several times faster than a transaction per
call through aiosqlite; other stores get their own methods' calls (`StoreWriter`). With
`documents=True` each note's Yjs document (`note_fields.note_content`) is stored too
(`append_updates`, through the store) and its row is read from it as the indexer would
(`note_fields`, the document's clock), so opening a note works; the listing and search
queries do not need it.

Everything is drawn from one seeded `random.Random`: the same seed and count give the same
workspace. The words the search queries use are fixed by rank, and how many notes hold each
is counted while generating.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import random
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pycrdt import Doc, get_state

from collab.protocol.updates import read_state_vector
from collab.rooms.note_fields import note_content, note_fields, parse_due
from collab.store import SqliteStore, create_store, sqlite_catalog
from collab.store.catalog import EXCERPT_CHARS, NoteFields, NoteReading, Priority
from collab.store.rows import format_timestamp

WORKSPACE = "bench"
VOCABULARY_SIZE = 20_000
ZIPF_S = 1.0
POOL_WORDS = 1 << 20
BODY_CHARS = 1000
WORDS_PER_PARAGRAPH = 30
USERS = 40
TRASHED_SHARE = 0.01
EDITED_SHARE = 0.4
DUE_SHARE = 0.3
DUE_SPREAD_DAYS = 60
PINNED_SHARE = 0.02
HISTORY_DAYS = 365
TRASH_WINDOW_DAYS = 20
SQLITE_BATCH = 1000
SQLITE_CACHE_KIB = 512 * 1024
WRITERS = 4
"""`index_note` calls in flight: PostgreSQL overlaps them; SQLite serializes them (one
connection), where the overlap is only our Python preparing the next note."""

# The most frequent words, most frequent first: stop words, then words notes are made of.
TOP_WORDS = (
    "the to and a of in for is on that with it be this we at as from are by will or "
    "not have an can if all should but need our team next new also up about more out "
    "meeting project review design release plan update issue notes customer data api "
    "service support test draft budget roadmap sprint feedback deadline report decision "
    "launch migration server client database feature bug fix deploy security access "
    "performance summary question action owner status risk goal metric dashboard "
    "document proposal contract invoice hiring interview onboarding training workshop "
    "agenda retro demo prototype research analysis survey user mobile web backend "
    "frontend pipeline build staging production incident outage alert monitoring log "
    "backup storage cache query index schema config version branch merge"
).split()
TAGS = (
    "work personal urgent ideas todo reading engineering product marketing "
    "sales finance legal ops infra frontend-team backend-team mobile-team qa devops "
    "hiring-pipeline onboarding-docs meetings one-on-one retrospective planning "
    "roadmap-q1 roadmap-q2 roadmap-q3 roadmap-q4 customers partners vendors travel "
    "recipes health books movies music writing journal learning side-project home "
    "garden family archive reference templates later someday"
).split()
PRIORITIES = (
    (Priority.NONE, 45),
    (Priority.LOW, 20),
    (Priority.MEDIUM, 20),
    (Priority.HIGH, 10),
    (Priority.URGENT, 5),
)
TAG_COUNTS = ((0, 15), (1, 25), (2, 25), (3, 15), (4, 12), (5, 8))
ASSIGNEE_COUNTS = ((0, 40), (1, 35), (2, 18), (3, 7))
TITLE_WORDS = (2, 7)

# The words the search queries ask for, by rank in the vocabulary (0 is the most frequent):
# what share of ~1 KB bodies hold a word of rank r follows from the Zipf law alone.
FREQUENT_RANK = 0  # "the": in every note
COMMON_RANK = 49  # a content word in about a quarter of the notes
SECOND_RANK = 59  # another, for the two-word query
RARE_RANK = VOCABULARY_SIZE - 1  # the least frequent word: in about 0.1 % of the notes
PREFIX_CHARS = 3

_SYLLABLES = [c + v for c in "bcdfghjklmnprstvwz" for v in "aeiou"] + [
    c + v + e for c in "bdklmnprst" for v in "aeiou" for e in "lnrs"
]


def vocabulary(rng: random.Random, size: int = VOCABULARY_SIZE) -> list[str]:
    """`TOP_WORDS` then made-up words of 2-3 syllables, all distinct, `size` in all."""
    words = list(dict.fromkeys(TOP_WORDS))
    seen = set(words) | set(TAGS)
    while len(words) < size:
        word = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def _cumulative(weights: list[float]) -> list[float]:
    return list(itertools.accumulate(weights))


@dataclass
class SearchWords:
    """The words of the search queries and how many live notes each query matches. Every
    backend matches each term as a prefix of a word of the title, tags or body: "the"
    matches "then" too, "customer" the tag "customers"."""

    frequent: str
    common: str
    second: str
    rare: str
    prefix: str
    known: list[str]
    """Every word a note can hold: the vocabulary and the words of the tags."""
    matches: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._begin = {
            term: frozenset(word for word in self.known if word.startswith(term))
            for term in (self.frequent, self.common, self.second, self.rare, self.prefix)
        }

    def count(self, words: set[str], tags: tuple[str, ...], top_tag: str) -> None:
        words = words | {part for tag in tags for part in tag.split("-")}

        def has(term: str) -> bool:
            return not words.isdisjoint(self._begin[term])

        found = {
            "frequent": has(self.frequent),
            "common": has(self.common),
            "rare": has(self.rare),
            "prefix": has(self.prefix),
        }
        found["common+second"] = found["common"] and has(self.second)
        found["common+tag"] = found["common"] and top_tag in tags
        for name, hit in found.items():
            if hit:
                self.matches[name] = self.matches.get(name, 0) + 1


@dataclass(frozen=True)
class Note:
    note_id: str
    fields: NoteFields
    created_at: str
    creator: str
    edited_at: str | None
    editor: str | None
    trashed_at: str | None


class Maker:
    """Draws notes. Every random choice goes through `self.rng`, in note order."""

    def __init__(self, seed: int, now: datetime) -> None:
        self.rng = random.Random(seed)
        self.now = now
        self.words = vocabulary(self.rng)
        weights = _cumulative([1 / (r + 1) ** ZIPF_S for r in range(len(self.words))])
        # Words are drawn as slices of one long i.i.d. Zipf sequence at random offsets: the
        # same distribution per note at a fraction of the cost of drawing each word.
        self._pool = [
            self.words[bisect.bisect_left(weights, self.rng.random() * weights[-1])]
            for _ in range(POOL_WORDS)
        ]
        self._tag_weights = _cumulative([1 / (r + 1) for r in range(len(TAGS))])
        self.users = [f"user-{n:03d}" for n in range(USERS)]
        self.top_tag = TAGS[0]
        common = self.words[COMMON_RANK]
        self.search = SearchWords(
            frequent=self.words[FREQUENT_RANK],
            common=common,
            second=self.words[SECOND_RANK],
            rare=self.words[RARE_RANK],
            prefix=common[:PREFIX_CHARS],
            known=self.words + [part for tag in TAGS for part in tag.split("-")],
        )

    def _draw_words(self, count: int) -> list[str]:
        start = self.rng.randrange(len(self._pool) - count)
        return self._pool[start : start + count]

    def _choose(self, table: tuple[tuple[Any, int], ...]) -> Any:
        values, weights = zip(*table, strict=True)
        return self.rng.choices(values, weights)[0]

    def _tags(self) -> tuple[str, ...]:
        wanted = self._choose(TAG_COUNTS)
        total = self._tag_weights[-1]
        tags: dict[str, None] = {}
        while len(tags) < wanted:
            tags.setdefault(
                TAGS[bisect.bisect_left(self._tag_weights, self.rng.random() * total)], None
            )
        return tuple(tags)

    def _body(self, seen: set[str]) -> str:
        paragraphs: list[str] = []
        size = 0
        while size < BODY_CHARS:
            words = self._draw_words(WORDS_PER_PARAGRAPH)
            seen.update(words)
            paragraph = " ".join(words).capitalize() + "."
            paragraphs.append(paragraph)
            size += len(paragraph) + 1
        return "\n".join(paragraphs)

    def _moment(self, earliest: datetime, latest: datetime) -> datetime:
        return earliest + (latest - earliest) * self.rng.random()

    def _due(self) -> tuple[str, str] | None:
        if self.rng.random() >= DUE_SHARE:
            return None
        moment = self.now + timedelta(days=self.rng.uniform(-DUE_SPREAD_DAYS, DUE_SPREAD_DAYS))
        if self.rng.random() < 0.5:
            written = moment.date().isoformat()
        else:
            written = moment.replace(minute=0, second=0, microsecond=0).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            )
        return parse_due(written)

    def note(self, index: int) -> Note:
        rng = self.rng
        title_words = self._draw_words(rng.randint(*TITLE_WORDS))
        title = " ".join(title_words).capitalize()
        tags = self._tags()
        seen = set(title_words)
        body = self._body(seen)
        due = self._due()
        assignees = tuple(rng.sample(self.users, self._choose(ASSIGNEE_COUNTS)))
        fields = NoteFields(
            title=title,
            tags=tags,
            pinned=rng.random() < PINNED_SHARE,
            priority=self._choose(PRIORITIES),
            due=None if due is None else due[0],
            due_at=None if due is None else due[1],
            assignees=assignees,
            excerpt=" ".join(body[: EXCERPT_CHARS * 4].split())[:EXCERPT_CHARS],
            text=body,
        )
        created = self._moment(self.now - timedelta(days=HISTORY_DAYS), self.now)
        edited = self._moment(created, self.now) if rng.random() < EDITED_SHARE else None
        trashed = None
        if rng.random() < TRASHED_SHARE:
            # Recently: the server purges what has been in the trash for 30 days at start.
            recent = self.now - timedelta(days=TRASH_WINDOW_DAYS)
            trashed = self._moment(max(edited or created, recent), self.now)
        if trashed is None:
            self.search.count(seen, tags, self.top_tag)
        return Note(
            note_id=f"n{index:07d}",
            fields=fields,
            created_at=format_timestamp(created),
            creator=rng.choice(self.users),
            edited_at=None if edited is None else format_timestamp(edited),
            editor=None if edited is None else rng.choice(self.users),
            trashed_at=None if trashed is None else format_timestamp(trashed),
        )


def document_of(fields: NoteFields) -> tuple[bytes, NoteFields, int]:
    """The note's Yjs document as one update, the fields the indexer reads from it, and the
    clock it writes them with."""
    update = note_content(
        title=fields.title,
        tags=list(fields.tags),
        pinned=fields.pinned,
        priority=fields.priority.label,
        due=fields.due,
        assignees=list(fields.assignees),
        text=fields.text,
    )
    doc: Doc[Any] = Doc()
    doc.apply_update(update)
    clock = sum(read_state_vector(get_state(update)).values())
    return update, note_fields(doc), clock


@dataclass
class Generated:
    notes: int
    live: int
    trashed: int
    edited: int
    seconds: float
    index_calls: int
    documents: bool
    writes: str
    search: SearchWords
    tags: list[str]
    users: list[str]
    now: str

    def to_json(self) -> dict[str, Any]:
        return {
            "workspace": WORKSPACE,
            "notes": self.notes,
            "live": self.live,
            "trashed": self.trashed,
            "edited_later": self.edited,
            "seconds": round(self.seconds, 1),
            "notes_per_s": round(self.notes / self.seconds) if self.seconds else None,
            "index_note_calls": self.index_calls,
            "documents": self.documents,
            "method": "rows written through the store's catalog interface (index_note with "
            f"NoteFields, trash_note: {self.writes})"
            + (", documents through append_updates" if self.documents else ", no documents")
            + "; no WebSocket edits",
            "search_words": {
                "frequent": self.search.frequent,
                "common": self.search.common,
                "second": self.search.second,
                "rare": self.search.rare,
                "prefix": self.search.prefix,
            },
            "search_matches": self.search.matches,
            "tags_by_popularity": self.tags,
            "now": self.now,
        }


class StoreWriter:
    """Writes through the `Database`'s own methods, one transaction per call (any backend;
    PostgreSQL overlaps `WRITERS` of them)."""

    writers = WRITERS

    def __init__(self, store: Any) -> None:
        self.store = store

    async def index(self, note_id: str, fields: NoteFields, **kwargs: Any) -> None:
        await self.store.index_note(WORKSPACE, note_id, fields, **kwargs)

    async def trash(self, note_id: str, at: str) -> None:
        await self.store.trash_note(WORKSPACE, note_id, at=at)

    async def append(self, room_id: str, update: bytes) -> None:
        await self.store.append_updates([(room_id, update, None)])

    async def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class _SyncConnection:
    """The three methods of an aiosqlite connection `sqlite_catalog` uses, run at once on a
    plain `sqlite3` connection: the same statements without a thread hop per statement."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.conn.execute(sql, params)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self.conn.executemany(sql, rows)

    async def execute_fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self.conn.execute(sql, params).fetchall()


class SqliteWriter:
    """SQLite's catalog statements (`collab.store.sqlite_catalog.index_note`, `trash_note`,
    what `SqliteStore.index_note` runs) on one `sqlite3` connection, `SQLITE_BATCH` notes per
    transaction: about ten times faster than a transaction per call through aiosqlite. The
    database was created and migrated by `SqliteStore.open` first."""

    writers = 1

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = NORMAL")
        # The indexes take rows in random order: keep their pages in memory while writing.
        self.conn.execute(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
        self.sync = _SyncConnection(self.conn)
        self.pending = 0

    async def _begin(self) -> None:
        if self.pending == 0:
            self.conn.execute("BEGIN IMMEDIATE")
        self.pending += 1

    async def index(self, note_id: str, fields: NoteFields, **kwargs: Any) -> None:
        await self._begin()
        reading = NoteReading(WORKSPACE, note_id, fields, **kwargs)
        await sqlite_catalog.index_note(self.sync, reading)  # type: ignore[arg-type]
        if self.pending >= SQLITE_BATCH:
            await self.flush()

    async def trash(self, note_id: str, at: str) -> None:
        await self._begin()
        await sqlite_catalog.trash_note(self.sync, WORKSPACE, note_id, at=at)  # type: ignore[arg-type]

    async def append(self, room_id: str, update: bytes) -> None:
        raise NotImplementedError("documents are written through the store")

    async def flush(self) -> None:
        if self.pending:
            self.conn.execute("COMMIT")
            self.pending = 0

    def close(self) -> None:
        self.conn.close()


async def generate(
    database_url: str,
    *,
    notes: int,
    seed: int,
    documents: bool,
    progress: Callable[[str], None],
) -> Generated:
    """Write the workspace into the (empty) database at `database_url`."""
    now = datetime.now(UTC).replace(microsecond=0)
    maker = Maker(seed, now)
    store = create_store(database_url)
    await store.open()
    writer: StoreWriter | SqliteWriter = StoreWriter(store)
    if isinstance(store, SqliteStore) and not documents:
        await store.close()
        writer = SqliteWriter(store.path)
    started = time.monotonic()
    counts = {"index": 0, "trashed": 0, "edited": 0, "done": 0}
    next_report = [max(1, notes // 10)]

    async def write(note: Note) -> None:
        fields, clock = note.fields, 1
        if documents:
            update, fields, clock = document_of(note.fields)
            await writer.append(f"{WORKSPACE}/{note.note_id}", update)
        await writer.index(
            note.note_id, fields, clock=clock, actor=note.creator, at=note.created_at
        )
        counts["index"] += 1
        if note.edited_at is not None:
            # A later edit: the same fields from a later state, by someone else.
            await writer.index(
                note.note_id, fields, clock=clock + 1, actor=note.editor, at=note.edited_at
            )
            counts["index"] += 1
            counts["edited"] += 1
        if note.trashed_at is not None:
            await writer.trash(note.note_id, note.trashed_at)
            counts["trashed"] += 1
        counts["done"] += 1
        if counts["done"] >= next_report[0]:
            next_report[0] += max(1, notes // 10)
            elapsed = time.monotonic() - started
            progress(
                f"  {counts['done']:>8} notes written, {elapsed:6.1f} s "
                f"({counts['done'] / elapsed:.0f} notes/s)"
            )

    queue: Iterator[int] = iter(range(notes))

    async def write_all() -> None:
        # Notes are drawn in index order whatever the interleaving: `maker` is called only
        # here, between awaits, one note at a time.
        for index in queue:
            await write(maker.note(index))

    try:
        await asyncio.gather(*(write_all() for _ in range(writer.writers)))
        await writer.flush()
    finally:
        writer.close()
        if isinstance(writer, StoreWriter):
            await store.close()
    return Generated(
        notes=notes,
        live=notes - counts["trashed"],
        trashed=counts["trashed"],
        edited=counts["edited"],
        seconds=time.monotonic() - started,
        index_calls=counts["index"],
        documents=documents,
        writes="sqlite_catalog statements, " + str(SQLITE_BATCH) + " notes per transaction"
        if isinstance(writer, SqliteWriter)
        else "the store's methods, a transaction per call",
        search=maker.search,
        tags=list(TAGS),
        users=maker.users,
        now=format_timestamp(now),
    )
