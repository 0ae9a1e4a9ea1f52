-- The notes catalog: one row per note, derived from its document by the server (never written
-- by clients), and tombstones of purged notes. Timestamps are ISO-8601 UTC text with
-- microseconds and +00:00 (fixed width: text order is time order).

-- `seq` is the row's id in the full-text index. `clock` is the sum of the document's state
-- vector when the row was written: a row is never overwritten from an earlier state.
-- `priority` is ranked 0 (none) to 4 (urgent); `title_key` is the case-folded title (sort);
-- `due_at` is `due` as a UTC instant (filters, sort). `tags` and `assignees` are JSON arrays,
-- also kept one per row below for their filters.
CREATE TABLE notes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id TEXT NOT NULL,
    note_id TEXT NOT NULL,
    title TEXT NOT NULL,
    title_key TEXT NOT NULL,
    tags TEXT NOT NULL,
    pinned INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    due TEXT,
    due_at TEXT,
    assignees TEXT NOT NULL,
    excerpt TEXT NOT NULL,
    clock INTEGER NOT NULL,
    content_hash TEXT NOT NULL,
    search_title TEXT NOT NULL,
    search_tags TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT,
    updated_at TEXT NOT NULL,
    updated_by TEXT,
    trashed_at TEXT,
    UNIQUE (workspace_id, note_id)
);

-- One index per way of listing (the trash apart from the rest, as every listing asks for one),
-- in the very order the listing asks for, or SQLite sorts every note of the workspace.
-- The default order also carries due_at: a due filter there is checked in the index.
CREATE INDEX notes_default ON notes (workspace_id, trashed_at IS NOT NULL, pinned, updated_at, note_id, due_at);
CREATE INDEX notes_updated ON notes (workspace_id, trashed_at IS NOT NULL, updated_at, note_id);
CREATE INDEX notes_created ON notes (workspace_id, trashed_at IS NOT NULL, created_at, note_id);
-- The due sort puts notes without a due date last in either direction: ascending it orders by
-- coalesce(due_at, '~'), descending by coalesce(due_at, '') (the due_before and due_after
-- filters use them too).
CREATE INDEX notes_due_first ON notes (workspace_id, trashed_at IS NOT NULL, coalesce(due_at, '~'), note_id);
CREATE INDEX notes_due_last ON notes (workspace_id, trashed_at IS NOT NULL, coalesce(due_at, ''), note_id);
CREATE INDEX notes_priority ON notes (workspace_id, trashed_at IS NOT NULL, priority, note_id);
CREATE INDEX notes_title ON notes (workspace_id, trashed_at IS NOT NULL, title_key, note_id);
CREATE INDEX notes_trashed_at ON notes (trashed_at) WHERE trashed_at IS NOT NULL;

CREATE TABLE note_tags (
    workspace_id TEXT NOT NULL,
    tag TEXT NOT NULL,
    note_id TEXT NOT NULL,
    PRIMARY KEY (workspace_id, tag, note_id)
);
-- A note's own rows, replaced each time it is indexed: without it, that delete reads every
-- tag of the workspace.
CREATE INDEX note_tags_note ON note_tags (workspace_id, note_id);

CREATE TABLE note_assignees (
    workspace_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    note_id TEXT NOT NULL,
    PRIMARY KEY (workspace_id, user_id, note_id)
);
CREATE INDEX note_assignees_note ON note_assignees (workspace_id, note_id);

-- The searched text, as words (`collab.store.catalog.search_words`), keyed by notes.seq.
-- Weighted by column at query time: title, then tags, then body.
CREATE VIRTUAL TABLE notes_search USING fts5 (title, tags, body, tokenize = 'unicode61');

-- A purged note's room id, forever: no write of its document or row gets past it.
CREATE TABLE note_tombstones (
    room_id TEXT PRIMARY KEY,
    purged_at TEXT NOT NULL
);
