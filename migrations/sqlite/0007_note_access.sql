-- Who may read a note (`collab.store.catalog.NoteAccess`): the whole workspace (private = 0,
-- every note written before this migration), or, when private, its creator
-- (`notes.created_by`) and the users of its share list. A workspace note may keep a list: it
-- takes effect when the note is made private. A purge deletes the list with the row.
ALTER TABLE notes ADD COLUMN private INTEGER NOT NULL DEFAULT 0;

-- `role` is 'editor' or 'viewer' (checked by the web layer). The primary key answers the
-- listing's question "is this reader on the list of this note" (`sqlite_catalog.list_notes`)
-- and finds a note's list (read, replaced, purged).
CREATE TABLE note_shares (
    workspace_id TEXT NOT NULL,
    note_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    role TEXT NOT NULL,
    PRIMARY KEY (workspace_id, note_id, user_id)
);
