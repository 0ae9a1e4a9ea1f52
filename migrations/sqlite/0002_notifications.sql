-- Durable notifications for users, and the workspace members they may be sent to.
-- Timestamps are ISO-8601 UTC text with microseconds and +00:00, written by the store.

-- Who has authenticated with a role in a workspace; `name` is the last display name given.
CREATE TABLE workspace_members (
    workspace_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    name TEXT,
    first_seen TEXT NOT NULL,
    PRIMARY KEY (workspace_id, user_id)
);

-- Clients replay "everything after id N": AUTOINCREMENT so an id is never reused, even after
-- the newest rows are deleted. Writers are serialized (BEGIN IMMEDIATE), so ids also commit
-- in id order.
CREATE TABLE notifications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL CHECK (json_type(payload) = 'object'),
    created_at TEXT NOT NULL,
    read_at TEXT
);

CREATE INDEX notifications_user_id_id ON notifications (user_id, id);

-- Unread counts, unread pages and "mark all read" only visit unread rows.
CREATE INDEX notifications_unread_user_id_id ON notifications (user_id, id)
    WHERE read_at IS NULL;

-- One row per dedup key ever used by create_notification_once. `notification_id` is NULL only
-- inside the transaction that claims the key, and is kept if that notification is deleted.
CREATE TABLE notification_keys (
    dedup_key TEXT PRIMARY KEY,
    notification_id INTEGER
);
