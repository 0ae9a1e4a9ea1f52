-- Who may read a note (`collab.store.catalog.NoteAccess`): the whole workspace (private =
-- false, every note written before this migration: a constant default, so adding the column
-- rewrites no row), or, when private, its creator (`notes.created_by`) and the users of its
-- share list. A workspace note may keep a list: it takes effect when the note is made
-- private. A purge deletes the list with the row.
ALTER TABLE notes ADD COLUMN private BOOLEAN NOT NULL DEFAULT false;

-- `role` is 'editor' or 'viewer' (checked by the web layer). COLLATE "C" as the notes' keys
-- are, so they compare with them without a collation conflict. The primary key answers the
-- listing's question "is this reader on the list of this note"
-- (`postgres_catalog.list_statements`) and finds a note's list (read, replaced, purged).
CREATE TABLE note_shares (
    workspace_id TEXT COLLATE "C" NOT NULL,
    note_id TEXT COLLATE "C" NOT NULL,
    user_id TEXT COLLATE "C" NOT NULL,
    role TEXT NOT NULL,
    PRIMARY KEY (workspace_id, note_id, user_id)
);
-- The notes a user is listed on in a workspace: a listing for a reader reads theirs once
-- (the planner hashes them) where testing each private note would cost a lookup each.
CREATE INDEX note_shares_user ON note_shares (workspace_id, user_id, note_id);
