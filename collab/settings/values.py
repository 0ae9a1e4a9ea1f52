"""Parsers of setting values: each turns one raw `COLLAB_*` value (or `collab serve` flag) into
a typed value, or raises `ValueError` with a message that says what is wrong and what is
accepted. `collab.settings.options` declares which option takes which parser.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
PUBLIC_KEY_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
MIN_HMAC_KEY_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
LOG_FORMATS = ("text", "json")


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


Parser = Callable[[str], Any]


# Plain ASCII numbers only: Python's `int()` and `float()` also take other scripts' digits
# ("٨٠٠٠"), full-width ones and underscores ("8_000"), which no documented value uses.
_INTEGER = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
MAX_SECONDS = 86_400.0


def int_in(low: int, high: int) -> Parser:
    def parse(raw: str) -> int:
        text = raw.strip()
        if not _INTEGER.fullmatch(text):
            raise ValueError(f"expected an integer in ASCII digits, got {raw!r}")
        value = int(text)
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}, got {value}")
        return value

    return parse


def seconds(raw: str) -> float:
    """0 to 86,400 seconds, 0 included (what 0 means is each setting's own)."""
    text = raw.strip()
    if not _NUMBER.fullmatch(text):
        raise ValueError(f"expected a number of seconds, got {raw!r}")
    value = float(text)
    if not 0 <= value <= MAX_SECONDS:
        raise ValueError(f"must be between 0 and 86400 seconds, got {value}")
    return value


def positive_seconds(raw: str) -> float:
    value = seconds(raw)
    if value <= 0:
        raise ValueError(f"must be more than 0 seconds, got {value}")
    return value


def seconds_at_least(low: float, *, zero: str | None = None) -> Parser:
    """A number of seconds of at least `low`, or 0 when `zero` says what 0 means: shorter
    periods and timeouts than `low` are no setting anyone wants, and some make the server
    spin or drop every connection."""
    accepted = f"0 ({zero}) or " if zero is not None else ""

    def parse(raw: str) -> float:
        value = seconds(raw)
        if value == 0 and zero is not None:
            return value
        if value < low:
            raise ValueError(
                f"must be {accepted}between {low:g} and {MAX_SECONDS:.0f} seconds, got {value:g}"
            )
        return value

    return parse


def boolean(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected one of 1/0, true/false, yes/no, on/off; got {raw!r}")


def optional_text(raw: str) -> str | None:
    return raw.strip() or None


def database_url(raw: str) -> str:
    url = raw.strip()
    if url == "memory://" or url.startswith(("postgresql://", "postgres://")):
        return url
    if url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
        return url
    raise ValueError(
        f"unsupported database URL {url!r}; use sqlite:///relative/path.db, "
        "sqlite:////absolute/path.db, postgresql://user@host/db or memory://"
    )


def redis_url(raw: str) -> str | None:
    url = raw.strip()
    if not url:
        return None
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"expected a redis://, rediss:// or unix:// URL, got {url!r}")
    return url


def algorithms(raw: str) -> tuple[str, ...]:
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


def secret(raw: str) -> Secret | None:
    return Secret(raw) if raw else None


def public_key(raw: str) -> Secret | None:
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


MAX_JWT_KEYS = 100
MAX_KID_CHARS = 256
MAX_LEEWAY_S = 300.0
MIN_ADMIN_TOKEN_BYTES = 32


def jwt_keys(raw: str) -> tuple[tuple[str, Secret], ...]:
    """`{"kid": value}`: a value holding `-----BEGIN` is a PEM; one starting with `/` or `./`
    is a file to read; anything else is an HMAC secret."""
    if not raw.strip():
        return ()
    try:
        parsed = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nested thousands deep
        raise ValueError('expected a JSON object like {"2024-06": "secret"}') from None
    if not isinstance(parsed, dict) or not parsed:
        raise ValueError('expected a non-empty JSON object like {"2024-06": "secret"}')
    if len(parsed) > MAX_JWT_KEYS:
        raise ValueError(f"at most {MAX_JWT_KEYS} keys, got {len(parsed)}")
    keys = []
    for kid, value in parsed.items():
        if not kid or len(kid) > MAX_KID_CHARS:
            raise ValueError(f"key ids must be 1 to {MAX_KID_CHARS} characters, got {kid!r:.40}")
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"key {kid!r}: the value must be a non-empty string")
        if "-----BEGIN" not in value and value.startswith(("/", "./")):
            try:
                value = Path(value).read_text()
            except OSError as error:
                raise ValueError(f"key {kid!r}: cannot read {value}: {error.strerror}") from None
        keys.append((kid, Secret(value)))
    return tuple(keys)


