-- Deadline reminders (`collab.store.reminders`): the pending reminders of notes with a due
-- time, by fire time, and the due each note's reminders were armed for.
--
-- Times are text as `format_timestamp` writes them, as in the catalog (0004), COLLATE "C":
-- fixed width, so text order is time order whatever the database's locale.

-- One row per note and kind ('due_soon', 'overdue') until it is sent or dropped. `due` is
-- the note's due as the catalog lists it when the row was armed; `fire_at` when it falls
-- due and `claimed_until` the end of the lease of the instance sending it (NULL: nobody's).
CREATE TABLE reminders (
    room_id TEXT COLLATE "C" NOT NULL,
    kind TEXT NOT NULL,
    due TEXT NOT NULL,
    fire_at TEXT COLLATE "C" NOT NULL,
    claimed_until TEXT COLLATE "C",
    PRIMARY KEY (room_id, kind)
);

-- What falls due next (`claim_reminders`, `next_fire_at`): the reminders by fire time, and
-- the claims by their end (few: those being sent, or left by an instance that died sending
-- them).
CREATE INDEX reminders_fire_at ON reminders (fire_at);
CREATE INDEX reminders_claimed_until ON reminders (claimed_until)
    WHERE claimed_until IS NOT NULL;

-- The due a note's reminders were last armed for: arming the same due again changes
-- nothing, a new one replaces the note's rows above.
CREATE TABLE reminder_dues (
    room_id TEXT COLLATE "C" PRIMARY KEY,
    due TEXT NOT NULL
);

-- Notes due in the future, in due time order, for the reminders armed at start
-- (`unarmed_notes`, by due time, workspace and note): a range of this index, not a read of
-- every note.
CREATE INDEX notes_due_at ON notes (due_at, workspace_id, note_id)
    WHERE due_at IS NOT NULL AND trashed_at IS NULL;

-- Notes already due when this migration runs have had their moment: recorded as armed, they
-- send nothing. Those due later get their reminders when a server starts.
INSERT INTO reminder_dues (room_id, due)
    SELECT workspace_id || '/' || note_id, due FROM notes
    WHERE due IS NOT NULL
    AND due_at < to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS');
