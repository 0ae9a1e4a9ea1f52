"""`OPTIONS`: every setting declared once, with its field of `Settings`, environment variable,
CLI flag, parser (`collab.settings.values`) and the line the README's table shows."""

from __future__ import annotations

from dataclasses import dataclass

from collab.settings import email, values
from collab.settings.values import Parser


@dataclass(frozen=True)
class Option:
    """One setting: its field, environment variable, CLI flag, parser and documentation."""

    field: str
    env: str
    parse: Parser
    help: str

    @property
    def flag(self) -> str:
        return "--" + self.field.replace("_", "-")


OPTIONS: tuple[Option, ...] = (
    Option("host", "COLLAB_HOST", lambda raw: raw.strip() or "127.0.0.1", "bind address"),
    Option("port", "COLLAB_PORT", values.int_in(0, 65535), "bind port (`PORT` is honoured too)"),
    Option(
        "listen_backlog",
        "COLLAB_LISTEN_BACKLOG",
        values.int_in(1, 65535),
        "connections the kernel holds until they are accepted (at most net.core.somaxconn)",
    ),
    Option(
        "database_url",
        "COLLAB_DATABASE_URL",
        values.database_url,
        "`sqlite:///path` (embedded), `postgresql://…` or `memory://` (nothing kept)",
    ),
    Option(
        "database_pool_size",
        "COLLAB_DATABASE_POOL_SIZE",
        values.int_in(1, 1000),
        "PostgreSQL connections an instance may open; instances x this must stay under the "
        "server's max_connections",
    ),
    Option("redis_url", "COLLAB_REDIS_URL", values.redis_url, "unset: in-process bus; `redis://…`"),
    Option(
        "jwt_secret",
        "COLLAB_JWT_SECRET",
        values.secret,
        "HS256 key; embedded mode generates one beside the SQLite file",
    ),
    Option(
        "jwt_public_key",
        "COLLAB_JWT_PUBLIC_KEY",
        values.public_key,
        "PEM value or file path for RS*/ES*/EdDSA verification",
    ),
    Option("jwt_algorithms", "COLLAB_JWT_ALGORITHMS", values.algorithms, "pinned algorithms"),
    Option("jwt_audience", "COLLAB_JWT_AUDIENCE", values.optional_text, "required `aud` when set"),
    Option("jwt_issuer", "COLLAB_JWT_ISSUER", values.optional_text, "required `iss` when set"),
    Option(
        "jwt_keys",
        "COLLAB_JWT_KEYS",
        values.jwt_keys,
        'JSON object `{"kid": "secret, PEM or file path"}`: keys picked by the token\'s `kid`',
    ),
    Option(
        "jwks_url",
        "COLLAB_JWKS_URL",
        values.jwks_url,
        "JWKS of the identity provider (https; http only for localhost), fetched at start",
    ),
    Option(
        "jwks_cache_s",
        "COLLAB_JWKS_CACHE_S",
        values.seconds_at_least(1),
        "seconds a fetched JWKS is used before it is fetched again",
    ),
    Option(
        "jwt_leeway_s",
        "COLLAB_JWT_LEEWAY_S",
        values.leeway,
        "clock skew tolerated on `exp`, `nbf` and `iat` (0 to 300 seconds)",
    ),
    Option(
        "admin_token",
        "COLLAB_ADMIN_TOKEN",
        values.admin_token,
        "bearer token of the operator API (`/api/v1/admin/…`); unset: the API is off",
    ),
    Option(
        "allowed_origins",
        "COLLAB_ALLOWED_ORIGINS",
        values.origins,
        "comma-separated exact origins allowed to open WebSockets; unset: no check",
    ),
    Option(
        "max_message_bytes",
        "COLLAB_MAX_MESSAGE_BYTES",
        values.int_in(1024, 1024**3),
        "largest WebSocket message accepted (close 1009 above)",
    ),
    Option(
        "max_awareness_state_bytes",
        "COLLAB_MAX_AWARENESS_STATE_BYTES",
        values.int_in(64, 16 * 1024**2),
        "largest awareness state of one client",
    ),
    Option(
        "max_request_bytes",
        "COLLAB_MAX_REQUEST_BYTES",
        values.int_in(1024, 1024**3),
        "largest REST request body (413 above)",
    ),
    Option(
        "cors_origins",
        "COLLAB_CORS_ORIGINS",
        values.origins,
        "comma-separated exact origins allowed to call /api/ from a browser; unset: no CORS",
    ),
    Option(
        "ws_messages_per_s",
        "COLLAB_WS_MESSAGES_PER_S",
        values.int_in(0, 10**6),
        "messages per second one WebSocket may send on average (close 1008 above; 0: no limit)",
    ),
    Option(
        "ws_message_burst",
        "COLLAB_WS_MESSAGE_BURST",
        values.int_in(1, 10**7),
        "messages one WebSocket may send at once before COLLAB_WS_MESSAGES_PER_S applies",
    ),
    Option(
        "ws_bytes_per_s",
        "COLLAB_WS_BYTES_PER_S",
        values.int_in(0, 1024**3),
        "bytes per second one WebSocket may send on average (close 1008 above; 0: no limit)",
    ),
    Option(
        "ws_bytes_burst",
        "COLLAB_WS_BYTES_BURST",
        values.int_in(1024, 16 * 1024**3),
        "bytes one WebSocket may send at once (never less than COLLAB_MAX_MESSAGE_BYTES)",
    ),
    Option(
        "max_connections_per_user",
        "COLLAB_MAX_CONNECTIONS_PER_USER",
        values.int_in(0, 10**6),
        "open WebSockets (both endpoints) of one user on one instance (429 above; 0: no limit)",
    ),
    Option(
        "max_connections_per_ip",
        "COLLAB_MAX_CONNECTIONS_PER_IP",
        values.int_in(0, 10**6),
        "open WebSockets of one client IP on one instance, loopback exempt (429; 0: no limit)",
    ),
    Option(
        "trusted_proxies",
        "COLLAB_TRUSTED_PROXIES",
        values.networks,
        "comma-separated proxy addresses or CIDRs whose X-Forwarded-For names the client IP",
    ),
    Option(
        "handshake_timeout_s",
        "COLLAB_HANDSHAKE_TIMEOUT_S",
        values.seconds_at_least(0.1),
        "seconds a connection may take to send complete request headers (also the keep-alive "
        "idle time) before it is dropped",
    ),
    Option(
        "body_timeout_s",
        "COLLAB_BODY_TIMEOUT_S",
        values.seconds_at_least(0.1),
        "seconds a request may take to send its whole body once its headers are in (408 and "
        "the connection closed after)",
    ),
    Option(
        "max_requests_per_user",
        "COLLAB_MAX_REQUESTS_PER_USER",
        values.int_in(0, 10**6),
        "REST requests of one user in flight at once on one instance (429 above; 0: no limit)",
    ),
    Option(
        "max_requests_per_ip",
        "COLLAB_MAX_REQUESTS_PER_IP",
        values.int_in(0, 10**6),
        "REST requests of one client IP in flight at once, loopback exempt (429; 0: no limit)",
    ),
    Option(
        "user_requests_per_s",
        "COLLAB_USER_REQUESTS_PER_S",
        values.int_in(0, 10**6),
        "REST requests per second one user may send on average (429 above; 0: no limit)",
    ),
    Option(
        "user_request_burst",
        "COLLAB_USER_REQUEST_BURST",
        values.int_in(1, 10**7),
        "REST requests one user may send at once before COLLAB_USER_REQUESTS_PER_S applies",
    ),
    Option(
        "ip_requests_per_s",
        "COLLAB_IP_REQUESTS_PER_S",
        values.int_in(0, 10**6),
        "REST requests per second one client IP may send on average, loopback exempt (429; "
        "0: no limit)",
    ),
    Option(
        "ip_request_burst",
        "COLLAB_IP_REQUEST_BURST",
        values.int_in(1, 10**7),
        "REST requests one client IP may send at once before COLLAB_IP_REQUESTS_PER_S applies",
    ),
    Option(
        "user_messages_per_s",
        "COLLAB_USER_MESSAGES_PER_S",
        values.int_in(0, 10**6),
        "messages per second all WebSockets of one user on one instance may send on average "
        "(the one going over is closed with 1008; 0: no limit)",
    ),
    Option(
        "user_message_burst",
        "COLLAB_USER_MESSAGE_BURST",
        values.int_in(1, 10**7),
        "messages all WebSockets of one user may send at once before "
        "COLLAB_USER_MESSAGES_PER_S applies",
    ),
    Option(
        "user_bytes_per_s",
        "COLLAB_USER_BYTES_PER_S",
        values.int_in(0, 1024**3),
        "bytes per second all WebSockets of one user on one instance may send on average "
        "(the one going over is closed with 1008; 0: no limit)",
    ),
    Option(
        "user_bytes_burst",
        "COLLAB_USER_BYTES_BURST",
        values.int_in(1024, 16 * 1024**3),
        "bytes all WebSockets of one user may send at once (never less than "
        "COLLAB_MAX_MESSAGE_BYTES)",
    ),
    Option(
        "max_document_bytes",
        "COLLAB_MAX_DOCUMENT_BYTES",
        values.int_in(0, 16 * 1024**3),
        "largest encoded document; an update beyond it is refused (close 1009, HTTP 413; 0: none)",
    ),
    Option(
        "max_apply_ms",
        "COLLAB_MAX_APPLY_MS",
        values.int_in(10, 60_000),
        "longest a large update may take to apply, tried on a copy in a worker process first "
        "(close 1008, HTTP 422 above)",
    ),
    Option(
        "apply_ms_per_s",
        "COLLAB_APPLY_MS_PER_S",
        values.int_in(0, 1000),
        "apply time per second one user's updates may take on average (close 1008 and "
        "throttled above; 0: no budget)",
    ),
    Option(
        "apply_burst_ms",
        "COLLAB_APPLY_BURST_MS",
        values.int_in(1, 600_000),
        "apply time one user's updates may take at once before COLLAB_APPLY_MS_PER_S applies",
    ),
    Option(
        "throttle_s",
        "COLLAB_THROTTLE_S",
        values.positive_seconds,
        "how long a user over the apply-time budget, or whose update was too costly, is "
        "refused new document connections and REST writes (429)",
    ),
    Option(
        "ws_compression",
        "COLLAB_WS_COMPRESSION",
        values.boolean,
        "accept permessage-deflate offers (limits apply to the decompressed size)",
    ),
    Option(
        "outbox_max_bytes",
        "COLLAB_OUTBOX_MAX_BYTES",
        values.int_in(1024, 1024**3),
        "bytes queued for one connection before it is dropped as too slow (1013)",
    ),
    Option(
        "outbox_max_frames",
        "COLLAB_OUTBOX_MAX_FRAMES",
        values.int_in(1, 10**6),
        "frames queued for one connection before it is dropped as too slow (1013)",
    ),
    Option(
        "flush_interval_ms",
        "COLLAB_FLUSH_INTERVAL_MS",
        values.int_in(1, 60_000),
        "longest delay before an applied update is written to the store",
    ),
    Option(
        "flush_max_batch",
        "COLLAB_FLUSH_MAX_BATCH",
        values.int_in(1, 100_000),
        "most updates written in one store transaction",
    ),
    Option(
        "compact_after_updates",
        "COLLAB_COMPACT_AFTER_UPDATES",
        values.int_in(1, 10**7),
        "logged updates of a document that trigger compaction into a snapshot",
    ),
    Option(
        "room_grace_s",
        "COLLAB_ROOM_GRACE_S",
        values.seconds,
        "seconds a room with no connections stays loaded before it is flushed and unloaded",
    ),
    Option(
        "catalog_interval_ms",
        "COLLAB_CATALOG_INTERVAL_MS",
        values.int_in(10, 600_000),
        "a note's catalog entry is recomputed at most this often while it is edited",
    ),
    Option(
        "trash_retention_days",
        "COLLAB_TRASH_RETENTION_DAYS",
        values.int_in(1, 36_500),
        "days a note stays in the trash before it is purged",
    ),
    Option(
        "version_interval_s",
        "COLLAB_VERSION_INTERVAL_S",
        values.seconds_at_least(1),
        "a note edited this long since its last version gets an automatic one (at the next "
        "pause in its editing, at most 10 s later)",
    ),
    Option(
        "version_keep_all_hours",
        "COLLAB_VERSION_KEEP_ALL_HOURS",
        values.int_in(0, 24 * 36_500),
        "every automatic version of a note younger than this is kept",
    ),
    Option(
        "version_hourly_days",
        "COLLAB_VERSION_HOURLY_DAYS",
        values.int_in(0, 36_500),
        "then the newest automatic version of each hour, up to this age",
    ),
    Option(
        "version_daily_days",
        "COLLAB_VERSION_DAILY_DAYS",
        values.int_in(0, 36_500),
        "then the newest of each day, up to this age; older automatic versions are deleted "
        "(named and restore versions stay until the note is purged)",
    ),
    Option(
        "due_soon_s",
        "COLLAB_DUE_SOON_S",
        values.int_in(0, 366 * 86_400),
        "seconds before a note's due time its assignees get a `due_soon` reminder (0: none; "
        "`overdue` comes at the due time)",
    ),
    Option(
        "store_backlog_per_room",
        "COLLAB_STORE_BACKLOG_PER_ROOM",
        values.int_in(1, 10**7),
        "unwritten updates kept per document while the store is down; beyond it the next "
        "write is a snapshot of the whole document",
    ),
    Option(
        "awareness_timeout_s",
        "COLLAB_AWARENESS_TIMEOUT_S",
        values.seconds_at_least(1),
        "awareness states from another instance not renewed for this long are removed",
    ),
    Option(
        "awareness_batch_ms",
        "COLLAB_AWARENESS_BATCH_MS",
        values.int_in(0, 1000),
        "awareness changes of a room go out once per this many ms, the latest per client, "
        "in one message for all peers (0: each as it comes)",
    ),
    Option(
        "awareness_max_per_s",
        "COLLAB_AWARENESS_MAX_PER_S",
        values.int_in(1, 1000),
        "awareness messages a connection may send per second; more are held (the latest "
        "per client) until a later tick, never refused (needs COLLAB_AWARENESS_BATCH_MS > 0)",
    ),
    Option(
        "max_initial_syncs",
        "COLLAB_MAX_INITIAL_SYNCS",
        values.int_in(1, 10_000),
        "initial syncs of over 1 MiB written at a time; more joiners wait their turn, in order",
    ),
    Option(
        "presence_heartbeat_s",
        "COLLAB_PRESENCE_HEARTBEAT_S",
        values.seconds_at_least(0.1),
        "how often an instance renews its presence entries; a dead instance's users leave "
        "after about 3 heartbeats",
    ),
    Option(
        "heartbeat_s",
        "COLLAB_HEARTBEAT_S",
        values.seconds_at_least(0.1, zero="off"),
        "a WebSocket silent this long gets a ping; no answer within half of it: dropped (0: off)",
    ),
    Option(
        "shutdown_timeout_s",
        "COLLAB_SHUTDOWN_TIMEOUT_S",
        values.seconds,
        "bound on graceful shutdown (SIGTERM)",
    ),
    Option(
        "drain_s",
        "COLLAB_DRAIN_S",
        values.seconds,
        "on SIGTERM, close the clients in waves over at most this long (0: all at once), so "
        "they reconnect to the other instances as a ramp; less than COLLAB_SHUTDOWN_TIMEOUT_S",
    ),
    Option(
        "smtp_url",
        "COLLAB_SMTP_URL",
        email.smtp_url,
        "`smtp://host[:port]` (STARTTLS when offered; 587) or `smtps://host[:port]` (implicit "
        "TLS; 465), user and password optional; unset: no email digests",
    ),
    Option(
        "smtp_username",
        "COLLAB_SMTP_USERNAME",
        values.optional_text,
        "user to log in to the SMTP server with, when not in COLLAB_SMTP_URL",
    ),
    Option(
        "smtp_password",
        "COLLAB_SMTP_PASSWORD",
        values.secret,
        "password to log in to the SMTP server with, when not in COLLAB_SMTP_URL",
    ),
    Option(
        "email_from",
        "COLLAB_EMAIL_FROM",
        email.email_from,
        "sender of the digests, `notes@example.com` or `Notes <notes@example.com>`",
    ),
    Option(
        "public_url",
        "COLLAB_PUBLIC_URL",
        email.public_url,
        "the URL users open (`https://notes.example.com`): digests link to notes under it",
    ),
    Option(
        "email_digest_s",
        "COLLAB_EMAIL_DIGEST_S",
        values.seconds_at_least(1),
        "at most one email digest per user per this many seconds",
    ),
    Option(
        "webhook_retry_s",
        "COLLAB_WEBHOOK_RETRY_S",
        values.int_in(1, 30 * 86_400),
        "a webhook delivery that fails is retried (backoff with jitter) for this long, then "
        "failed; an endpoint whose every attempt failed for this long is disabled",
    ),
    Option(
        "webhook_allow_private",
        "COLLAB_WEBHOOK_ALLOW_PRIVATE",
        values.boolean,
        "let webhooks reach private, loopback (over https), link-local and other non-public "
        "addresses (refused by default, at registration and at each delivery)",
    ),
    Option(
        "webhook_secret_keys",
        "COLLAB_WEBHOOK_SECRET_KEYS",
        values.sealing_keys,
        "comma-separated keys (32 bytes or more each) that seal webhook secrets in the "
        "database: the first seals, every one unseals; unset: secrets are stored as shown",
    ),
    Option("log_level", "COLLAB_LOG_LEVEL", values.log_level, "DEBUG, INFO, WARNING or ERROR"),
    Option(
        "log_format",
        "COLLAB_LOG_FORMAT",
        values.log_format,
        "`text` (one readable line per record) or `json` (one JSON object per line)",
    ),
    Option(
        "metrics_token",
        "COLLAB_METRICS_TOKEN",
        values.metrics_token,
        "when set, `GET /metrics` requires `Authorization: Bearer <it>` (401 otherwise)",
    ),
    Option(
        "dev_mode",
        "COLLAB_DEV_MODE",
        values.boolean,
        "demo sign-in that issues tokens to anyone (never in production)",
    ),
)
