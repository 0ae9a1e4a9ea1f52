"""load_settings: every COLLAB_* variable, cross-checks, and errors that name their variable."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from collab.errors import ConfigError
from collab.settings import OPTIONS, Secret, Settings, SmtpServer, load_settings

SECRET = "a-settings-test-secret-of-enough-length-0123"


@pytest.fixture(scope="module")
def public_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def problems_of(
    environ: dict[str, str], overrides: dict[str, str | None] | None = None
) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ, overrides)
    assert str(caught.value) == "; ".join(caught.value.problems)
    return caught.value.problems


def test_defaults_without_any_variable() -> None:
    """An empty environment gives the documented defaults (embedded SQLite, HS256)."""
    settings = load_settings({})
    assert settings == Settings()
    assert settings.host == "127.0.0.1"
    assert settings.port == 8000
    assert settings.database_url == "sqlite:///collab.db"
    assert settings.sqlite_path == Path("collab.db")
    assert settings.jwt_algorithms == ("HS256",)
    assert settings.jwt_secret is None
    assert settings.allowed_origins == ()
    assert settings.log_level == "INFO"


def test_unrelated_variables_are_ignored() -> None:
    """Variables outside COLLAB_* (and PORT) do not affect settings."""
    assert load_settings({"HOME": "/root", "COLLAB_UNKNOWN": "x", "HOST": "0.0.0.0"}) == Settings()


PARSED: list[tuple[str, str, str, Any]] = [
    ("COLLAB_HOST", " 0.0.0.0 ", "host", "0.0.0.0"),
    ("COLLAB_HOST", "  ", "host", "127.0.0.1"),
    ("COLLAB_PORT", "9000", "port", 9000),
    ("COLLAB_PORT", "0", "port", 0),
    ("COLLAB_LISTEN_BACKLOG", "4096", "listen_backlog", 4096),
    ("COLLAB_DATABASE_POOL_SIZE", "50", "database_pool_size", 50),
    ("COLLAB_DATABASE_URL", "sqlite:///data/notes.db", "database_url", "sqlite:///data/notes.db"),
    ("COLLAB_DATABASE_URL", "sqlite:////var/lib/c.db", "database_url", "sqlite:////var/lib/c.db"),
    ("COLLAB_DATABASE_URL", "memory://", "database_url", "memory://"),
    ("COLLAB_REDIS_URL", "", "redis_url", None),
    ("COLLAB_REDIS_URL", "redis://127.0.0.1:6380/0", "redis_url", "redis://127.0.0.1:6380/0"),
    ("COLLAB_STORE_BACKLOG_PER_ROOM", "500", "store_backlog_per_room", 500),
    ("COLLAB_AWARENESS_TIMEOUT_S", "2.5", "awareness_timeout_s", 2.5),
    ("COLLAB_AWARENESS_BATCH_MS", "0", "awareness_batch_ms", 0),
    ("COLLAB_AWARENESS_MAX_PER_S", "5", "awareness_max_per_s", 5),
    ("COLLAB_MAX_INITIAL_SYNCS", "2", "max_initial_syncs", 2),
    ("COLLAB_PRESENCE_HEARTBEAT_S", "0.5", "presence_heartbeat_s", 0.5),
    ("COLLAB_DEV_MODE", "1", "dev_mode", True),
    ("COLLAB_JWT_SECRET", SECRET, "jwt_secret", Secret(SECRET)),
    ("COLLAB_JWT_SECRET", "", "jwt_secret", None),
    ("COLLAB_JWT_ALGORITHMS", "HS256, HS512", "jwt_algorithms", ("HS256", "HS512")),
    ("COLLAB_JWT_AUDIENCE", " collab ", "jwt_audience", "collab"),
    ("COLLAB_JWT_AUDIENCE", " ", "jwt_audience", None),
    ("COLLAB_JWT_ISSUER", "https://idp.example.com", "jwt_issuer", "https://idp.example.com"),
    (
        "COLLAB_ALLOWED_ORIGINS",
        "https://notes.example.com, http://localhost:3000/",
        "allowed_origins",
        ("https://notes.example.com", "http://localhost:3000"),
    ),
    ("COLLAB_ALLOWED_ORIGINS", "", "allowed_origins", ()),
    ("COLLAB_MAX_MESSAGE_BYTES", "2048", "max_message_bytes", 2048),
    ("COLLAB_MAX_AWARENESS_STATE_BYTES", "64", "max_awareness_state_bytes", 64),
    ("COLLAB_MAX_REQUEST_BYTES", "1048576", "max_request_bytes", 1_048_576),
    (
        "COLLAB_CORS_ORIGINS",
        "https://app.example.com, http://localhost:5173",
        "cors_origins",
        ("https://app.example.com", "http://localhost:5173"),
    ),
    ("COLLAB_WS_MESSAGES_PER_S", "0", "ws_messages_per_s", 0),
    ("COLLAB_WS_MESSAGE_BURST", "50", "ws_message_burst", 50),
    ("COLLAB_WS_BYTES_PER_S", "65536", "ws_bytes_per_s", 65_536),
    ("COLLAB_WS_BYTES_BURST", "1048576", "ws_bytes_burst", 1_048_576),
    ("COLLAB_MAX_CONNECTIONS_PER_USER", "3", "max_connections_per_user", 3),
    ("COLLAB_MAX_CONNECTIONS_PER_IP", "0", "max_connections_per_ip", 0),
    (
        "COLLAB_TRUSTED_PROXIES",
        "10.0.0.0/8, 192.168.1.7, ::1",
        "trusted_proxies",
        (
            ipaddress.ip_network("10.0.0.0/8"),
            ipaddress.ip_network("192.168.1.7/32"),
            ipaddress.ip_network("::1/128"),
        ),
    ),
    ("COLLAB_HANDSHAKE_TIMEOUT_S", "2.5", "handshake_timeout_s", 2.5),
    ("COLLAB_BODY_TIMEOUT_S", "0.5", "body_timeout_s", 0.5),
    ("COLLAB_MAX_REQUESTS_PER_USER", "4", "max_requests_per_user", 4),
    ("COLLAB_MAX_REQUESTS_PER_IP", "0", "max_requests_per_ip", 0),
    ("COLLAB_USER_REQUESTS_PER_S", "5", "user_requests_per_s", 5),
    ("COLLAB_USER_REQUEST_BURST", "10", "user_request_burst", 10),
    ("COLLAB_IP_REQUESTS_PER_S", "0", "ip_requests_per_s", 0),
    ("COLLAB_IP_REQUEST_BURST", "100", "ip_request_burst", 100),
    ("COLLAB_USER_MESSAGES_PER_S", "100", "user_messages_per_s", 100),
    ("COLLAB_USER_MESSAGE_BURST", "500", "user_message_burst", 500),
    ("COLLAB_USER_BYTES_PER_S", "0", "user_bytes_per_s", 0),
    ("COLLAB_USER_BYTES_BURST", "2097152", "user_bytes_burst", 2_097_152),
    ("COLLAB_MAX_DOCUMENT_BYTES", "0", "max_document_bytes", 0),
    ("COLLAB_MAX_APPLY_MS", "50", "max_apply_ms", 50),
    ("COLLAB_APPLY_MS_PER_S", "0", "apply_ms_per_s", 0),
    ("COLLAB_APPLY_BURST_MS", "500", "apply_burst_ms", 500),
    ("COLLAB_THROTTLE_S", "5", "throttle_s", 5.0),
    ("COLLAB_WS_COMPRESSION", "yes", "ws_compression", True),
    ("COLLAB_WS_COMPRESSION", "Off", "ws_compression", False),
    ("COLLAB_OUTBOX_MAX_BYTES", "65536", "outbox_max_bytes", 65_536),
    ("COLLAB_OUTBOX_MAX_FRAMES", "1", "outbox_max_frames", 1),
    ("COLLAB_FLUSH_INTERVAL_MS", "250", "flush_interval_ms", 250),
    ("COLLAB_FLUSH_MAX_BATCH", "100", "flush_max_batch", 100),
    ("COLLAB_COMPACT_AFTER_UPDATES", "50", "compact_after_updates", 50),
    ("COLLAB_ROOM_GRACE_S", "2.5", "room_grace_s", 2.5),
    ("COLLAB_CATALOG_INTERVAL_MS", "500", "catalog_interval_ms", 500),
    ("COLLAB_TRASH_RETENTION_DAYS", "7", "trash_retention_days", 7),
    ("COLLAB_VERSION_INTERVAL_S", "60", "version_interval_s", 60.0),
    ("COLLAB_VERSION_KEEP_ALL_HOURS", "48", "version_keep_all_hours", 48),
    ("COLLAB_VERSION_HOURLY_DAYS", "14", "version_hourly_days", 14),
    ("COLLAB_VERSION_DAILY_DAYS", "365", "version_daily_days", 365),
    ("COLLAB_DUE_SOON_S", "3600", "due_soon_s", 3600),
    ("COLLAB_DUE_SOON_S", "0", "due_soon_s", 0),
    ("COLLAB_HEARTBEAT_S", "0", "heartbeat_s", 0.0),
    ("COLLAB_SHUTDOWN_TIMEOUT_S", "30", "shutdown_timeout_s", 30.0),
    ("COLLAB_DRAIN_S", "2.5", "drain_s", 2.5),
    ("COLLAB_DRAIN_S", "0", "drain_s", 0.0),
    ("COLLAB_LOG_LEVEL", "debug", "log_level", "DEBUG"),
    ("COLLAB_LOG_FORMAT", " JSON ", "log_format", "json"),
    ("COLLAB_LOG_FORMAT", "text", "log_format", "text"),
    ("COLLAB_WEBHOOK_RETRY_S", "3600", "webhook_retry_s", 3600),
    ("COLLAB_WEBHOOK_ALLOW_PRIVATE", "1", "webhook_allow_private", True),
    ("COLLAB_WEBHOOK_ALLOW_PRIVATE", "off", "webhook_allow_private", False),
    ("COLLAB_WEBHOOK_SECRET_KEYS", "", "webhook_secret_keys", ()),
    (
        "COLLAB_WEBHOOK_SECRET_KEYS",
        f" {'n' * 32} , {'o' * 40}",
        "webhook_secret_keys",
        (Secret("n" * 32), Secret("o" * 40)),
    ),
    ("COLLAB_METRICS_TOKEN", " scrape-me ", "metrics_token", Secret("scrape-me")),
    ("COLLAB_METRICS_TOKEN", " ", "metrics_token", None),
    ("COLLAB_JWT_KEYS", json.dumps({"k1": SECRET}), "jwt_keys", (("k1", Secret(SECRET)),)),
    ("COLLAB_JWT_KEYS", " ", "jwt_keys", ()),
    ("COLLAB_JWKS_URL", "https://idp.example.com/jwks", "jwks_url", "https://idp.example.com/jwks"),
    ("COLLAB_JWKS_URL", "http://127.0.0.1:9/jwks", "jwks_url", "http://127.0.0.1:9/jwks"),
    ("COLLAB_JWKS_CACHE_S", "60", "jwks_cache_s", 60.0),
    ("COLLAB_JWT_LEEWAY_S", "0", "jwt_leeway_s", 0.0),
    ("COLLAB_ADMIN_TOKEN", "a" * 32, "admin_token", Secret("a" * 32)),
    ("COLLAB_ADMIN_TOKEN", "", "admin_token", None),
    ("COLLAB_SMTP_URL", " ", "smtp_url", None),
    ("COLLAB_SMTP_USERNAME", " ", "smtp_username", None),
    ("COLLAB_SMTP_PASSWORD", "", "smtp_password", None),
    ("COLLAB_EMAIL_FROM", " ", "email_from", None),
    ("COLLAB_PUBLIC_URL", "https://notes.example.com/", "public_url", "https://notes.example.com"),
    ("COLLAB_PUBLIC_URL", "http://10.0.0.5:8000/notes", "public_url", "http://10.0.0.5:8000/notes"),
    ("COLLAB_PUBLIC_URL", "", "public_url", None),
    ("COLLAB_EMAIL_DIGEST_S", "60", "email_digest_s", 60.0),
]


@pytest.mark.parametrize(("env", "raw", "field", "expected"), PARSED)
def test_each_variable_is_parsed_into_its_field(
    env: str, raw: str, field: str, expected: Any
) -> None:
    """A valid value of a COLLAB_* variable lands, parsed, in its field."""
    assert getattr(load_settings({env: raw}), field) == expected


@pytest.mark.parametrize("algorithms", ["RS256", "ES256", "RS256,ES256,EdDSA"])
def test_public_key_variable_is_parsed_from_a_pem_value(public_pem: str, algorithms: str) -> None:
    """COLLAB_JWT_PUBLIC_KEY holding a PEM is kept as a Secret for public-key algorithms."""
    settings = load_settings(
        {"COLLAB_JWT_PUBLIC_KEY": public_pem, "COLLAB_JWT_ALGORITHMS": algorithms}
    )
    assert settings.jwt_public_key == Secret(public_pem.strip())
    assert settings.jwt_algorithms == tuple(algorithms.split(","))


def test_public_key_variable_is_read_from_a_file(public_pem: str, tmp_path: Path) -> None:
    """COLLAB_JWT_PUBLIC_KEY naming a file is replaced by the file's content."""
    key_file = tmp_path / "jwt.pub"
    key_file.write_text(public_pem)
    settings = load_settings(
        {"COLLAB_JWT_PUBLIC_KEY": str(key_file), "COLLAB_JWT_ALGORITHMS": "RS256"}
    )
    assert settings.jwt_public_key == Secret(public_pem)


