"""Sending email: the `MailSender` interface, `SmtpSender` (the standard library's `smtplib` in
a worker thread) and `MemoryMailSender`, its in-memory twin and the test fake.

`SmtpSender` connects for each message: `smtps://` speaks TLS from the first byte; `smtp://`
upgrades with STARTTLS whenever the server offers it. It logs in when given a user, and never
sends a password in clear to a host other than the loopback. Every socket operation has a
timeout, and the whole send another: a server that does not answer costs a worker thread for
at most that long, never the event loop. `smtplib` and socket errors become `SmtpError`.

A send that runs out of time is abandoned: its socket is shut down, so the worker thread
stops and the server discards the message it had not received whole, and the caller may send
it again. Once the message's last line is on its way, the server may already hold it: a send
whose time runs out then counts as sent (a warning is logged) rather than risk a second copy
at every retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import smtplib
import socket
import ssl
import threading
from email.message import EmailMessage
from typing import Any, Protocol

from collab.errors import CollabError
from collab.settings import Secret, SmtpServer

SMTP_TIMEOUT_S = 30.0
"""Bound on each socket operation of a send (connect, each command)."""
SEND_TIMEOUT_S = 120.0
"""Bound on a whole send."""
_END_OF_DATA = b"\r\n.\r\n"

log = logging.getLogger(__name__)


class SmtpError(CollabError):
    """The SMTP server could not be reached, refused the login or the message, or was too
    slow."""


class _Attempt:
    """One send, shared by the worker thread and the coroutine that waits for it: once the
    coroutine gives up, the thread must neither finish the message nor go on waiting."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Its socket is read when the send is abandoned: STARTTLS replaces it.
        self._client: smtplib.SMTP | None = None
        self.abandoned = False
        self.message_going = False  # the message's last line is being written, or was

    def connected(self, client: smtplib.SMTP) -> None:
        with self._lock:
            self._client = client
            abandoned = self.abandoned
        if abandoned:
            self._shut(client.sock)

    def before_final_write(self) -> None:
        """Called by the thread before it writes the end of the message. Raises `SmtpError`
        when the send was abandoned."""
        with self._lock:
            if self.abandoned:
                raise SmtpError("the send was abandoned")
            self.message_going = True

    def abandon(self) -> bool:
        """Give up on the send; returns whether the server may hold the message already."""
        with self._lock:
            self.abandoned = True
            going, client = self.message_going, self._client
        if not going and client is not None:
            self._shut(client.sock)
        return going

    @staticmethod
    def _shut(sock: socket.socket | None) -> None:
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Watched:
    """An `smtplib` client that tells its `_Attempt` before writing the last line of a
    message: smtplib writes the body and that line at once, and a server that stops reading
    in the body has not got the message."""

    attempt: _Attempt

    def send(self, s: Any) -> None:
        data = s.encode("ascii") if isinstance(s, str) else s
        if not data.endswith(_END_OF_DATA):
            super().send(s)  # type: ignore[misc]
            return
        last_line = len(_END_OF_DATA) - 2  # ".\r\n"
        super().send(data[:-last_line])  # type: ignore[misc]
        self.attempt.before_final_write()
        super().send(data[-last_line:])  # type: ignore[misc]


class _Client(_Watched, smtplib.SMTP):
    pass


class _TlsClient(_Watched, smtplib.SMTP_SSL):
    pass


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
        attempt = _Attempt()
        try:
            async with asyncio.timeout(self._send_timeout_s):
                await asyncio.to_thread(self._send, message, attempt)
        except TimeoutError:
            if attempt.abandon():
                log.warning(
                    "SMTP server %s: no answer within %g s once the message's last line was "
                    "sent; it may hold the message: counted as sent, not sent again",
                    self.where,
                    self._send_timeout_s,
                )
                return
            raise SmtpError(
                f"SMTP server {self.where}: no answer within {self._send_timeout_s:g} s"
            ) from None

    def _send(self, message: EmailMessage, attempt: _Attempt) -> None:
        """The blocking send, in a worker thread."""
        context = self._tls_context or ssl.create_default_context()
        client: smtplib.SMTP
        try:
            host, port = self._server.host, self._server.port
            if self._server.implicit_tls:
                client = _TlsClient(host, port, timeout=self._timeout_s, context=context)
            else:
                client = _Client(host, port, timeout=self._timeout_s)
            client.attempt = attempt
            attempt.connected(client)
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
