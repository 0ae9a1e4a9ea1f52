-- Claims take at most a few deliveries of one endpoint at a time (see
-- sqlite/0015_webhook_endpoint_claims.sql).
CREATE INDEX webhook_deliveries_endpoint_due
    ON webhook_deliveries (endpoint_id, next_attempt_at, id)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_endpoint_leased
    ON webhook_deliveries (endpoint_id, lease_until)
    WHERE state = 'pending' AND lease_until IS NOT NULL;
