-- The update log's room index takes a group commit's rows in batches, not one commit at a time.
--
-- A group commit writes a row to each note edited in the last 100 ms. With one index entry
-- per row, each commit dirtied one index page per note, and SQLite copied every dirty page
-- into the WAL at every commit: with 100 busy notes that was half of the store's CPU per
-- logged update (`loadtests/sqlite_log_cost.py`). Now a commit appends its rows to the table
-- alone (`settled = 0`, the log's tail), and every few seconds the store settles the tail
-- (`settled = 1`), adding its rows to the partial index in one transaction, one page write
-- per note however many commits went by.
--
-- Invariant: every row with `settled = 0` has an id above `document_updates_settled.through`
-- (the settle sets both in one transaction, and AUTOINCREMENT ids only grow), so a room's
-- rows are its settled rows, found by the index, plus its rows in the short tail above the
-- mark, found by a rowid range: `room_updates`. Read a room's log only through that view.

-- Every row logged before this migration is settled (the default), without rewriting them.
ALTER TABLE document_updates ADD COLUMN settled INTEGER NOT NULL DEFAULT 1;

DROP INDEX document_updates_room_id_id;

CREATE INDEX document_updates_room_id_id_settled ON document_updates (room_id, id) WHERE settled;

-- One row: the highest id settled so far.
CREATE TABLE document_updates_settled (
    only INTEGER PRIMARY KEY CHECK (only = 1),
    through INTEGER NOT NULL
);

INSERT INTO document_updates_settled (only, through)
SELECT 1, coalesce(max(id), 0) FROM document_updates;

-- A room's logged updates: `SELECT … FROM room_updates WHERE room_id = ?` reads the index
-- for the settled rows and the rowid range above the mark for the tail (SQLite pushes the
-- room's term into both arms). `NOT settled` in the tail's arm keeps a row settled by
-- another path from being read twice.
CREATE VIEW room_updates AS
SELECT id, room_id, data, created_at, author FROM document_updates WHERE settled
UNION ALL
SELECT id, room_id, data, created_at, author FROM document_updates
WHERE id > (SELECT through FROM document_updates_settled) AND NOT settled;