def test_public_key_file_that_cannot_be_read_is_reported(tmp_path: Path) -> None:
    """A COLLAB_JWT_PUBLIC_KEY that is neither PEM nor a readable file is named in the error."""
    problems = problems_of(
        {"COLLAB_JWT_PUBLIC_KEY": str(tmp_path / "missing.pem"), "COLLAB_JWT_ALGORITHMS": "RS256"}
    )
    assert len(problems) == 1
    assert problems[0].startswith("COLLAB_JWT_PUBLIC_KEY: not a PEM value")


def test_every_option_is_covered_by_these_tests() -> None:
    """The table above exercises every COLLAB_* option, so a new one cannot go untested."""
    tested = {env for env, *_ in PARSED} | {"COLLAB_JWT_PUBLIC_KEY"}
    assert tested == {option.env for option in OPTIONS}


BAD_VALUES: list[tuple[str, str, str]] = [
    ("COLLAB_PORT", "eighty", "expected an integer"),
    ("COLLAB_PORT", "70000", "between 0 and 65535"),
    ("COLLAB_LISTEN_BACKLOG", "0", "between 1 and 65535"),
    ("COLLAB_DATABASE_POOL_SIZE", "0", "between 1 and 1000"),
    ("COLLAB_DATABASE_URL", "mysql://db/notes", "unsupported database URL"),
    ("COLLAB_DATABASE_URL", "sqlite:///", "unsupported database URL"),
    ("COLLAB_REDIS_URL", "http://redis:6379", "expected a redis://"),
    ("COLLAB_JWT_ALGORITHMS", " , ", "at least one algorithm"),
    ("COLLAB_MAX_MESSAGE_BYTES", "10", "between 1024"),
    ("COLLAB_MAX_AWARENESS_STATE_BYTES", "lots", "expected an integer"),
    ("COLLAB_WS_COMPRESSION", "maybe", "expected one of 1/0"),
    ("COLLAB_OUTBOX_MAX_FRAMES", "0", "between 1"),
    ("COLLAB_AWARENESS_BATCH_MS", "2000", "between 0 and 1000"),
    ("COLLAB_AWARENESS_MAX_PER_S", "0", "between 1 and 1000"),
    ("COLLAB_MAX_INITIAL_SYNCS", "0", "between 1 and 10000"),
    ("COLLAB_ROOM_GRACE_S", "-1", "between 0 and 86400"),
    ("COLLAB_CATALOG_INTERVAL_MS", "5", "between 10 and 600000"),
    ("COLLAB_TRASH_RETENTION_DAYS", "0", "between 1 and 36500"),
    ("COLLAB_VERSION_INTERVAL_S", "0", "between 1 and 86400 seconds, got 0"),
    ("COLLAB_VERSION_INTERVAL_S", "1e-300", "between 1 and 86400 seconds"),
    ("COLLAB_VERSION_KEEP_ALL_HOURS", "-1", "between 0"),
    ("COLLAB_VERSION_DAILY_DAYS", "many", "expected an integer"),
    ("COLLAB_DUE_SOON_S", "-1", "between 0 and 31622400"),
    ("COLLAB_DUE_SOON_S", "1.5", "expected an integer"),
    ("COLLAB_WEBHOOK_RETRY_S", "0", "between 1 and 2592000"),
    ("COLLAB_WEBHOOK_RETRY_S", "1d", "expected an integer"),
    ("COLLAB_WEBHOOK_ALLOW_PRIVATE", "maybe", "expected one of 1/0"),
    ("COLLAB_HEARTBEAT_S", "soon", "expected a number of seconds"),
    ("COLLAB_SHUTDOWN_TIMEOUT_S", "nan", "expected a number of seconds"),
    ("COLLAB_SHUTDOWN_TIMEOUT_S", "inf", "expected a number of seconds"),
    ("COLLAB_SHUTDOWN_TIMEOUT_S", "1e999", "between 0 and 86400"),
    ("COLLAB_DRAIN_S", "\uff11", "expected a number of seconds"),
    ("COLLAB_DRAIN_S", "1_0", "expected a number of seconds"),
    ("COLLAB_DRAIN_S", "-1", "between 0 and 86400"),
    ("COLLAB_DRAIN_S", "10", "must be less than COLLAB_SHUTDOWN_TIMEOUT_S (10 s)"),
    ("COLLAB_LOG_LEVEL", "loud", "expected one of DEBUG"),
    ("COLLAB_LOG_FORMAT", "xml", "expected one of text, json"),
    ("COLLAB_JWT_KEYS", "k1=secret", "expected a JSON object"),
    (
        "COLLAB_JWT_KEYS",
        "[" * 100_000,
        "expected a JSON object",
    ),  # RecursionError, not a ValueError
    ("COLLAB_JWT_KEYS", "[]", "non-empty JSON object"),
    ("COLLAB_JWT_KEYS", '{"": "x"}', "key ids must be 1 to 256"),
    ("COLLAB_JWT_KEYS", '{"k1": 7}', "key 'k1': the value must be a non-empty string"),
    ("COLLAB_JWT_KEYS", '{"k1": "/nonexistent/key.pem"}', "key 'k1': cannot read"),
    ("COLLAB_JWT_KEYS", '{"k1": "short"}', "key 'k1': use at least 32 bytes"),
    ("COLLAB_JWKS_URL", "http://idp.example.com/jwks", "expected an https:// URL"),
    ("COLLAB_JWKS_URL", "idp.example.com/jwks", "expected an https:// URL"),
    ("COLLAB_JWKS_CACHE_S", "0", "between 1 and 86400 seconds"),
    ("COLLAB_JWKS_CACHE_S", "1e-300", "between 1 and 86400 seconds"),
    ("COLLAB_JWT_LEEWAY_S", "301", "at most 300 seconds"),
    ("COLLAB_JWT_LEEWAY_S", "-1", "between 0 and 86400"),
    ("COLLAB_ADMIN_TOKEN", "letmein", "at least 32 bytes"),
    ("COLLAB_WEBHOOK_SECRET_KEYS", "short", "keys of at least 32 bytes"),
    ("COLLAB_WEBHOOK_SECRET_KEYS", f"{'k' * 32},,{'j' * 32}", "an empty key between commas"),
    ("COLLAB_WEBHOOK_SECRET_KEYS", f"{'k' * 32},{'k' * 32}", "a key is listed twice"),
    ("COLLAB_WEBHOOK_SECRET_KEYS", ",".join(str(n) * 32 for n in range(11)), "at most 10 keys"),
    ("COLLAB_TRUSTED_PROXIES", "10.0.0.0/8,proxy.internal", "not an IP address or CIDR"),
    ("COLLAB_HANDSHAKE_TIMEOUT_S", "0", "between 0.1 and 86400 seconds"),
    ("COLLAB_HANDSHAKE_TIMEOUT_S", "1e-300", "between 0.1 and 86400 seconds"),
    ("COLLAB_BODY_TIMEOUT_S", "0", "between 0.1 and 86400 seconds"),
    ("COLLAB_BODY_TIMEOUT_S", "1e-300", "between 0.1 and 86400 seconds"),
    ("COLLAB_PRESENCE_HEARTBEAT_S", "1e-300", "between 0.1 and 86400 seconds"),
    ("COLLAB_HEARTBEAT_S", "1e-300", "must be 0 (off) or between 0.1 and 86400 seconds"),
    ("COLLAB_AWARENESS_TIMEOUT_S", "0", "between 1 and 86400 seconds"),
    ("COLLAB_PORT", "٨٠٠٠", "expected an integer in ASCII digits"),
    ("COLLAB_PORT", "\uff18\uff10\uff10\uff10", "expected an integer in ASCII digits"),
    ("COLLAB_PORT", "8_000", "expected an integer in ASCII digits"),
    ("COLLAB_BODY_TIMEOUT_S", "later", "expected a number of seconds"),
    ("COLLAB_MAX_REQUESTS_PER_USER", "-1", "between 0"),
    ("COLLAB_USER_REQUEST_BURST", "0", "between 1"),
    ("COLLAB_IP_REQUESTS_PER_S", "many", "expected an integer"),
    ("COLLAB_USER_MESSAGES_PER_S", "-5", "between 0"),
    ("COLLAB_USER_BYTES_BURST", "100", "between 1024"),
    ("COLLAB_MAX_CONNECTIONS_PER_IP", "-1", "between 0"),
    ("COLLAB_SMTP_URL", "http://mail.example.com", "scheme 'http': use smtp://host[:port]"),
    ("COLLAB_SMTP_URL", "mail.example.com:587", "smtp://host[:port]"),
    ("COLLAB_SMTP_URL", "smtp://", "no host: use smtp://host[:port]"),
    ("COLLAB_SMTP_URL", "smtps://mail.example.com:99999", "its port is invalid"),
    ("COLLAB_SMTP_URL", "smtp://mail.example.com/inbox", "a host and a port only"),
    ("COLLAB_EMAIL_FROM", "notes", "expected an address like notes@example.com"),
    ("COLLAB_EMAIL_FROM", "Notes <notes@example.com>\nBcc: x@y.z", "no control characters"),
    ("COLLAB_PUBLIC_URL", "notes.example.com", "expected the URL users open"),
    ("COLLAB_PUBLIC_URL", "ftp://notes.example.com", "expected the URL users open"),
    ("COLLAB_PUBLIC_URL", "https://notes.example.com/?a=1", "expected the URL users open"),
    ("COLLAB_EMAIL_DIGEST_S", "0", "between 1 and 86400 seconds"),
]


