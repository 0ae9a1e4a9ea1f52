-- Email digests (`collab.store.email`): the address a user's token carried when they were last
-- seen, and per user the state of their digests.
--
-- `token_email` is written by `record_seen` like `token_name` (kept when a later token has
-- none); an owner's `email` wins over it.
ALTER TABLE workspace_members ADD COLUMN token_email TEXT;
-- A recipient's memberships, by user: the primary key starts with the workspace.
CREATE INDEX workspace_members_user ON workspace_members (user_id, workspace_id);

-- One row per user who was ever sent a digest, claimed one, or opted out.
-- `next_allowed_at` (Unix seconds) is when the next digest may be claimed: a claim sets it to
-- the end of its hold, a sent digest to the end of the digest interval. `claim` names the
-- claim in force (NULL: none); a claim is finished or released only by its holder, and taken
-- over by anyone once `next_allowed_at` has passed (its holder died). `emailed_up_to` is the
-- greatest notification id a digest covered: a user's ids commit in id order, so everything
-- at or below it was either emailed or read before.
CREATE TABLE email_digests (
    user_id TEXT PRIMARY KEY,
    next_allowed_at REAL NOT NULL DEFAULT 0,
    claim TEXT,
    emailed_up_to INTEGER NOT NULL DEFAULT 0,
    last_sent_at TEXT,
    opted_out_at TEXT
);
