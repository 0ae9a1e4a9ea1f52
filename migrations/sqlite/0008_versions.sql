-- The version history of notes (`collab.store.versions`): copies of a room's whole state,
-- each naming who edited the room since the version before it.

-- Who wrote each logged update: a user id, NULL for the server's own changes (and for every
-- update logged before this migration). Compaction folds the rows, and their authors, into
-- the snapshot: who edited since the last version is kept apart, in `version_authors`.
ALTER TABLE document_updates ADD COLUMN author TEXT;

-- The room's authors since its last version: written by the group commit with the updates
-- (insert-or-ignore), taken (deleted) by the next version. The primary key makes a repeated
-- author one row, and finds a room's set.
CREATE TABLE version_authors (
    room_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    PRIMARY KEY (room_id, user_id)
);

-- A state stored once per room and content: `digest` is its SHA-256, `data` the state
-- zlib-compressed, `size` its bytes before and `stored_bytes` after compression. `data`
-- last: reading the other columns (the sum `version_bytes` reports) then never reads the
-- overflow pages of a large state. The primary key finds the state of a version, and
-- whether the state of a new one is stored already.
CREATE TABLE version_states (
    room_id TEXT NOT NULL,
    digest BLOB NOT NULL,
    size INTEGER NOT NULL,
    stored_bytes INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (room_id, digest)
);

-- `kind` is 'auto', 'named' or 'restore'; `authors` a JSON array of user ids, sorted;
-- `digest` names the row of `version_states` holding the state. Times are ISO-8601 UTC text
-- with microseconds and +00:00 as the store is given them. AUTOINCREMENT so an id is never
-- reused after the newest versions are deleted: an id once handed to a client names that
-- version or none.
CREATE TABLE versions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    room_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT,
    created_by TEXT,
    authors TEXT NOT NULL,
    digest BLOB NOT NULL
);

-- A room's versions newest first: the history's pages (`list_versions`, a range of ids
-- before a cursor) and the newest version an automatic one is compared with.
CREATE INDEX versions_room_id_id ON versions (room_id, id);
-- Whether a state is still referred to once versions are deleted (`delete_versions`):
-- without it, a lookup per state would read every version of the room.
CREATE INDEX versions_room_id_digest ON versions (room_id, digest);
-- The retention sweep (`rooms_with_versions`): the rooms with an automatic version older
-- than a cutoff, page by page in room id order. The automatic versions are one range of it,
-- read in room id order from the page's first room, each room's times in the entry: a page
-- stops after the rooms it returns, with no sort and no read of the table.
CREATE INDEX versions_auto ON versions (kind, room_id, created_at);