@pytest.mark.parametrize(("env", "raw", "reason"), BAD_VALUES)
def test_bad_value_is_reported_with_its_variable(env: str, raw: str, reason: str) -> None:
    """A bad value raises ConfigError with one message naming the variable and the problem."""
    (problem,) = problems_of({env: raw})
    assert problem.startswith(f"{env}: ")
    assert reason in problem


def test_several_bad_values_are_reported_together() -> None:
    """All bad values are reported at once, one message each, each naming its variable."""
    problems = problems_of(
        {
            "COLLAB_PORT": "x",
            "COLLAB_LOG_LEVEL": "loud",
            "COLLAB_HEARTBEAT_S": "-1",
            "COLLAB_ALLOWED_ORIGINS": "notes.example.com",
            "COLLAB_HOST": "0.0.0.0",
        }
    )
    assert sorted(problem.split(":")[0] for problem in problems) == [
        "COLLAB_ALLOWED_ORIGINS",
        "COLLAB_HEARTBEAT_S",
        "COLLAB_LOG_LEVEL",
        "COLLAB_PORT",
    ]


def test_several_cross_check_problems_are_reported_together() -> None:
    """Cross-checks report every conflict at once, each naming its variable."""
    problems = problems_of(
        {
            "COLLAB_DATABASE_URL": "postgresql://collab@db/collab",
            "COLLAB_JWT_PUBLIC_KEY": "-----BEGIN PUBLIC KEY-----",
            "COLLAB_JWT_ALGORITHMS": "HS256",
        }
    )
    assert sorted(problem.split(":")[0] for problem in problems) == [
        "COLLAB_JWT_PUBLIC_KEY",
        "COLLAB_JWT_SECRET",
    ]


