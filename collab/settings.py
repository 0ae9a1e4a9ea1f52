"""Settings: one frozen value, built from `COLLAB_*` variables and `collab serve` flags.

Only the CLI reads the environment; everything else receives a `Settings`. Every option is
declared once in `OPTIONS`, which drives the environment parsing, the CLI flags and the
README table, so they cannot drift apart. Parsing collects one message per bad value and
raises them together as a `ConfigError`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from collab.errors import ConfigError

HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
PUBLIC_KEY_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
MIN_HMAC_KEY_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class Secret:
    """A string that never shows itself in `repr`, `str` or logs."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


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
    allowed_origins: tuple[str, ...] = ()
    max_message_bytes: int = 8 * 1024 * 1024
    max_awareness_state_bytes: int = 64 * 1024
    max_request_bytes: int = 8 * 1024 * 1024
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


Parser = Callable[[str], Any]


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


def _int_in(low: int, high: int) -> Parser:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ValueError(f"expected an integer, got {raw!r}") from None
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}, got {value}")
        return value

    return parse


def _seconds(raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise ValueError(f"expected a number of seconds, got {raw!r}") from None
    if not 0 <= value <= 86_400:
        raise ValueError(f"must be between 0 and 86400 seconds, got {value}")
    return value


def _positive_seconds(raw: str) -> float:
    value = _seconds(raw)
    if value <= 0:
        raise ValueError(f"must be more than 0 seconds, got {value}")
    return value


def _bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected one of 1/0, true/false, yes/no, on/off; got {raw!r}")


def _text(raw: str) -> str | None:
    return raw.strip() or None


def _database_url(raw: str) -> str:
    url = raw.strip()
    if url == "memory://" or url.startswith(("postgresql://", "postgres://")):
        return url
    if url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
        return url
    raise ValueError(
        f"unsupported database URL {url!r}; use sqlite:///relative/path.db, "
        "sqlite:////absolute/path.db, postgresql://user@host/db or memory://"
    )


def _redis_url(raw: str) -> str | None:
    url = raw.strip()
    if not url:
        return None
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"expected a redis://, rediss:// or unix:// URL, got {url!r}")
    return url


def _algorithms(raw: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in raw.split(",") if name.strip())
    if not names:
        raise ValueError("name at least one algorithm, e.g. HS256")
    unknown = [n for n in names if n not in HMAC_ALGORITHMS | PUBLIC_KEY_ALGORITHMS]
    if unknown:
        raise ValueError(f"unsupported algorithm(s) {', '.join(unknown)} (`none` is never allowed)")
    if set(names) & HMAC_ALGORITHMS and set(names) & PUBLIC_KEY_ALGORITHMS:
        # Accepting both lets a public key be used as an HMAC secret (algorithm confusion).
        raise ValueError("do not mix HMAC (HS*) and public-key algorithms")
    return names


def _secret(raw: str) -> Secret | None:
    return Secret(raw) if raw else None


def _public_key(raw: str) -> Secret | None:
    value = raw.strip()
    if not value:
        return None
    if "-----BEGIN" in value:
        return Secret(value)
    path = Path(value)
    try:
        return Secret(path.read_text())
    except OSError as error:
        raise ValueError(f"not a PEM value and not a readable file: {error.strerror}") from None


def _origins(raw: str) -> tuple[str, ...]:
    """Exact origins as browsers send them: lowercase scheme and host, a port only when set."""
    origins = []
    for value in (o.strip() for o in raw.split(",")):
        if not value:
            continue
        parts = urlsplit(value.rstrip("/"))
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"{value!r} has an invalid port") from None
        if (
            parts.scheme.lower() not in ("http", "https")
            or not parts.hostname
            or parts.path
            or parts.query
            or parts.fragment
            or "@" in parts.netloc
        ):
            raise ValueError(f"{value!r} is not an origin like https://notes.example.com[:port]")
        host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        origins.append(f"{parts.scheme.lower()}://{host}" + (f":{port}" if port else ""))
    return tuple(origins)


def _log_level(raw: str) -> str:
    level = raw.strip().upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}, got {raw!r}")
    return level


