-- Durable notifications for users, and the workspace members they may be sent to.

-- Who has authenticated with a role in a workspace; `name` is the last display name given.
CREATE TABLE workspace_members (
    workspace_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    name TEXT,
    first_seen TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, user_id)
);

-- Clients replay "everything after id N". Identity values are handed out at insert time, not
-- in commit order: the store takes a per-user advisory lock before drawing a user's ids, so a
-- user's notifications commit in id order and a replay never skips one that commits later.
-- `payload` is json, not jsonb: stored verbatim like SQLite's text, and jsonb rejects \u0000,
-- which a message body may hold. Payloads are only ever read whole.
CREATE TABLE notifications (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload JSON NOT NULL CHECK (json_typeof(payload) = 'object'),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    read_at TIMESTAMPTZ
);

CREATE INDEX notifications_user_id_id ON notifications (user_id, id);

-- Unread counts, unread pages and "mark all read" only visit unread rows.
CREATE INDEX notifications_unread_user_id_id ON notifications (user_id, id)
    WHERE read_at IS NULL;

-- One row per dedup key ever used by create_notification_once. `notification_id` is NULL only
-- inside the transaction that claims the key, and is kept if that notification is deleted.
CREATE TABLE notification_keys (
    dedup_key TEXT PRIMARY KEY,
    notification_id BIGINT
);