def test_parse_and_cross_check_problems_are_reported_together() -> None:
    """A bad port and a too-short secret are both reported by one ConfigError."""
    problems = problems_of({"COLLAB_PORT": "x", "COLLAB_JWT_SECRET": "short"})
    assert sorted(problem.split(":")[0] for problem in problems) == [
        "COLLAB_JWT_SECRET",
        "COLLAB_PORT",
    ]


def test_port_variable_is_honoured_without_collab_port() -> None:
    """PORT (set by PaaS platforms) is used when COLLAB_PORT is unset."""
    assert load_settings({"PORT": "5000"}).port == 5000


def test_port_variable_is_ignored_when_collab_port_is_set() -> None:
    """COLLAB_PORT wins over PORT, and a bad PORT is then not even parsed."""
    assert load_settings({"PORT": "5000", "COLLAB_PORT": "6000"}).port == 6000
    assert load_settings({"PORT": "not-a-port", "COLLAB_PORT": "6000"}).port == 6000


def test_bad_port_variable_is_reported_as_port() -> None:
    """A bad PORT is reported under the name PORT, the variable the user set."""
    (problem,) = problems_of({"PORT": "http"})
    assert problem.startswith("PORT: ")


@pytest.mark.parametrize("algorithms", ["none", "HS256,none", "None", "RS1"])
def test_unsupported_algorithms_are_refused(algorithms: str) -> None:
    """`none` and unknown algorithms raise ConfigError naming COLLAB_JWT_ALGORITHMS."""
    (problem,) = problems_of({"COLLAB_JWT_ALGORITHMS": algorithms})
    assert problem.startswith("COLLAB_JWT_ALGORITHMS: unsupported algorithm")


