-- Claims take at most a few deliveries of one endpoint at a time (`claim_deliveries`), so one
-- receiver that hangs holds a few attempts, not every one.
--
-- An endpoint's due deliveries, earliest first: each claim reads the first few of each
-- enabled endpoint.
CREATE INDEX webhook_deliveries_endpoint_due
    ON webhook_deliveries (endpoint_id, next_attempt_at, id)
    WHERE state = 'pending';
-- An endpoint's deliveries under a lease (in flight, or leased by an instance that died):
-- counted at each claim.
CREATE INDEX webhook_deliveries_endpoint_leased
    ON webhook_deliveries (endpoint_id, lease_until)
    WHERE state = 'pending' AND lease_until IS NOT NULL;
