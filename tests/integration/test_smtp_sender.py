"""`SmtpSender` against a real SMTP server (aiosmtpd on this event loop, a port of its own):
STARTTLS when offered and a login over it, implicit TLS, and refusals and unreachable servers
as `SmtpError`."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from collab.rooms.smtp import SmtpError, SmtpSender
from collab.settings import Secret, SmtpServer
from tests.support.waiting import scaled


class Handler:
    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.received: list[tuple[bool, bool | None, list[str]]] = []

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if self.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.received.append((session.ssl is not None, session.authenticated, envelope.rcpt_tos))
        return "250 OK"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a self-signed certificate for 127.0.0.1, and a client context
    that trusts it."""
    directory: Path = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_path, key_path)
    return server, ssl.create_default_context(cafile=str(cert_path))


@asynccontextmanager
async def serving(factory: Callable[[], SMTP], **kwargs: Any) -> AsyncIterator[int]:
    server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0, **kwargs)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def a_message() -> EmailMessage:
    message = EmailMessage()
    message["From"] = "notes@example.com"
    message["To"] = "Bob <bob@example.com>"
    message["Subject"] = "1 unread notification in collab"
    message.set_content("hello")
    return message


def accept_ann(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
) -> AuthResult:
    return AuthResult(success=data == LoginPassword(b"ann", b"secret-pw"))


async def test_starttls_is_used_when_offered_and_the_login_goes_over_it(
    tls: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    """smtp:// upgrades with STARTTLS when the server offers it, then logs in."""
    server_tls, client_tls = tls
    handler = Handler()

    def factory() -> SMTP:
        return SMTP(handler, hostname="localhost", tls_context=server_tls, authenticator=accept_ann)

    async with serving(factory) as port:
        sender = SmtpSender(
            SmtpServer("127.0.0.1", port, implicit_tls=False),
            username="ann",
            password=Secret("secret-pw"),
            tls_context=client_tls,
        )
        await sender.send(a_message())
    assert handler.received == [(True, True, ["bob@example.com"])]


async def test_smtps_speaks_tls_from_the_first_byte(
    tls: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    """smtps:// connects with TLS at once (a server that only speaks TLS accepts it)."""
    server_tls, client_tls = tls
    handler = Handler()
    async with serving(lambda: SMTP(handler, hostname="localhost"), ssl=server_tls) as port:
        sender = SmtpSender(
            SmtpServer("127.0.0.1", port, implicit_tls=True), tls_context=client_tls
        )
        await sender.send(a_message())
    assert [rcpt for *_, rcpt in handler.received] == [["bob@example.com"]]


async def test_a_refused_message_or_an_unreachable_server_raises_smtp_error() -> None:
    """A refused recipient and a port nobody listens on are `SmtpError`s naming the server."""
    handler = Handler(refuse=True)
    async with serving(lambda: SMTP(handler, hostname="localhost")) as port:
        sender = SmtpSender(SmtpServer("127.0.0.1", port, implicit_tls=False))
        with pytest.raises(SmtpError, match=f"127.0.0.1:{port}: sending failed"):
            await sender.send(a_message())
    assert handler.received == []
    with pytest.raises(SmtpError, match=f"127.0.0.1:{port}: connecting failed"):
        await SmtpSender(SmtpServer("127.0.0.1", port, implicit_tls=False)).send(a_message())


class SlowHandler(Handler):
    """Answers RCPT, or the end of DATA, after `delay_s`; records when a session ended."""

    def __init__(self, *, slow: str, delay_s: float) -> None:
        super().__init__()
        self.slow = slow
        self.delay_s = delay_s
        self.answered = asyncio.Event()

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if self.slow == "rcpt":
            await asyncio.sleep(self.delay_s)
            self.answered.set()
        return await super().handle_RCPT(server, session, envelope, address, options)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.slow == "data":
            await asyncio.sleep(self.delay_s)
            self.answered.set()
        return await super().handle_DATA(server, session, envelope)


class ClosingSMTP(SMTP):
    """aiosmtpd's server, telling when its client's connection is gone."""

    def __init__(
        self, handler: Any, closed: asyncio.Event, tls_context: ssl.SSLContext | None = None
    ) -> None:
        super().__init__(handler, hostname="localhost", tls_context=tls_context)
        self._lost = closed

    def connection_lost(self, error: Exception | None) -> None:
        super().connection_lost(error)
        self._lost.set()


@pytest.mark.parametrize("starttls", [False, True], ids=["plain", "starttls"])
async def test_a_send_out_of_time_before_the_message_went_is_abandoned_and_delivers_nothing(
    tls: tuple[ssl.SSLContext, ssl.SSLContext], starttls: bool
) -> None:
    """The whole send is bounded; one that runs out of time before the message was written is
    abandoned: `SmtpError`, its connection shut down at once (over STARTTLS too, whose TLS
    socket replaces the first), and the server never gets the message (its worker thread
    does not go on to send it, to be sent again by a retry). The server would answer RCPT
    only after an hour: the connection ends because the sender shut it."""
    server_tls, client_tls = tls
    handler = SlowHandler(slow="rcpt", delay_s=3600)
    closed = asyncio.Event()
    context = server_tls if starttls else None
    async with serving(lambda: ClosingSMTP(handler, closed, context)) as port:
        sender = SmtpSender(
            SmtpServer("127.0.0.1", port, implicit_tls=False),
            send_timeout_s=0.3,
            tls_context=client_tls,
        )
        with pytest.raises(SmtpError, match=r"no answer within 0\.3 s"):
            await sender.send(a_message())
        await asyncio.wait_for(closed.wait(), scaled(10))
    assert handler.received == []


class StallingServer(asyncio.Protocol):
    """Speaks SMTP up to DATA's 354, then stops reading: the body never arrives whole."""

    def __init__(self) -> None:
        self.buffer = b""
        self.received = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(b"220 localhost ESMTP\r\n")

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\r\n", 1)
            command = line[:4].upper()
            if command == b"DATA":
                self.transport.write(b"354 go ahead\r\n")
                self.received.extend(self.buffer)
                self.transport.pause_reading()  # its window fills
                return
            self.transport.write(b"250 OK\r\n")


async def test_a_send_out_of_time_in_the_middle_of_the_body_is_not_counted_sent() -> None:
    """smtplib writes a message's body and last line at once: a server that stops reading
    in the body never got the message, so that send is an `SmtpError` (sent again later),
    not one counted as sent."""
    stalling = StallingServer()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: stalling, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    message = a_message()
    message.set_content("a line of a long digest\n" * 600_000)  # about 14 MB: more than buffers
    try:
        sender = SmtpSender(SmtpServer("127.0.0.1", port, implicit_tls=False), send_timeout_s=0.5)
        with pytest.raises(SmtpError, match=r"no answer within 0\.5 s"):
            await sender.send(message)
    finally:
        stalling.transport.abort()
        server.close()
        await server.wait_closed()
    assert not bytes(stalling.received).endswith(b"\r\n.\r\n")


async def test_a_send_out_of_time_after_the_message_went_counts_as_sent_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The server may hold a message whose last line it received: a send whose time runs
    out while waiting for its answer counts as sent (logged), so nobody sends it again."""
    handler = SlowHandler(slow="data", delay_s=1.0)
    async with serving(lambda: SMTP(handler, hostname="localhost")) as port:
        sender = SmtpSender(SmtpServer("127.0.0.1", port, implicit_tls=False), send_timeout_s=0.3)
        await sender.send(a_message())
        await handler.answered.wait()
    assert [rcpt for *_, rcpt in handler.received] == [["bob@example.com"]]
    assert "counted as sent" in caplog.text