@pytest.mark.parametrize("algorithms", ["HS256,RS256", "ES256, HS512"])
def test_mixing_hmac_and_public_key_algorithms_is_refused(algorithms: str, public_pem: str) -> None:
    """HMAC and public-key algorithms together (algorithm confusion) are refused."""
    problems = problems_of(
        {
            "COLLAB_JWT_ALGORITHMS": algorithms,
            "COLLAB_JWT_PUBLIC_KEY": public_pem,
            "COLLAB_JWT_SECRET": SECRET,
        }
    )
    assert problems == ["COLLAB_JWT_ALGORITHMS: do not mix HMAC (HS*) and public-key algorithms"]


def test_public_key_algorithm_without_a_public_key_is_refused() -> None:
    """RS256 without COLLAB_JWT_PUBLIC_KEY raises ConfigError naming the missing variable."""
    (problem,) = problems_of({"COLLAB_JWT_ALGORITHMS": "RS256"})
    assert problem.startswith("COLLAB_JWT_PUBLIC_KEY: required by COLLAB_JWT_ALGORITHMS=RS256")


def test_public_key_with_hmac_algorithm_is_refused(public_pem: str) -> None:
    """A public key set while the algorithms are HMAC is reported instead of ignored."""
    (problem,) = problems_of({"COLLAB_JWT_PUBLIC_KEY": public_pem})
    assert problem.startswith("COLLAB_JWT_PUBLIC_KEY: set, but COLLAB_JWT_ALGORITHMS is HMAC")


@pytest.mark.parametrize("url", ["postgresql://collab@db/collab", "postgres://db/collab"])
def test_postgres_without_a_secret_is_refused(url: str) -> None:
    """A shared database with HMAC tokens needs COLLAB_JWT_SECRET."""
    (problem,) = problems_of({"COLLAB_DATABASE_URL": url})
    assert problem.startswith("COLLAB_JWT_SECRET: required with a shared database")


