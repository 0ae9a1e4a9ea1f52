"""Sending email: the `MailSender` interface, `SmtpSender` (the standard library's `smtplib` in
a worker thread) and `MemoryMailSender`, its in-memory twin and the test fake.

`SmtpSender` connects for each message: `smtps://` speaks TLS from the first byte; `smtp://`
upgrades with STARTTLS whenever the server offers it. It logs in when given a user, and never
sends a password in clear to a host other than the loopback. Every socket operation has a
timeout, and the whole send another: a server that does not answer costs a worker thread for
at most that long, never the event loop. `smtplib` and socket errors become `SmtpError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import smtplib
import ssl
from email.message import EmailMessage
from typing import Protocol

from collab.errors import CollabError
from collab.settings import Secret, SmtpServer

SMTP_TIMEOUT_S = 30.0
"""Bound on each socket operation of a send (connect, each command)."""
SEND_TIMEOUT_S = 120.0
"""Bound on a whole send."""


class SmtpError(CollabError):
    """The SMTP server could not be reached, refused the login or the message, or was too
    slow."""


class MailSender(Protocol):
    async def send(self, message: EmailMessage) -> None:
        """Send one message to the recipients its headers name. Raises `SmtpError`."""


class SmtpSender:
    def __init__(
        self,
        server: SmtpServer,
        *,
        username: str | None = None,
        password: Secret | None = None,
        timeout_s: float = SMTP_TIMEOUT_S,
        send_timeout_s: float = SEND_TIMEOUT_S,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self._server = server
        self._username = username
        self._password = password
        self._timeout_s = timeout_s
        self._send_timeout_s = send_timeout_s
        self._tls_context = tls_context
        self.where = f"{server.host}:{server.port}"

    def __repr__(self) -> str:
        return f"SmtpSender({self.where!r})"

    async def send(self, message: EmailMessage) -> None:
        try:
            async with asyncio.timeout(self._send_timeout_s):
                await asyncio.to_thread(self._send, message)
        except TimeoutError:
            raise SmtpError(
                f"SMTP server {self.where}: no answer within {self._send_timeout_s:g} s"
            ) from None

    def _send(self, message: EmailMessage) -> None:
        """The blocking send, in a worker thread."""
        context = self._tls_context or ssl.create_default_context()
        try:
            if self._server.implicit_tls:
                client: smtplib.SMTP = smtplib.SMTP_SSL(
                    self._server.host, self._server.port, timeout=self._timeout_s, context=context
                )
            else:
                client = smtplib.SMTP(self._server.host, self._server.port, timeout=self._timeout_s)
        except (smtplib.SMTPException, OSError) as error:
            raise self._error("connecting", error) from error
        try:
            self._deliver(client, message, context)
        except (smtplib.SMTPException, OSError) as error:
            client.close()
            raise self._error("sending", error) from error
        except BaseException:
            client.close()
            raise
        # Sent: a failing goodbye must not make it look unsent (and be sent again).
        with contextlib.suppress(smtplib.SMTPException, OSError):
            client.quit()

    def _deliver(
        self, client: smtplib.SMTP, message: EmailMessage, context: ssl.SSLContext
    ) -> None:
        client.ehlo()
        encrypted = self._server.implicit_tls
        if not encrypted and client.has_extn("starttls"):
            client.starttls(context=context)
            client.ehlo()
            encrypted = True
        if self._username is not None:
            if not encrypted and not _is_loopback(self._server.host):
                raise SmtpError(
                    f"SMTP server {self.where}: it offers no STARTTLS, and the password is not "
                    "sent in clear; use smtps:// or a server that offers STARTTLS"
                )
            password = "" if self._password is None else self._password.reveal()
            client.login(self._username, password)
        client.send_message(message)

    def _error(self, doing: str, error: BaseException) -> SmtpError:
        return SmtpError(f"SMTP server {self.where}: {doing} failed: {error}")


class MemoryMailSender:
    """Keeps what it is given in `messages`; while `fail_with` is set, raises it instead."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.fail_with: SmtpError | None = None

    async def send(self, message: EmailMessage) -> None:
        if self.fail_with is not None:
            raise self.fail_with.with_traceback(None)
        self.messages.append(message)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