OPTIONS: tuple[Option, ...] = (
    Option("host", "COLLAB_HOST", lambda raw: raw.strip() or "127.0.0.1", "bind address"),
    Option("port", "COLLAB_PORT", _int_in(0, 65535), "bind port (`PORT` is honoured too)"),
    Option(
        "database_url",
        "COLLAB_DATABASE_URL",
        _database_url,
        "`sqlite:///path` (embedded), `postgresql://…` or `memory://` (nothing kept)",
    ),
    Option("redis_url", "COLLAB_REDIS_URL", _redis_url, "unset: in-process bus; `redis://…`"),
    Option(
        "jwt_secret",
        "COLLAB_JWT_SECRET",
        _secret,
        "HS256 key; embedded mode generates one beside the SQLite file",
    ),
    Option(
        "jwt_public_key",
        "COLLAB_JWT_PUBLIC_KEY",
        _public_key,
        "PEM value or file path for RS*/ES*/EdDSA verification",
    ),
    Option("jwt_algorithms", "COLLAB_JWT_ALGORITHMS", _algorithms, "pinned algorithms"),
    Option("jwt_audience", "COLLAB_JWT_AUDIENCE", _text, "required `aud` when set"),
    Option("jwt_issuer", "COLLAB_JWT_ISSUER", _text, "required `iss` when set"),
    Option(
        "allowed_origins",
        "COLLAB_ALLOWED_ORIGINS",
        _origins,
        "comma-separated exact origins allowed to open WebSockets; unset: no check",
    ),
    Option(
        "max_message_bytes",
        "COLLAB_MAX_MESSAGE_BYTES",
        _int_in(1024, 1024**3),
        "largest WebSocket message accepted (close 1009 above)",
    ),
    Option(
        "max_awareness_state_bytes",
        "COLLAB_MAX_AWARENESS_STATE_BYTES",
        _int_in(64, 16 * 1024**2),
        "largest awareness state of one client",
    ),
    Option(
        "max_request_bytes",
        "COLLAB_MAX_REQUEST_BYTES",
        _int_in(1024, 1024**3),
        "largest REST request body (413 above)",
    ),
    Option(
        "ws_compression",
        "COLLAB_WS_COMPRESSION",
        _bool,
        "offer permessage-deflate (limits apply to the decompressed size)",
    ),
    Option(
        "outbox_max_bytes",
        "COLLAB_OUTBOX_MAX_BYTES",
        _int_in(1024, 1024**3),
        "bytes queued for one connection before it is dropped as too slow (1013)",
    ),
    Option(
        "outbox_max_frames",
        "COLLAB_OUTBOX_MAX_FRAMES",
        _int_in(1, 10**6),
        "frames queued for one connection before it is dropped as too slow (1013)",
    ),
    Option(
        "flush_interval_ms",
        "COLLAB_FLUSH_INTERVAL_MS",
        _int_in(1, 60_000),
        "longest delay before an applied update is written to the store",
    ),
    Option(
        "flush_max_batch",
        "COLLAB_FLUSH_MAX_BATCH",
        _int_in(1, 100_000),
        "most updates written in one store transaction",
    ),
    Option(
        "compact_after_updates",
        "COLLAB_COMPACT_AFTER_UPDATES",
        _int_in(1, 10**7),
        "logged updates of a document that trigger compaction into a snapshot",
    ),
    Option(
        "room_grace_s",
        "COLLAB_ROOM_GRACE_S",
        _seconds,
        "seconds a room with no connections stays loaded before it is flushed and unloaded",
    ),
    Option(
        "store_backlog_per_room",
        "COLLAB_STORE_BACKLOG_PER_ROOM",
        _int_in(1, 10**7),
        "unwritten updates kept per document while the store is down; beyond it the next "
        "write is a snapshot of the whole document",
    ),
    Option(
        "awareness_timeout_s",
        "COLLAB_AWARENESS_TIMEOUT_S",
        _seconds,
        "awareness states from another instance not renewed for this long are removed",
    ),
    Option(
        "presence_heartbeat_s",
        "COLLAB_PRESENCE_HEARTBEAT_S",
        _positive_seconds,
        "how often an instance renews its presence entries; a dead instance's users leave "
        "after about 3 heartbeats",
    ),
    Option(
        "heartbeat_s",
        "COLLAB_HEARTBEAT_S",
        _seconds,
        "WebSocket ping interval; a peer that misses a pong is dropped (0: off)",
    ),
    Option(
        "shutdown_timeout_s",
        "COLLAB_SHUTDOWN_TIMEOUT_S",
        _seconds,
        "bound on graceful shutdown (SIGTERM)",
    ),
    Option("log_level", "COLLAB_LOG_LEVEL", _log_level, "DEBUG, INFO, WARNING or ERROR"),
    Option(
        "dev_mode",
        "COLLAB_DEV_MODE",
        _bool,
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
    if algorithms & PUBLIC_KEY_ALGORITHMS and settings.jwt_public_key is None:
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
    if needs_secret and settings.jwt_secret is None and not embedded:
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
    return problems