def test_postgres_with_a_secret_or_public_key_is_accepted(public_pem: str) -> None:
    """A shared database is fine with a secret, or with public-key verification."""
    url = "postgresql://collab@db/collab"
    with_secret = load_settings({"COLLAB_DATABASE_URL": url, "COLLAB_JWT_SECRET": SECRET})
    assert with_secret.sqlite_path is None
    with_key = load_settings(
        {
            "COLLAB_DATABASE_URL": url,
            "COLLAB_JWT_ALGORITHMS": "ES256",
            "COLLAB_JWT_PUBLIC_KEY": public_pem,
        }
    )
    assert with_key.jwt_secret is None


def test_short_secret_is_refused() -> None:
    """A secret under 32 bytes raises ConfigError naming COLLAB_JWT_SECRET."""
    (problem,) = problems_of({"COLLAB_JWT_SECRET": "x" * 31})
    assert problem == "COLLAB_JWT_SECRET: use at least 32 bytes for HS256"
    assert load_settings({"COLLAB_JWT_SECRET": "x" * 32}).jwt_secret == Secret("x" * 32)


@pytest.mark.parametrize(("algorithm", "length"), [("HS384", 47), ("HS512", 63)])
def test_secret_shorter_than_the_hmac_digest_is_refused(algorithm: str, length: int) -> None:
    """A secret shorter than the configured HMAC algorithm's digest is refused."""
    problems = problems_of({"COLLAB_JWT_ALGORITHMS": algorithm, "COLLAB_JWT_SECRET": "x" * length})
    assert problems[0].startswith("COLLAB_JWT_SECRET: ")


def test_redis_url_selects_the_shared_bus() -> None:
    """A valid COLLAB_REDIS_URL is accepted as it is."""
    settings = load_settings({"COLLAB_REDIS_URL": "rediss://:pw@cache:6380/2"})
    assert settings.redis_url == "rediss://:pw@cache:6380/2"


@pytest.mark.parametrize(
    "origins",
    ["notes.example.com", "ftp://notes.example.com", "https://notes.example.com/app", "https://"],
)
def test_malformed_origins_are_refused(origins: str) -> None:
    """Anything but scheme://host[:port] raises ConfigError naming COLLAB_ALLOWED_ORIGINS."""
    (problem,) = problems_of({"COLLAB_ALLOWED_ORIGINS": f"https://ok.example.com,{origins}"})
    assert problem.startswith("COLLAB_ALLOWED_ORIGINS: ")
    assert "is not an origin" in problem


@pytest.mark.parametrize(
    "origin",
    [
        "https://notes.example.com?x=1",
        "https://notes.example.com#top",
        "https://user@notes.example.com",
        "https://notes.example.com:99999",
        "https://notes.example.com:abc",
    ],
)
def test_values_that_are_not_origins_are_refused(origin: str) -> None:
    """Query, fragment, userinfo or an invalid port make a value not an origin: ConfigError."""
    (problem,) = problems_of({"COLLAB_ALLOWED_ORIGINS": origin})
    assert problem.startswith("COLLAB_ALLOWED_ORIGINS: ")


def test_origins_are_kept_in_canonical_lowercase() -> None:
    """An origin written with capitals is stored lowercased, as browsers send it."""
    settings = load_settings({"COLLAB_ALLOWED_ORIGINS": "HTTPS://Notes.Example.com"})
    assert settings.allowed_origins == ("https://notes.example.com",)


def test_default_ports_are_dropped_as_browsers_drop_them() -> None:
    """A browser on https://x:443 sends `Origin: https://x`; other ports are kept."""
    settings = load_settings(
        {
            "COLLAB_ALLOWED_ORIGINS": "https://notes.example.com:443,http://a.example:80,"
            "http://b.example:443,https://c.example:8443",
            "COLLAB_CORS_ORIGINS": "https://notes.example.com:443",
        }
    )
    assert settings.allowed_origins == (
        "https://notes.example.com",
        "http://a.example",
        "http://b.example:443",
        "https://c.example:8443",
    )
    assert settings.cors_origins == ("https://notes.example.com",)


def test_overrides_win_over_the_environment() -> None:
    """CLI flag values replace environment values; None means the flag was not given."""
    settings = load_settings(
        {"COLLAB_PORT": "9000", "COLLAB_LOG_LEVEL": "ERROR", "PORT": "7000"},
        {"port": "9100", "log_level": None, "host": "0.0.0.0"},
    )
    assert (settings.port, settings.log_level, settings.host) == (9100, "ERROR", "0.0.0.0")


def test_bad_override_is_reported_as_its_flag() -> None:
    """A bad CLI flag value is reported under the flag's name."""
    (problem,) = problems_of({"COLLAB_PORT": "9000"}, {"port": "high"})
    assert problem.startswith("--port: expected an integer")


def test_override_replaces_a_bad_environment_value() -> None:
    """A flag given on the command line hides a bad value of the same variable."""
    assert load_settings({"COLLAB_PORT": "bad"}, {"port": "8080"}).port == 8080


def test_options_name_their_variables_and_flags_after_their_fields() -> None:
    """Each Option's env is COLLAB_<FIELD>, its flag --<field>, and its field exists."""
    fields = {field.name for field in dataclasses.fields(Settings)}
    for option in OPTIONS:
        assert option.env.startswith("COLLAB_")
        assert option.env == "COLLAB_" + option.field.upper()
        assert option.flag == "--" + option.field.replace("_", "-")
        assert option.field in fields
        assert option.help
    assert len({option.env for option in OPTIONS}) == len(OPTIONS)


