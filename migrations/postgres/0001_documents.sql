-- A document is an optional snapshot plus an append-only log of Yjs v1 updates.

CREATE TABLE document_snapshots (
    room_id TEXT PRIMARY KEY,
    state BYTEA NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Identity values are handed out at insert time, not in commit order: compaction must delete
-- the ids it read, not every id up to the largest one it read.
CREATE TABLE document_updates (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    room_id TEXT NOT NULL,
    data BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX document_updates_room_id_id ON document_updates (room_id, id);
