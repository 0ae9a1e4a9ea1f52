-- Webhooks (`collab.store.webhooks`): the endpoints operators register, and the outbox of
-- their deliveries, written in the transaction of each change they report.
--
-- Times are text as `format_timestamp` writes them, as in the catalog (0004), compared as
-- text (COLLATE "C": code point order, fixed width, UTC).

-- `events` the event types; `workspace_id` NULL: every workspace. `secret` is
-- `whsec_` and the base64 of the signing key. `last_success_at`: its last attempt that
-- succeeded. `failing_since`: since when it has taken nothing it was sent (when its first
-- failed delivery was written, or its last success if later; NULL after a success);
-- `disabled_at` and `disabled_reason` once that lasted COLLAB_WEBHOOK_RETRY_S.
CREATE TABLE webhook_endpoints (
    id TEXT COLLATE "C" PRIMARY KEY,
    url TEXT NOT NULL,
    events TEXT[] NOT NULL,
    workspace_id TEXT COLLATE "C",
    secret TEXT NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL,
    last_success_at TEXT COLLATE "C",
    failing_since TEXT COLLATE "C",
    disabled_at TEXT COLLATE "C",
    disabled_reason TEXT
);

-- One row per endpoint per event. Identity values are drawn under the outbox lock, held to
-- commit (`postgres_webhooks`), so `id` grows in commit order: the order in which one
-- subject's deliveries go out. `message_id` is the event's (`msg_…`), shared by its
-- deliveries to every endpoint; `body` the signed JSON payload, byte for byte. `state` is
-- 'pending', 'delivered' or 'failed'; a pending row is due at `next_attempt_at` unless an
-- instance holds its lease (`lease` the claim's token, until `lease_until`).
CREATE TABLE webhook_deliveries (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint_id TEXT COLLATE "C" NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    message_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    subject TEXT COLLATE "C",
    body BYTEA NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL,
    state TEXT NOT NULL,
    attempt_count INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT COLLATE "C",
    lease TEXT,
    lease_until TEXT COLLATE "C",
    last_status INTEGER,
    last_error TEXT,
    finished_at TEXT COLLATE "C",
    retried_at TEXT COLLATE "C"
);

-- The due deliveries (`claim_deliveries`): pending only, earliest first.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE state = 'pending';
-- Whether an earlier delivery of a subject to an endpoint is still pending (the order of a
-- note's events).
CREATE INDEX webhook_deliveries_subject ON webhook_deliveries (endpoint_id, subject, id)
    WHERE state = 'pending';
-- An endpoint's deliveries newest first (`list_deliveries`), and the cascade of its delete.
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);
-- Finished deliveries past their keeping time (`delete_finished_deliveries`).
CREATE INDEX webhook_deliveries_finished ON webhook_deliveries (finished_at)
    WHERE finished_at IS NOT NULL;

-- Each attempt of a delivery, numbered from 1: when, the HTTP status answered (NULL: none),
-- why it failed (NULL: it did not).
CREATE TABLE webhook_attempts (
    delivery_id BIGINT NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    at TEXT NOT NULL,
    status INTEGER,
    error TEXT,
    PRIMARY KEY (delivery_id, attempt)
);
