-- Users an operator shut out until a time (POST /api/v1/admin/revocations). One row per user:
-- a newer revocation replaces the older. `until` is ISO-8601 UTC text with microseconds and
-- +00:00 (written by the store), so text order is time order.
CREATE TABLE revocations (
    user_id TEXT PRIMARY KEY,
    until TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE INDEX revocations_until ON revocations (until);
