-- Webhooks (`collab.store.webhooks`): the endpoints operators register, and the outbox of
-- their deliveries, written in the transaction of each change they report.
--
-- Times are ISO-8601 UTC text with microseconds and +00:00 (`format_timestamp`), compared as
-- text. The store deletes an endpoint's deliveries and a delivery's attempts itself (the
-- database's foreign keys are not enforced).

-- `events` is a JSON array of event types; `workspace_id` NULL: every workspace. `secret` is
-- `whsec_` and the base64 of the signing key. `last_success_at`: its last attempt that
-- succeeded. `failing_since`: since when it has taken nothing it was sent (when its first
-- failed delivery was written, or its last success if later; NULL after a success);
-- `disabled_at` and `disabled_reason` once that lasted COLLAB_WEBHOOK_RETRY_S.
CREATE TABLE webhook_endpoints (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    events TEXT NOT NULL,
    workspace_id TEXT,
    secret TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_success_at TEXT,
    failing_since TEXT,
    disabled_at TEXT,
    disabled_reason TEXT
);

-- One row per endpoint per event. `id` grows in commit order (one writer at a time): the
-- order in which one subject's deliveries go out. `message_id` is the event's (`msg_…`),
-- shared by its deliveries to every endpoint; `body` the signed JSON payload. `state` is
-- 'pending', 'delivered' or 'failed'; a pending row is due at `next_attempt_at` unless an
-- instance holds its lease (`lease` the claim's token, until `lease_until`).
CREATE TABLE webhook_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    subject TEXT,
    body BLOB NOT NULL,
    created_at TEXT NOT NULL,
    state TEXT NOT NULL,
    attempt_count INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    lease TEXT,
    lease_until TEXT,
    last_status INTEGER,
    last_error TEXT,
    finished_at TEXT,
    retried_at TEXT
);

-- The due deliveries (`claim_deliveries`): pending only, earliest first.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE state = 'pending';
-- Whether an earlier delivery of a subject to an endpoint is still pending (the order of a
-- note's events).
CREATE INDEX webhook_deliveries_subject ON webhook_deliveries (endpoint_id, subject, id)
    WHERE state = 'pending';
-- An endpoint's deliveries newest first (`list_deliveries`), and deleting them with it.
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);
-- Finished deliveries past their keeping time (`delete_finished_deliveries`).
CREATE INDEX webhook_deliveries_finished ON webhook_deliveries (finished_at)
    WHERE finished_at IS NOT NULL;

-- Each attempt of a delivery, numbered from 1: when, the HTTP status answered (NULL: none),
-- why it failed (NULL: it did not).
CREATE TABLE webhook_attempts (
    delivery_id INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    at TEXT NOT NULL,
    status INTEGER,
    error TEXT,
    PRIMARY KEY (delivery_id, attempt)
);
