"""Webhook delivery: the outbox's deliveries sent to operators' endpoints.

    signing.py    Standard Webhooks secrets, signatures and headers (pure)
    sealing.py    SecretSealer: secrets sealed in the database with COLLAB_WEBHOOK_SECRET_KEYS
    addresses.py  which URLs and addresses may be called (pure): https to public addresses,
                  http to loopback only, private ones with COLLAB_WEBHOOK_ALLOW_PRIVATE
    client.py     WebhookClient: one POST, checked after DNS resolution, bounded in time and
                  size, never redirected
    retries.py    RetryPolicy: exponential backoff with jitter within COLLAB_WEBHOOK_RETRY_S
    service.py    WebhookService: claims due deliveries (any instance), sends, records;
                  seals the stored secrets as configured at start

It sits beside the rooms: it reads the store and is started by the web layer.
"""
