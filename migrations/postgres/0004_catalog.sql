-- The notes catalog: one row per note, derived from its document by the server (never written
-- by clients), and tombstones of purged notes.
--
-- Times are text as `format_timestamp` writes them (ISO-8601 UTC, microseconds, +00:00), not
-- TIMESTAMPTZ: the store returns exactly the string it was given, as the other backends do,
-- and the sort keys page cursors hold compare exactly. Fixed width, so under COLLATE "C" text
-- order is time order.
--
-- Every column a sort key or a listing filter compares is COLLATE "C": byte order is code
-- point order in UTF-8, so keys sort as Python sorts them (the memory and SQLite backends)
-- whatever the database's locale, and a cursor's key means the same position everywhere.

-- `clock` is the sum of the document's state vector when the row was written: a row is never
-- overwritten from an earlier state. `content_hash` is `catalog.content_digest` of what the row
-- holds: an unchanged note is re-indexed by moving its clock and update time alone. `priority` is ranked 0 (none) to 4 (urgent); `title_key`
-- is the case-folded title (sort), computed by the store (`str.casefold`), not by a collation;
-- `due_at` is `due` as a UTC instant (filters, sort).
--
-- `search_title`, `search_tags` and `search_body` hold `collab.store.catalog.search_words` of
-- the title, the tags and the body text, as SQLite's full-text table gets them: relevance is
-- computed from them (a term found at the start of a word of a column), and `search` is
-- their words as lexemes. Not `to_tsvector`: the text search parser splits and drops
-- characters by the database's locale (in C.UTF-8 "x²" is the word x, "½" is no word), so
-- words would not split as on the other backends; `array_to_tsvector` takes the words as they
-- are, with no parser, stemming or stop words. Each word is cut to its first 64 characters
-- (`catalog.MAX_TERM_CHARS`, the longest query term): a term is a prefix of a word exactly
-- when it is a prefix of that cut, and a lexeme must stay under 2048 bytes (a run of CJK text
-- is one word).
CREATE TABLE notes (
    workspace_id TEXT COLLATE "C" NOT NULL,
    note_id TEXT COLLATE "C" NOT NULL,
    title TEXT NOT NULL,
    title_key TEXT COLLATE "C" NOT NULL,
    tags TEXT[] NOT NULL,
    pinned BOOLEAN NOT NULL,
    priority SMALLINT NOT NULL,
    due TEXT,
    due_at TEXT COLLATE "C",
    assignees TEXT[] NOT NULL,
    excerpt TEXT NOT NULL,
    search_title TEXT COLLATE "C" NOT NULL,
    search_tags TEXT COLLATE "C" NOT NULL,
    search_body TEXT COLLATE "C" NOT NULL,
    search TSVECTOR GENERATED ALWAYS AS (
        array_to_tsvector(array_remove(string_to_array(regexp_replace(
            search_title || ' ' || search_tags || ' ' || search_body,
            '(\S{64})\S+', '\1', 'g'
        ), ' '), ''))
    ) STORED,
    clock BIGINT NOT NULL,
    content_hash TEXT NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL,
    created_by TEXT,
    updated_at TEXT COLLATE "C" NOT NULL,
    updated_by TEXT,
    trashed_at TEXT COLLATE "C",
    -- Every listing asks for the trash or for the rest: the first column after the workspace
    -- in each listing index.
    trashed BOOLEAN GENERATED ALWAYS AS (trashed_at IS NOT NULL) STORED,
    PRIMARY KEY (workspace_id, note_id)
);

-- One index per order of listing, each in the order of that sort key (a page is a range of
-- it, read forwards or backwards). Pinned is compared as 0/1, the int every backend's sort
-- key (and so every page cursor) holds.
CREATE INDEX notes_default ON notes (workspace_id, trashed, (pinned::int), updated_at, note_id);
CREATE INDEX notes_updated ON notes (workspace_id, trashed, updated_at, note_id);
CREATE INDEX notes_created ON notes (workspace_id, trashed, created_at, note_id);
CREATE INDEX notes_priority ON notes (workspace_id, trashed, priority, note_id);
CREATE INDEX notes_title ON notes (workspace_id, trashed, title_key, note_id);
-- Notes without a due date sort last either way (`catalog.due_sort_key`): as '' when
-- descending, as '~' when ascending. One index per direction, on the key as compared.
CREATE INDEX notes_due_descending ON notes (workspace_id, trashed, coalesce(due_at, ''), note_id);
CREATE INDEX notes_due_ascending ON notes (workspace_id, trashed, coalesce(due_at, '~'), note_id);
-- Oldest trash first, for the purge of expired trash.
CREATE INDEX notes_trashed_at ON notes (trashed_at) WHERE trashed_at IS NOT NULL;

-- The tag filter (every tag given: `tags @> $n`), the assignee filter and full-text search.
-- Not per workspace (that would take the btree_gin extension): the workspace and trash
-- conditions are checked on the rows found, or combined with a listing index.
CREATE INDEX notes_tags ON notes USING gin (tags);
CREATE INDEX notes_assignees ON notes USING gin (assignees);
CREATE INDEX notes_search ON notes USING gin (search);

-- A purged note's room id, forever: no write of its document or row gets past it. Default
-- collation, like the document tables' room ids it is compared with (their indexes then
-- serve the comparison).
CREATE TABLE note_tombstones (
    room_id TEXT PRIMARY KEY,
    purged_at TEXT NOT NULL
);
