-- A document is an optional snapshot plus an append-only log of Yjs v1 updates.

CREATE TABLE document_snapshots (
    room_id TEXT PRIMARY KEY,
    state BLOB NOT NULL,
    updated_at TEXT NOT NULL
);

-- AUTOINCREMENT so an id is never reused after compaction deletes the newest rows.
CREATE TABLE document_updates (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    room_id TEXT NOT NULL,
    data BLOB NOT NULL,
    created_at TEXT NOT NULL
);

CREATE INDEX document_updates_room_id_id ON document_updates (room_id, id);
