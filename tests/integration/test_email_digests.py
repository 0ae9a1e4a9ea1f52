"""Email digests end to end, on both backends: a real SMTP server (aiosmtpd, started by each
test on a port of its own) receives what in-process servers send. The digests' clock is
injected: intervals and retries pass when a test moves it, never by waiting."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import aiohttp
import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from pycrdt import Map, XmlElement, XmlFragment, XmlText

from collab.auth.tokens import Role, mint_token
from collab.rooms.email_digests import RETRY_DELAYS_S
from collab.settings import SmtpServer
from collab.web.keys import DATABASE, EMAIL_DIGESTS, VERIFIER
from tests.conftest import RunningServer, StartServer, make_settings
from tests.support.live import LiveClient
from tests.support.metrics import scrape
from tests.support.waiting import eventually
from tests.support.yclient import YClient

PUBLIC_URL = "https://notes.example.com"
SENDER = "Notes <notes@example.com>"
INTERVAL_S = 600.0
BOB = "bob@example.com"


class Mailbox:
    """An aiosmtpd handler keeping every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.recipients: list[list[str]] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 OK"


@asynccontextmanager
async def smtp_server(mailbox: Mailbox, port: int = 0) -> AsyncIterator[int]:
    """A real SMTP server on this event loop, on `port` (0: a free one); yields the port."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(mailbox, hostname="localhost"), "127.0.0.1", port
    )
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


class _Silent(asyncio.Protocol):
    """Accepts a connection and never says a word: an SMTP server that hangs."""

    def __init__(self, transports: list[asyncio.Transport]) -> None:
        self._transports = transports

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transports.append(transport)


@dataclass
class Clock:
    now: float = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Deployment:
    """In-process instances sending digests to one SMTP port, on one clock."""

    start_server: StartServer
    port: int
    clock: Clock = field(default_factory=Clock)
    servers: list[RunningServer] = field(default_factory=list)

    async def start(self, **overrides: Any) -> RunningServer:
        settings = make_settings(
            smtp_url=SmtpServer("127.0.0.1", self.port, implicit_tls=False),
            email_from=SENDER,
            public_url=PUBLIC_URL,
            email_digest_s=INTERVAL_S,
            **overrides,
        )
        server = await self.start_server(settings)
        server.app[EMAIL_DIGESTS].clock = self.clock
        self.servers.append(server)
        return server

    def advance(self, seconds: float) -> None:
        self.clock.now += seconds
        for server in self.servers:
            server.app[EMAIL_DIGESTS].wake()

    async def settled(self) -> None:
        """Wait until no instance is sending and none has anything due now."""
        await eventually(
            lambda: all(s.app[EMAIL_DIGESTS].settled() for s in self.servers),
            what="email digests settled",
        )


def token(
    server: RunningServer, user_id: str, *, name: str | None = None, email: str | None = None
) -> str:
    return mint_token(
        server.settings, sub=user_id, workspaces={"w1": Role.EDITOR}, name=name, email=email
    )


async def request(
    server: RunningServer, method: str, path: str, bearer: str | None = None, **kwargs: Any
) -> tuple[int, Any]:
    headers = dict(kwargs.pop("headers", {}))
    if bearer:
        headers["Authorization"] = f"Bearer {bearer}"
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, f"{server.http}{path}", headers=headers, **kwargs) as response,
    ):
        if response.content_type == "application/json":
            return response.status, await response.json()
        return response.status, await response.text()


async def sign_in(server: RunningServer, user_id: str, **claims: str) -> str:
    """A token of the user, used once so the directory records them (and their address)."""
    bearer = token(server, user_id, **claims)
    status, _ = await request(server, "GET", "/api/v1/notifications", bearer)
    assert status == 200
    return bearer


async def notify(server: RunningServer, title: str, recipient: str = "u2") -> int:
    status, body = await request(
        server,
        "POST",
        "/api/v1/notifications",
        token(server, "u1", name="Ann"),
        json={"workspace": "w1", "recipients": [recipient], "title": title},
    )
    assert status == 201, body
    return int(body["notifications"][0]["id"])


def plain(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def html_of(message: EmailMessage) -> str:
    part = message.get_body(("html",))
    assert part is not None
    return str(part.get_content())


def unsubscribe_link(message: EmailMessage) -> str:
    match = re.fullmatch(r"\s*<(.+)>", str(message["List-Unsubscribe"]))
    assert match is not None
    return match.group(1)


def titles(messages: Iterable[EmailMessage], candidates: Iterable[str]) -> list[str]:
    """Which of `candidates` the messages list, with repeats."""
    return sorted(t for m in messages for t in candidates if f"Ann: {t} " in plain(m))


@pytest.fixture
async def mailbox() -> Mailbox:
    return Mailbox()


@pytest.fixture
async def deployment(start_server: StartServer, mailbox: Mailbox) -> AsyncIterator[Deployment]:
    async with smtp_server(mailbox) as port:
        yield Deployment(start_server, port)


async def test_an_away_user_gets_a_digest_with_links_and_a_one_click_unsubscribe(
    deployment: Deployment, mailbox: Mailbox
) -> None:
    """A member mentioned in a note while away gets one email: To with their display name,
    a plain and an HTML part linking to the note with every untrusted text escaped, and the
    RFC 8058 one-click unsubscribe headers."""
    server = await deployment.start()
    name = 'Bob "B" <Lee> & co'
    await sign_in(server, "u2", name=name, email=BOB)
    async with YClient.connect(server.doc_url("w1/plan", token=token(server, "u1"))) as editor:
        await editor.wait_synced()
        with editor.doc.transaction():
            editor.doc.get("meta", type=Map)["title"] = "<b>Plan</b> & more"
            editor.doc.get("body", type=XmlFragment).children.append(
                XmlElement("paragraph", {}, [XmlText("ask @u2 about it")])
            )
        await eventually(lambda: len(mailbox.messages) == 1, what="the digest")
    (message,) = mailbox.messages
    assert mailbox.recipients == [[BOB]]
    (to,) = message["To"].addresses
    assert (to.display_name, to.addr_spec) == (name, BOB)
    assert message["From"] == SENDER
    assert message["Subject"] == "1 unread notification in collab"
    link = f"{PUBLIC_URL}/#/w1/plan"
    text = plain(message)
    assert "u1 mentioned you in \u201c<b>Plan</b> & more\u201d" in text
    assert link in text
    page = html_of(message)
    assert f'<a href="{link}">' in page
    assert "&lt;b&gt;Plan&lt;/b&gt; &amp; more" in page
    assert "<b>" not in page
    assert "Bob &quot;B&quot; &lt;Lee&gt; &amp; co" in page
    unsubscribe = unsubscribe_link(message)
    assert unsubscribe.startswith(f"{PUBLIC_URL}/api/v1/email/unsubscribe?token=")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert unsubscribe in text
    assert f'href="{unsubscribe}"' in page


async def test_no_digest_while_the_user_is_connected_on_any_instance(
    deployment: Deployment, mailbox: Mailbox
) -> None:
    """A user with a live connection, or only a document connection, on another instance
    (or this one) gets no email; once gone, the next notification brings a digest of all
    that is still unread."""
    a = await deployment.start(presence_heartbeat_s=0.2)
    b = await deployment.start(presence_heartbeat_s=0.2)
    bob = await sign_in(a, "u2", name="Bob", email=BOB)

    async def present_on_b() -> bool:
        status, body = await request(b, "GET", "/api/v1/workspaces/w1/presence", bob)
        assert status == 200
        return any(user["user"] == "u2" for user in body["users"])

    async with LiveClient.connect(a.ws, bob) as live:
        await live.send({"type": "subscribe", "workspace": "w1"})
        await live.wait_event("presence.snapshot")
        await eventually(present_on_b, what="u2 present for b")
        await notify(b, "while live, from b")
        await notify(a, "while live, from a")
        await live.wait_for(lambda c: len(c.of_type("notification")) == 2, what="both live")
        await deployment.settled()
    async with YClient.connect(a.doc_url("w1/n1", token=bob)) as doc:
        await doc.wait_synced()
        await eventually(present_on_b, what="u2 present for b through a note")
        await notify(b, "while editing")
        await deployment.settled()
    assert mailbox.messages == []
    await eventually(lambda: _not(present_on_b()), what="u2 gone for b")
    await notify(b, "while away")
    await eventually(lambda: len(mailbox.messages) == 1, what="the digest")
    assert mailbox.messages[0]["Subject"] == "4 unread notifications in collab"


async def _not(check: Any) -> bool:
    return not await check


async def test_at_most_one_digest_per_interval_and_none_for_what_was_read(
    deployment: Deployment, mailbox: Mailbox
) -> None:
    """After a digest, the next waits for the interval and lists only what is unread and was
    not emailed; notifications all read meanwhile send nothing."""
    server = await deployment.start()
    bob = await sign_in(server, "u2", email=BOB)
    await notify(server, "one")
    await eventually(lambda: len(mailbox.messages) == 1, what="the first digest")
    two = await notify(server, "two")
    await notify(server, "three")
    await deployment.settled()
    assert len(mailbox.messages) == 1
    status, _ = await request(server, "POST", f"/api/v1/notifications/{two}/read", bob)
    assert status == 200
    deployment.advance(INTERVAL_S - 1)
    await deployment.settled()
    assert len(mailbox.messages) == 1
    deployment.advance(1)
    await eventually(lambda: len(mailbox.messages) == 2, what="the second digest")
    await deployment.settled()
    assert titles(mailbox.messages, ["one", "two", "three"]) == ["one", "three"]
    assert mailbox.messages[1]["Subject"] == "1 unread notification in collab"
    four = await notify(server, "four")
    await request(server, "POST", f"/api/v1/notifications/{four}/read", bob)
    deployment.advance(INTERVAL_S)
    await deployment.settled()
    assert len(mailbox.messages) == 2


async def test_a_revoked_user_gets_no_digest_until_the_revocation_ends(
    deployment: Deployment, mailbox: Mailbox
) -> None:
    """An operator's revocation shuts the user out of email too: what they are sent while
    revoked is emailed by the first digest after it ends."""
    server = await deployment.start()
    await sign_in(server, "u2", email=BOB)
    revocations = server.app[VERIFIER].revocations
    revocations.set("u2", time.time() + 3600)
    await notify(server, "while revoked")
    await deployment.settled()
    assert mailbox.messages == []
    revocations.set("u2", 0)
    await notify(server, "after")
    await eventually(lambda: len(mailbox.messages) == 1, what="the digest")
    await deployment.settled()
    assert titles(mailbox.messages, ["while revoked", "after"]) == ["after", "while revoked"]


async def test_one_instance_sends_each_digest(deployment: Deployment, mailbox: Mailbox) -> None:
    """Notifications created at once on two instances for the same users: one digest per user
    in the interval; the next interval sends what the first did not cover, so every
    notification is emailed exactly once."""
    a = await deployment.start()
    b = await deployment.start()
    users = [f"u{i}" for i in range(2, 8)]
    for user_id in users:
        await sign_in(a, user_id, email=f"{user_id}@example.com")
    await asyncio.gather(
        *(
            notify(instance, f"{user_id}-from-{instance.server.port}", user_id)
            for user_id in users
            for instance in (a, b)
        )
    )
    await deployment.settled()
    assert sorted(to for (to,) in mailbox.recipients) == [f"{u}@example.com" for u in users]
    deployment.advance(INTERVAL_S)
    await deployment.settled()
    for user_id in users:
        mine = [
            message
            for message, (to,) in zip(mailbox.messages, mailbox.recipients, strict=True)
            if to == f"{user_id}@example.com"
        ]
        expected = [f"{user_id}-from-{instance.server.port}" for instance in (a, b)]
        assert 1 <= len(mine) <= 2
        assert titles(mine, expected) == sorted(expected)


async def test_an_smtp_server_that_hangs_then_is_back_is_retried_and_blocks_nothing(
    deployment: Deployment, mailbox: Mailbox
) -> None:
    """While the SMTP server accepts connections but never answers, the server goes on
    serving requests and live notifications; once it fails, the digest is retried after the
    backoff and delivered when a working server is back on the port."""
    transports: list[asyncio.Transport] = []
    loop = asyncio.get_running_loop()
    silent = await loop.create_server(lambda: _Silent(transports), "127.0.0.1", 0)
    deployment.port = silent.sockets[0].getsockname()[1]
    server = await deployment.start()
    await sign_in(server, "u2", email=BOB)
    carol = await sign_in(server, "u3")
    digests = server.app[EMAIL_DIGESTS]
    await notify(server, "stuck")
    await eventually(lambda: len(transports) == 1, what="the send to connect")
    async with LiveClient.connect(server.ws, carol) as live:
        await live.wait_event("notifications.synced")
        await notify(server, "meanwhile", recipient="u3")
        await live.wait_event("notification")
        status, body = await request(server, "GET", "/api/v1/notifications", carol)
        assert (status, len(body["notifications"])) == (200, 1)
    assert not digests.settled()
    silent.close()
    for transport in transports:
        transport.abort()
    await silent.wait_closed()
    await eventually(lambda: digests.failures == 1, what="the failed attempt")
    await notify(server, "after the failure")
    await deployment.settled()
    async with smtp_server(mailbox, deployment.port):
        deployment.advance(RETRY_DELAYS_S[0])
        await eventually(lambda: len(mailbox.messages) == 1, what="the retried digest")
        await deployment.settled()
    assert titles(mailbox.messages, ["stuck", "after the failure"]) == [
        "after the failure",
        "stuck",
    ]
    assert digests.sent == 1
    metrics = await scrape(server)
    assert "collab_email_digests_sent_total 1.0" in metrics
    assert "collab_email_digest_failures_total 1.0" in metrics


async def test_the_unsubscribe_link_stops_digests_and_a_tampered_one_is_refused(
    deployment: Deployment, mailbox: Mailbox
) -> None:
    """The link's page asks before anything changes; a token changed in any way is refused
    with 400 and records nothing; the one-click POST records the opt-out, and no digest
    follows."""
    server = await deployment.start()
    await sign_in(server, "u2", email=BOB)
    await sign_in(server, "u3", email="carol@example.com")
    await notify(server, "one")
    await eventually(lambda: len(mailbox.messages) == 1, what="the digest")
    link = unsubscribe_link(mailbox.messages[0]).replace(PUBLIC_URL, "")
    good = link.partition("token=")[2]
    database = server.app[DATABASE]
    status, page = await request(server, "GET", link)
    assert status == 200
    assert '<form method="post"' in page
    assert not (await database.email_recipient("u2")).opted_out
    carols = server.app[EMAIL_DIGESTS].unsubscribe_url("u3").partition("token=")[2]
    signature = good.rpartition(".")[2]
    flipped = signature[:5] + ("A" if signature[5] != "A" else "B") + signature[6:]
    tampered = [
        carols.rpartition(".")[0] + "." + signature,
        good.rpartition(".")[0] + "." + flipped,
        good[:-1],
        good + "A",
        "",
        "v1.x.y",
    ]
    for bad in tampered:
        for method in ("GET", "POST"):
            status, _ = await request(
                server, method, "/api/v1/email/unsubscribe", params={"token": bad}
            )
            assert status == 400, (method, bad)
    assert not (await database.email_recipient("u2")).opted_out
    assert not (await database.email_recipient("u3")).opted_out
    status, page = await request(
        server,
        "POST",
        link,
        data="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 200
    assert "no more email digests" in page
    assert (await database.email_recipient("u2")).opted_out
    deployment.advance(INTERVAL_S)
    await notify(server, "two")
    await deployment.settled()
    assert len(mailbox.messages) == 1


async def test_without_smtp_settings_there_are_no_digests(start_server: StartServer) -> None:
    """Email is off by default: no service, and no unsubscribe endpoint (404)."""
    server = await start_server()
    assert EMAIL_DIGESTS not in server.app
    status, _ = await request(server, "GET", "/api/v1/email/unsubscribe", params={"token": "x"})
    assert status == 404
