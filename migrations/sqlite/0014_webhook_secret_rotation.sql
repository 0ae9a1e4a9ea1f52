-- Webhook secrets can be rotated without a receiver refusing anything (`rotate_secret`).
--
-- `previous_secret` is the secret the last rotation replaced (`whsec_` and the base64 of its
-- key); attempts are signed with it too, beside `secret`, until `previous_secret_until` (a
-- `format_timestamp` time, compared as text). Both NULL: no rotation, or one without overlap.
-- Endpoints registered before this migration read as never rotated.

ALTER TABLE webhook_endpoints ADD COLUMN previous_secret TEXT;
ALTER TABLE webhook_endpoints ADD COLUMN previous_secret_until TEXT;
