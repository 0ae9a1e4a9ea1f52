-- Webhook secrets can be rotated without a receiver refusing anything (see
-- sqlite/0014_webhook_secret_rotation.sql). Nullable without a default: no table is rewritten.

ALTER TABLE webhook_endpoints ADD COLUMN previous_secret TEXT;
ALTER TABLE webhook_endpoints ADD COLUMN previous_secret_until TEXT COLLATE "C";