def test_settings_are_frozen() -> None:
    """Settings cannot be changed in place; `replace` returns a new value."""
    settings = Settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.port = 1  # type: ignore[misc]
    assert settings.replace(port=1).port == 1
    assert settings.port == 8000


def test_secret_never_shows_in_repr_of_settings(public_pem: str) -> None:
    """repr/str of settings and of Secret hide the secret and the key."""
    settings = load_settings({"COLLAB_JWT_SECRET": SECRET})
    key_settings = load_settings(
        {"COLLAB_JWT_ALGORITHMS": "RS256", "COLLAB_JWT_PUBLIC_KEY": public_pem}
    )
    shown = repr(settings) + str(settings) + repr(key_settings) + str(Secret(SECRET))
    assert SECRET not in shown
    assert "PUBLIC KEY" not in shown
    assert settings.jwt_secret is not None
    assert settings.jwt_secret.reveal() == SECRET


def test_jwt_keys_with_hmac_algorithms_must_not_be_pems(public_pem: str) -> None:
    """A PEM among COLLAB_JWT_KEYS is refused while the pinned algorithms are HMAC."""
    (problem,) = problems_of({"COLLAB_JWT_KEYS": json.dumps({"k1": public_pem})})
    assert problem == "COLLAB_JWT_KEYS: key 'k1' is a PEM, but COLLAB_JWT_ALGORITHMS is HMAC"


def test_jwt_keys_with_public_key_algorithms_must_be_pems() -> None:
    """A plain secret among COLLAB_JWT_KEYS is refused while the algorithms are RS256."""
    (problem,) = problems_of(
        {"COLLAB_JWT_KEYS": json.dumps({"k1": SECRET}), "COLLAB_JWT_ALGORITHMS": "RS256"}
    )
    assert problem.startswith("COLLAB_JWT_KEYS: key 'k1' must be a PEM public key")


def test_keys_by_kid_make_the_single_key_optional(public_pem: str) -> None:
    """With COLLAB_JWT_KEYS or COLLAB_JWKS_URL, neither COLLAB_JWT_PUBLIC_KEY nor (with a
    shared database) COLLAB_JWT_SECRET is required."""
    rs = load_settings(
        {"COLLAB_JWT_ALGORITHMS": "RS256", "COLLAB_JWKS_URL": "https://idp.example.com/jwks"}
    )
    assert rs.jwt_public_key is None
    hs = load_settings(
        {
            "COLLAB_DATABASE_URL": "postgresql://collab@db/collab",
            "COLLAB_JWT_KEYS": json.dumps({"k1": SECRET}),
        }
    )
    assert hs.jwt_secret is None


def test_jwt_keys_file_paths_are_read(public_pem: str, tmp_path: Path) -> None:
    """A COLLAB_JWT_KEYS value that is an absolute path is replaced by the file's content."""
    key_file = tmp_path / "k1.pem"
    key_file.write_text(public_pem)
    settings = load_settings(
        {"COLLAB_JWT_KEYS": json.dumps({"k1": str(key_file)}), "COLLAB_JWT_ALGORITHMS": "ES256"}
    )
    assert settings.jwt_keys == (("k1", Secret(public_pem)),)


def test_drain_must_end_before_the_shutdown_timeout() -> None:
    """A drain as long as the shutdown timeout is refused, naming both variables."""
    (problem,) = problems_of({"COLLAB_DRAIN_S": "8", "COLLAB_SHUTDOWN_TIMEOUT_S": "5"})
    assert problem.startswith("COLLAB_DRAIN_S: must be less than COLLAB_SHUTDOWN_TIMEOUT_S (5 s)")
    assert load_settings({"COLLAB_DRAIN_S": "0", "COLLAB_SHUTDOWN_TIMEOUT_S": "0"}).drain_s == 0


def test_default_drain_fits_a_short_shutdown_timeout() -> None:
    """Unset, the drain takes half of a shutdown timeout shorter than its default."""
    assert load_settings({}).drain_s == Settings().drain_s
    assert load_settings({"COLLAB_SHUTDOWN_TIMEOUT_S": "3"}).drain_s == 1.5
    assert load_settings({"COLLAB_SHUTDOWN_TIMEOUT_S": "0"}).drain_s == 0


def test_version_retention_windows_must_grow() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings({"COLLAB_VERSION_HOURLY_DAYS": "30", "COLLAB_VERSION_DAILY_DAYS": "10"})
    assert any("windows must grow" in problem for problem in raised.value.problems)


EMAIL = {
    "COLLAB_SMTP_URL": "smtp://mail.example.com",
    "COLLAB_EMAIL_FROM": "notes@example.com",
    "COLLAB_PUBLIC_URL": "https://notes.example.com",
}

EMAIL_PARSED: list[tuple[str, str, str, Any]] = [
    (
        "COLLAB_SMTP_URL",
        "smtp://mail.example.com",
        "smtp_url",
        SmtpServer("mail.example.com", 587, implicit_tls=False),
    ),
    (
        "COLLAB_SMTP_URL",
        "SMTPS://ann%40corp:p%3Ass@mail.example.com:2465",
        "smtp_url",
        SmtpServer("mail.example.com", 2465, True, "ann@corp", Secret("p:ss")),
    ),
    ("COLLAB_SMTP_USERNAME", " ann ", "smtp_username", "ann"),
    ("COLLAB_EMAIL_FROM", " notes@example.com ", "email_from", "notes@example.com"),
    (
        "COLLAB_EMAIL_FROM",
        "Notes of Ann <notes@example.com>",
        "email_from",
        "Notes of Ann <notes@example.com>",
    ),
]


