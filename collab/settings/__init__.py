"""Settings: one frozen value, built from `COLLAB_*` variables and `collab serve` flags.

Only the CLI reads the environment; everything else receives a `Settings`. Every option is
declared once in `OPTIONS` (`options.py`; the value parsers in `values.py`), which drives the
environment parsing, the CLI flags and the README table, so they cannot drift apart. Parsing
collects one message per bad value and raises them together as a `ConfigError`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collab.errors import ConfigError
from collab.settings.email import SmtpServer, check_email
from collab.settings.options import OPTIONS, Option
from collab.settings.values import (
    HMAC_ALGORITHMS,
    MIN_HMAC_KEY_BYTES,
    PUBLIC_KEY_ALGORITHMS,
    IPNetwork,
    Secret,
)

__all__ = [
    "HMAC_ALGORITHMS",
    "OPTIONS",
    "IPNetwork",
    "Option",
    "Secret",
    "Settings",
    "SmtpServer",
    "load_settings",
]

# Chosen from the drain benchmark (loadtests/RESULTS.md, "Paced drain"). Unset, the drain
# takes at most half of COLLAB_SHUTDOWN_TIMEOUT_S, so a shorter timeout set before this
# setting existed still starts.
DRAIN_S = 5.0


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    # aiohttp's default is 128: the clients of an instance that restarts reconnect within a
    # second, overflow it, and wait 1-3 s for their SYN to be retried (loadtests/RESULTS.md).
    listen_backlog: int = 1024
    database_url: str = "sqlite:///collab.db"
    database_pool_size: int = 20
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
    catalog_interval_ms: int = 2000
    trash_retention_days: int = 30
    version_interval_s: float = 300.0
    version_keep_all_hours: int = 24
    version_hourly_days: int = 7
    version_daily_days: int = 90
    due_soon_s: int = 86400
    store_backlog_per_room: int = 10_000
    awareness_timeout_s: float = 30.0
    awareness_batch_ms: int = 50
    awareness_max_per_s: int = 20
    max_initial_syncs: int = 8
    presence_heartbeat_s: float = 5.0
    heartbeat_s: float = 30.0
    shutdown_timeout_s: float = 10.0
    drain_s: float = DRAIN_S
    smtp_url: SmtpServer | None = None
    smtp_username: str | None = None
    smtp_password: Secret | None = None
    email_from: str | None = None
    public_url: str | None = None
    email_digest_s: float = 600.0
    log_level: str = "INFO"
    log_format: str = "text"
    metrics_token: Secret | None = None
    dev_mode: bool = False
    webhook_retry_s: int = 86_400
    webhook_allow_private: bool = False
    webhook_secret_keys: tuple[Secret, ...] = ()
    # Not options: tests shorten them. The whole of one delivery attempt, and the first retry's
    # delay (later ones grow from it).
    webhook_timeout_s: float = 10.0
    webhook_first_retry_s: float = 2.0
    instance_id: str | None = None

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite file of an embedded deployment, or None for other stores."""
        if self.database_url.startswith("sqlite:///"):
            return Path(self.database_url.removeprefix("sqlite:///"))
        return None

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


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
    if "drain_s" not in raw and settings.drain_s >= settings.shutdown_timeout_s:
        settings = settings.replace(drain_s=settings.shutdown_timeout_s / 2)
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
    problems += check_email(settings)
    if settings.drain_s > 0 and settings.drain_s >= settings.shutdown_timeout_s:
        problems.append(
            f"COLLAB_DRAIN_S: must be less than COLLAB_SHUTDOWN_TIMEOUT_S "
            f"({settings.shutdown_timeout_s:g} s), which bounds the drain and the final flush "
            f"after it; got {settings.drain_s:g} s"
        )
    keep_all_days = settings.version_keep_all_hours / 24
    if not keep_all_days <= settings.version_hourly_days <= settings.version_daily_days:
        problems.append(
            "COLLAB_VERSION_HOURLY_DAYS: version retention windows must grow: "
            f"COLLAB_VERSION_KEEP_ALL_HOURS ({settings.version_keep_all_hours} h) <= "
            f"COLLAB_VERSION_HOURLY_DAYS ({settings.version_hourly_days} d) <= "
            f"COLLAB_VERSION_DAILY_DAYS ({settings.version_daily_days} d)"
        )
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
