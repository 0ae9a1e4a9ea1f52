"""Settings: one frozen value, built from `COLLAB_*` variables and `collab serve` flags.

Only the CLI reads the environment; everything else receives a `Settings`. Every option is
declared once in `OPTIONS`, which drives the environment parsing, the CLI flags and the
README table, so they cannot drift apart. Parsing collects one message per bad value and
raises them together as a `ConfigError`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collab import setting_values as values
from collab.errors import ConfigError
from collab.setting_values import (
    HMAC_ALGORITHMS,
    MIN_HMAC_KEY_BYTES,
    PUBLIC_KEY_ALGORITHMS,
    IPNetwork,
    Parser,
    Secret,
)

__all__ = [
    "HMAC_ALGORITHMS",
    "OPTIONS",
    "IPNetwork",
    "Option",
    "Secret",
    "Settings",
    "load_settings",
]


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    database_url: str = "sqlite:///collab.db"
    redis_url: str | None = None
    jwt_secret: Secret | None = None
    jwt_public_key: Secret | None = None
    jwt_algorithms: tuple[str, ...] = ("HS256",)
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    jwt_keys: tuple[tuple[str, Secret], ...] = ()
    jwks_url: str | None = None
    jwks_cache_s: float = 300.0
    jwt_leeway_s: float = 30.0
    admin_token: Secret | None = None
    allowed_origins: tuple[str, ...] = ()
    max_message_bytes: int = 8 * 1024 * 1024
    max_awareness_state_bytes: int = 64 * 1024
    max_request_bytes: int = 8 * 1024 * 1024
    cors_origins: tuple[str, ...] = ()
    ws_messages_per_s: int = 200
    ws_message_burst: int = 1000
    ws_bytes_per_s: int = 4 * 1024 * 1024
    ws_bytes_burst: int = 16 * 1024 * 1024
    max_connections_per_user: int = 100
    max_connections_per_ip: int = 500
    trusted_proxies: tuple[IPNetwork, ...] = ()
    handshake_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_requests_per_user: int = 32
    max_requests_per_ip: int = 256
    user_requests_per_s: int = 50
    user_request_burst: int = 500
    ip_requests_per_s: int = 200
    ip_request_burst: int = 2000
    user_messages_per_s: int = 400
    user_message_burst: int = 2000
    user_bytes_per_s: int = 8 * 1024 * 1024
    user_bytes_burst: int = 32 * 1024 * 1024
    max_document_bytes: int = 32 * 1024 * 1024
    max_apply_ms: int = 100
    apply_ms_per_s: int = 250
    apply_burst_ms: int = 1000
    throttle_s: float = 60.0
    ws_compression: bool = False
    outbox_max_bytes: int = 16 * 1024 * 1024
    outbox_max_frames: int = 4096
    flush_interval_ms: int = 100
    flush_max_batch: int = 512
    compact_after_updates: int = 1000
    room_grace_s: float = 10.0
    store_backlog_per_room: int = 10_000
    awareness_timeout_s: float = 30.0
    presence_heartbeat_s: float = 5.0
    heartbeat_s: float = 30.0
    shutdown_timeout_s: float = 10.0
    log_level: str = "INFO"
    log_format: str = "text"
    metrics_token: Secret | None = None
    dev_mode: bool = False
    instance_id: str | None = None

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite file of an embedded deployment, or None for other stores."""
        if self.database_url.startswith("sqlite:///"):
            return Path(self.database_url.removeprefix("sqlite:///"))
        return None

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


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
        "database_url",
        "COLLAB_DATABASE_URL",
        values.database_url,
        "`sqlite:///path` (embedded), `postgresql://…` or `memory://` (nothing kept)",
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
        values.positive_seconds,
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
        values.positive_seconds,
        "seconds a connection may take to send complete request headers (also the keep-alive "
        "idle time) before it is dropped",
    ),
    Option(
        "body_timeout_s",
        "COLLAB_BODY_TIMEOUT_S",
        values.positive_seconds,
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
        "store_backlog_per_room",
        "COLLAB_STORE_BACKLOG_PER_ROOM",
        values.int_in(1, 10**7),
        "unwritten updates kept per document while the store is down; beyond it the next "
        "write is a snapshot of the whole document",
    ),
    Option(
        "awareness_timeout_s",
        "COLLAB_AWARENESS_TIMEOUT_S",
        values.seconds,
        "awareness states from another instance not renewed for this long are removed",
    ),
    Option(
        "presence_heartbeat_s",
        "COLLAB_PRESENCE_HEARTBEAT_S",
        values.positive_seconds,
        "how often an instance renews its presence entries; a dead instance's users leave "
        "after about 3 heartbeats",
    ),
    Option(
        "heartbeat_s",
        "COLLAB_HEARTBEAT_S",
        values.seconds,
        "a WebSocket silent this long gets a ping; no answer within half of it: dropped (0: off)",
    ),
    Option(
        "shutdown_timeout_s",
        "COLLAB_SHUTDOWN_TIMEOUT_S",
        values.seconds,
        "bound on graceful shutdown (SIGTERM)",
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


def load_settings(
    environ: Mapping[str, str], overrides: Mapping[str, str | None] | None = None
) -> Settings:
    """Build `Settings` from environment variables, then CLI flag values (raw strings).

    Raises `ConfigError` listing every bad value, each naming its variable.
    """
    raw: dict[str, tuple[str, str]] = {}
    if "PORT" in environ and "COLLAB_PORT" not in environ:
        raw["port"] = ("PORT", environ["PORT"])
    for option in OPTIONS:
        if option.env in environ:
            raw[option.field] = (option.env, environ[option.env])
    for field_name, value in (overrides or {}).items():
        if value is not None:
            raw[field_name] = ("--" + field_name.replace("_", "-"), value)

    by_field = {option.field: option for option in OPTIONS}
    values: dict[str, Any] = {}
    problems: list[str] = []
    for field_name, (source, value) in raw.items():
        try:
            values[field_name] = by_field[field_name].parse(value)
        except ValueError as error:
            problems.append(f"{source}: {error}")
    # Cross-check what did parse too, so one run reports every problem, but say nothing more
    # about a variable already reported (its value is the default stand-in here).
    failed = [source for field_name, (source, _) in raw.items() if field_name not in values]
    settings = Settings(**values)
    problems += [p for p in _cross_check(settings) if not any(f in p for f in failed)]
    if problems:
        raise ConfigError(problems)
    return settings


def _cross_check(settings: Settings) -> list[str]:
    problems = []
    algorithms = set(settings.jwt_algorithms)
    # With keys picked by `kid` (COLLAB_JWT_KEYS, COLLAB_JWKS_URL), the single key is optional:
    # it then only verifies tokens without a `kid`.
    by_kid = bool(settings.jwt_keys) or settings.jwks_url is not None
    if algorithms & PUBLIC_KEY_ALGORITHMS and settings.jwt_public_key is None and not by_kid:
        problems.append(
            "COLLAB_JWT_PUBLIC_KEY: required by COLLAB_JWT_ALGORITHMS="
            + ",".join(settings.jwt_algorithms)
        )
    if algorithms & HMAC_ALGORITHMS and settings.jwt_public_key is not None:
        problems.append(
            "COLLAB_JWT_PUBLIC_KEY: set, but COLLAB_JWT_ALGORITHMS is HMAC; "
            "set COLLAB_JWT_ALGORITHMS=RS256 (or ES256) to verify with a public key"
        )
    needs_secret = bool(algorithms & HMAC_ALGORITHMS)
    embedded = settings.sqlite_path is not None or settings.database_url == "memory://"
    if needs_secret and settings.jwt_secret is None and not embedded and not by_kid:
        problems.append(
            "COLLAB_JWT_SECRET: required with a shared database; every instance needs the same "
            "key (generate one with: python -c 'import secrets; print(secrets.token_urlsafe(48))')"
        )
    if settings.jwt_secret is not None:
        # RFC 7518 3.2: an HMAC key at least as long as the hash output.
        needed = max(MIN_HMAC_KEY_BYTES.get(name, 0) for name in settings.jwt_algorithms)
        if len(settings.jwt_secret.reveal().encode()) < needed:
            problems.append(
                f"COLLAB_JWT_SECRET: use at least {needed} bytes for "
                + ",".join(settings.jwt_algorithms)
            )
    problems += _check_jwt_keys(settings)
    return problems


def _check_jwt_keys(settings: Settings) -> list[str]:
    problems = []
    hmac = bool(set(settings.jwt_algorithms) & HMAC_ALGORITHMS)
    needed = max(MIN_HMAC_KEY_BYTES.get(name, 0) for name in settings.jwt_algorithms)
    for kid, key in settings.jwt_keys:
        is_pem = "-----BEGIN" in key.reveal()
        if hmac and is_pem:
            problems.append(
                f"COLLAB_JWT_KEYS: key {kid!r} is a PEM, but COLLAB_JWT_ALGORITHMS is HMAC"
            )
        elif hmac and len(key.reveal().encode()) < needed:
            problems.append(f"COLLAB_JWT_KEYS: key {kid!r}: use at least {needed} bytes")
        elif not hmac and not is_pem:
            problems.append(
                f"COLLAB_JWT_KEYS: key {kid!r} must be a PEM public key (value or file path) "
                "for COLLAB_JWT_ALGORITHMS=" + ",".join(settings.jwt_algorithms)
            )
    return problems