@pytest.mark.parametrize(("env", "raw", "field", "expected"), EMAIL_PARSED)
def test_each_email_variable_is_parsed_into_its_field(
    env: str, raw: str, field: str, expected: Any
) -> None:
    """With the other email settings it needs, an email variable lands parsed in its field."""
    settings = load_settings({**EMAIL, "COLLAB_JWT_SECRET": SECRET, env: raw})
    assert getattr(settings, field) == expected


def test_every_email_option_is_covered() -> None:
    """The email variables are parsed by the tables above too."""
    email_options = {option.env for option in OPTIONS if "SMTP" in option.env} | {
        "COLLAB_EMAIL_FROM",
        "COLLAB_PUBLIC_URL",
        "COLLAB_EMAIL_DIGEST_S",
    }
    assert email_options <= {env for env, *_ in PARSED}
    assert {"COLLAB_SMTP_URL", "COLLAB_SMTP_USERNAME", "COLLAB_EMAIL_FROM"} <= {
        env for env, *_ in EMAIL_PARSED
    }


def test_email_is_off_by_default() -> None:
    """No SMTP URL: no email settings, digests every 600 s once configured."""
    settings = load_settings({})
    assert (settings.smtp_url, settings.email_from, settings.public_url) == (None, None, None)
    assert settings.email_digest_s == 600.0


def test_an_smtp_url_needs_a_sender_and_the_public_url() -> None:
    """COLLAB_SMTP_URL alone names the two settings it needs, each on its own line."""
    problems = problems_of({"COLLAB_SMTP_URL": "smtp://mail.example.com"})
    assert [problem.split(":")[0] for problem in problems] == [
        "COLLAB_EMAIL_FROM",
        "COLLAB_PUBLIC_URL",
    ]
    assert "required when COLLAB_SMTP_URL is set" in problems[0]


@pytest.mark.parametrize(
    ("extra", "variable", "reason"),
    [
        ({"COLLAB_SMTP_USERNAME": "ann"}, "COLLAB_SMTP_USERNAME", "no email is sent"),
        ({"COLLAB_SMTP_PASSWORD": "pw"}, "COLLAB_SMTP_PASSWORD", "no email is sent"),
        ({"COLLAB_EMAIL_FROM": "n@example.com"}, "COLLAB_EMAIL_FROM", "no email is sent"),
    ],
)
def test_email_settings_without_an_smtp_url_are_refused(
    extra: dict[str, str], variable: str, reason: str
) -> None:
    """What only matters with COLLAB_SMTP_URL is refused without it, not silently ignored."""
    (problem,) = problems_of(extra)
    assert problem.startswith(f"{variable}: set, but COLLAB_SMTP_URL is not")
    assert reason in problem


@pytest.mark.parametrize(
    ("extra", "variable", "reason"),
    [
        (
            {"COLLAB_SMTP_URL": "smtp://ann@mail.example.com", "COLLAB_SMTP_USERNAME": "ann"},
            "COLLAB_SMTP_USERNAME",
            "names a user too",
        ),
        (
            {"COLLAB_SMTP_URL": "smtp://ann:pw@mail.example.com", "COLLAB_SMTP_PASSWORD": "pw"},
            "COLLAB_SMTP_PASSWORD",
            "holds a password too",
        ),
        ({"COLLAB_SMTP_PASSWORD": "pw"}, "COLLAB_SMTP_PASSWORD", "no user"),
    ],
)
def test_smtp_credentials_are_given_once_and_whole(
    extra: dict[str, str], variable: str, reason: str
) -> None:
    """A user or password given twice, or a password without a user, is named."""
    (problem,) = problems_of({**EMAIL, "COLLAB_JWT_SECRET": SECRET, **extra})
    assert problem.startswith(f"{variable}: ")
    assert reason in problem


def test_a_public_key_deployment_needs_a_secret_for_unsubscribe_links(public_pem: str) -> None:
    """Unsubscribe links are signed with a key derived from COLLAB_JWT_SECRET: a deployment
    verifying tokens with a public key must set one for email."""
    keys = {"COLLAB_JWT_PUBLIC_KEY": public_pem, "COLLAB_JWT_ALGORITHMS": "ES256"}
    (problem,) = problems_of({**EMAIL, **keys})
    assert problem.startswith("COLLAB_SMTP_URL: ")
    assert "COLLAB_JWT_SECRET" in problem
    (short,) = problems_of({**EMAIL, **keys, "COLLAB_JWT_SECRET": "short"})
    assert short.startswith("COLLAB_JWT_SECRET: use at least 32 bytes")
    settings = load_settings({**EMAIL, **keys, "COLLAB_JWT_SECRET": SECRET})
    assert settings.smtp_url is not None


def test_the_embedded_default_may_send_email_with_its_generated_secret() -> None:
    """SQLite without a secret is fine: `collab serve` generates one beside the file."""
    assert load_settings(EMAIL).smtp_url is not None


def test_smtp_passwords_never_show(public_pem: str) -> None:
    """Neither the URL's password nor COLLAB_SMTP_PASSWORD shows in the settings' repr, and a
    bad URL is never echoed."""
    settings = load_settings(
        {
            **EMAIL,
            "COLLAB_SMTP_URL": "smtps://ann:hunter2-url@mail.example.com",
        }
    )
    assert "hunter2-url" not in repr(settings)
    other = load_settings(
        {**EMAIL, "COLLAB_SMTP_USERNAME": "ann", "COLLAB_SMTP_PASSWORD": "hunter2-var"}
    )
    assert "hunter2-var" not in repr(other)
    problems = problems_of({**EMAIL, "COLLAB_SMTP_URL": "smtpx://ann:hunter2-bad@mail"})
    assert not any("hunter2-bad" in problem for problem in problems)
