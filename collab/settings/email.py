"""Parsers and cross-checks of the email digest settings (`COLLAB_SMTP_URL` and its company).

Email is off unless `COLLAB_SMTP_URL` is set; then `COLLAB_EMAIL_FROM` and `COLLAB_PUBLIC_URL`
are required, and the unsubscribe links are signed with a key derived from
`COLLAB_JWT_SECRET` (`check_email`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import formataddr, parseaddr
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from collab.settings.values import HMAC_ALGORITHMS, Secret

if TYPE_CHECKING:
    from collab.settings import Settings

SMTP_DEFAULT_PORTS = {"smtp": 587, "smtps": 465}
MAX_ADDRESS_CHARS = 254
MIN_UNSUBSCRIBE_KEY_BYTES = 32
# An address as the digests write it: no spaces, quotes, brackets or controls anywhere.
ADDRESS = re.compile(
    r"[^@\s\"<>()\[\],;:\\\x00-\x1f\x7f]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?"
)


@dataclass(frozen=True)
class SmtpServer:
    """Where digests are sent: `smtp://` (STARTTLS when the server offers it) or `smtps://`
    (TLS from the first byte). The password never shows in `repr`."""

    host: str
    port: int
    implicit_tls: bool
    username: str | None = None
    password: Secret | None = None


def smtp_url(raw: str) -> SmtpServer | None:
    """`smtp://[user[:password]@]host[:port]` or `smtps://…`; the URL itself is never echoed
    (it may hold a password)."""
    url = raw.strip()
    if not url:
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError("not a URL like smtp://host:port (its port is invalid)") from None
    scheme = parts.scheme.lower()
    if scheme not in SMTP_DEFAULT_PORTS:
        shown = f"scheme {scheme!r}" if scheme else "no scheme"
        raise ValueError(
            f"{shown}: use smtp://host[:port] (STARTTLS when offered, port 587 by default) or "
            "smtps://host[:port] (implicit TLS, port 465 by default)"
        )
    if not parts.hostname:
        raise ValueError(f"no host: use {scheme}://host[:port]")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"a {scheme}:// URL takes a host and a port only, no path or query")
    password = None if parts.password is None else Secret(unquote(parts.password))
    return SmtpServer(
        host=parts.hostname,
        port=port or SMTP_DEFAULT_PORTS[scheme],
        implicit_tls=scheme == "smtps",
        username=unquote(parts.username) if parts.username else None,
        password=password,
    )


def is_address(value: str) -> bool:
    """Whether `value` is an address digests may be sent to or from. Never one holding an
    RFC 2047 encoded word (`=?…?=`): Python's `email` package decodes those when it writes
    a header, so `=?utf-8?q?a=3E=2C_eve=40corp.example?=@x.example` became more
    recipients."""
    return (
        len(value) <= MAX_ADDRESS_CHARS
        and ADDRESS.fullmatch(value) is not None
        and "=?" not in value
    )


def email_from(raw: str) -> str | None:
    """`notes@example.com` or `Notes <notes@example.com>`."""
    value = raw.strip()
    if not value:
        return None
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("an address holds no control characters (line breaks included)")
    name, address = parseaddr(value)
    if not address or not is_address(address):
        raise ValueError(
            f"expected an address like notes@example.com or 'Notes <notes@example.com>', "
            f"got {value!r}"
        )
    return formataddr((name, address)) if name else address


def public_url(raw: str) -> str | None:
    """The server's address as users reach it, `https://notes.example.com[/prefix]`, without
    a trailing slash."""
    value = raw.strip().rstrip("/")
    if not value:
        return None
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 -- raises ValueError for a bad port
    except ValueError:
        raise ValueError(f"{value!r} has an invalid port") from None
    if (
        parts.scheme.lower() not in ("http", "https")
        or not parts.hostname
        or parts.query
        or parts.fragment
        or "@" in parts.netloc
    ):
        raise ValueError(
            f"expected the URL users open, like https://notes.example.com, got {value!r}"
        )
    return value


def check_email(settings: Settings) -> list[str]:
    """What is missing or contradictory in the email settings, one message each."""
    smtp = settings.smtp_url
    if smtp is None:
        problems = [
            f"{variable}: set, but COLLAB_SMTP_URL is not: no email is sent without it"
            for variable, value in (
                ("COLLAB_SMTP_USERNAME", settings.smtp_username),
                ("COLLAB_SMTP_PASSWORD", settings.smtp_password),
                ("COLLAB_EMAIL_FROM", settings.email_from),
            )
            if value is not None
        ]
        return problems
    problems = []
    if settings.email_from is None:
        problems.append(
            "COLLAB_EMAIL_FROM: required when COLLAB_SMTP_URL is set: the digests' sender, "
            "like notes@example.com or 'Notes <notes@example.com>'"
        )
    if settings.public_url is None:
        problems.append(
            "COLLAB_PUBLIC_URL: required when COLLAB_SMTP_URL is set: digests link to the "
            "notes and to their unsubscribe page, like https://notes.example.com"
        )
    if settings.smtp_username is not None and smtp.username is not None:
        problems.append("COLLAB_SMTP_USERNAME: COLLAB_SMTP_URL names a user too; give it once")
    if settings.smtp_password is not None and smtp.password is not None:
        problems.append("COLLAB_SMTP_PASSWORD: COLLAB_SMTP_URL holds a password too; give it once")
    if settings.smtp_password is not None and (smtp.username or settings.smtp_username) is None:
        problems.append(
            "COLLAB_SMTP_PASSWORD: set, but no user: set COLLAB_SMTP_USERNAME or put the user "
            "in COLLAB_SMTP_URL"
        )
    embedded = settings.sqlite_path is not None or settings.database_url == "memory://"
    hmac = bool(HMAC_ALGORITHMS & set(settings.jwt_algorithms))
    secret = settings.jwt_secret
    if secret is None and not (embedded and hmac):
        # The embedded default generates a secret beside the SQLite file; nothing else does.
        problems.append(
            "COLLAB_SMTP_URL: email digests sign their unsubscribe links with a key derived "
            "from COLLAB_JWT_SECRET: set it, the same on every instance (with public-key "
            "algorithms it signs nothing else)"
        )
    elif (
        secret is not None
        and not hmac  # HMAC deployments check its length for their algorithms already
        and len(secret.reveal().encode()) < MIN_UNSUBSCRIBE_KEY_BYTES
    ):
        problems.append(
            f"COLLAB_JWT_SECRET: use at least {MIN_UNSUBSCRIBE_KEY_BYTES} bytes: it signs the "
            "unsubscribe links of email digests"
        )
    return problems


def smtp_credentials(settings: Settings) -> tuple[str | None, Secret | None]:
    """The user and password to log in with: from the URL, else from their variables."""
    smtp = settings.smtp_url
    if smtp is None:
        return None, None
    return smtp.username or settings.smtp_username, smtp.password or settings.smtp_password
