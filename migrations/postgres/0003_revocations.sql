-- Users an operator shut out until a time (POST /api/v1/admin/revocations). One row per user:
-- a newer revocation replaces the older.
CREATE TABLE revocations (
    user_id TEXT PRIMARY KEY,
    until TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX revocations_until ON revocations (until);