def jwks_url(raw: str) -> str | None:
    url = raw.strip()
    if not url:
        return None
    parts = urlsplit(url)
    local = parts.hostname in ("localhost", "127.0.0.1", "::1")
    if not parts.hostname or not (parts.scheme == "https" or (parts.scheme == "http" and local)):
        # Keys fetched over plain HTTP could be swapped by anyone on the path.
        raise ValueError(f"expected an https:// URL (http:// only for localhost), got {url!r}")
    return url


def leeway(raw: str) -> float:
    value = seconds(raw)
    if value > MAX_LEEWAY_S:
        raise ValueError(f"must be at most {MAX_LEEWAY_S:.0f} seconds, got {value}")
    return value


def admin_token(raw: str) -> Secret | None:
    value = raw.strip()
    if not value:
        return None
    if len(value.encode()) < MIN_ADMIN_TOKEN_BYTES:
        raise ValueError(
            f"use at least {MIN_ADMIN_TOKEN_BYTES} bytes (generate one with: "
            "python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return Secret(value)


MIN_SEALING_KEY_BYTES = 32
MAX_SEALING_KEYS = 10


def sealing_keys(raw: str) -> tuple[Secret, ...]:
    """Comma-separated keys, each at least `MIN_SEALING_KEY_BYTES`, none twice; the first
    seals, every one unseals."""
    if not raw.strip():
        return ()
    keys = [key.strip() for key in raw.split(",")]
    if any(not key for key in keys):
        raise ValueError("an empty key between commas; list the keys separated by commas")
    if len(keys) > MAX_SEALING_KEYS:
        raise ValueError(f"at most {MAX_SEALING_KEYS} keys")
    if len(set(keys)) != len(keys):
        raise ValueError("a key is listed twice")
    if any(len(key.encode()) < MIN_SEALING_KEY_BYTES for key in keys):
        raise ValueError(
            f"use keys of at least {MIN_SEALING_KEY_BYTES} bytes (generate one with: "
            "python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return tuple(Secret(key) for key in keys)


_DEFAULT_PORTS = {"http": 80, "https": 443}


def origins(raw: str) -> tuple[str, ...]:
    """Exact origins as browsers send them: lowercase scheme and host, and a port only when it
    is not the scheme's default (a browser sends `https://x`, never `https://x:443`)."""
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
        scheme = parts.scheme.lower()
        host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        if port == _DEFAULT_PORTS[scheme]:
            port = None
        origins.append(f"{scheme}://{host}" + (f":{port}" if port else ""))
    return tuple(origins)


def networks(raw: str) -> tuple[IPNetwork, ...]:
    networks = []
    for value in (v.strip() for v in raw.split(",")):
        if not value:
            continue
        try:
            networks.append(ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address or CIDR like 10.0.0.0/8") from None
    return tuple(networks)


def log_level(raw: str) -> str:
    level = raw.strip().upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}, got {raw!r}")
    return level


def log_format(raw: str) -> str:
    log_format = raw.strip().lower()
    if log_format not in LOG_FORMATS:
        raise ValueError(f"expected one of {', '.join(LOG_FORMATS)}, got {raw!r}")
    return log_format


def metrics_token(raw: str) -> Secret | None:
    value = raw.strip()
    return Secret(value) if value else None
