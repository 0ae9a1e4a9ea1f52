"""Webhooks end to end, on the embedded and the scaled backend: a real receiver on 127.0.0.1
(plain http to loopback is the development case) that fails, stalls, redirects and sends
endless bodies; every signature checked by a verifier written here from the Standard
Webhooks specification (not our signer); the nine events with their data; retries, order per
note, disabling; SSRF refusals at registration and at delivery; the admin API's auth and
bad input."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from pycrdt import Doc, XmlElement, XmlFragment, XmlText

from collab.delivery.service import PER_ENDPOINT
from collab.delivery.signing import new_secret
from collab.errors import ConfigError
from collab.settings import Secret, Settings
from collab.store.webhooks import EVENT_TYPES
from collab.web.keys import DATABASE, WEBHOOKS
from tests.conftest import RunningServer, StartServer, make_settings, token_for
from tests.support.metrics import scrape
from tests.support.rest import rest_call
from tests.support.waiting import eventually

ADMIN = "admin-token-for-the-webhook-tests-0123456789"
HOOKS = "/api/v1/admin/webhooks"
NOTES = "/api/v1/workspaces/w1/notes"
ROLES = {"ann": "editor", "olga": "owner", "ben": "viewer"}
TOLERANCE_S = 300
PUBLIC = "93.184.216.34"


def hook_settings(**overrides: Any) -> Settings:
    """A short first retry (an internal setting), a fast catalog. The attempt timeout stays
    the server's default: the receiver runs on the server's own event loop, which a loaded
    machine can stall past a short timeout, and an attempt that times out after the receiver
    got it is sent again (at least once), which the tests counting deliveries exactly would
    see; the timeout test sets its own."""
    base: dict[str, Any] = {
        "admin_token": Secret(ADMIN),
        "catalog_interval_ms": 20,
        "webhook_first_retry_s": 0.02,
    }
    return make_settings(**{**base, **overrides})


# -- the receiver ----------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def payload(self) -> dict[str, Any]:
        value = orjson.loads(self.body)
        assert isinstance(value, dict)
        return value

    @property
    def note(self) -> str | None:
        data = self.payload["data"]
        if self.payload["type"] == "version.created":
            return str(data["note"])
        return str(data["id"]) if self.payload["type"].startswith("note.") else None


@dataclass
class Receiver:
    """A webhook receiver: records each request, then answers as its script for the note
    says ("fail", "stall", "redirect", "big-fail", "endless", "gone", "busy <Retry-After>"),
    else 204."""

    port: int = 0
    received: list[Received] = field(default_factory=list)
    scripts: dict[str, list[str]] = field(default_factory=dict)
    fail_everything: bool = False
    stuck_path: str | None = None
    """Requests to this path wait for `release`, whatever their note."""
    cut_off: int = 0
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, host: str = "127.0.0.1", path: str = "/hook") -> str:
        return f"http://{host}:{self.port}{path}"

    def of_type(self, event_type: str) -> list[Received]:
        return [r for r in self.received if r.payload["type"] == event_type]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        got = Received(request.path, dict(request.headers), await request.read())
        self.received.append(got)
        if request.path == self.stuck_path:
            await self.release.wait()
            return web.Response(status=204)
        script = self.scripts.get(got.note or "", [])
        behaviour = script.pop(0) if script else ("fail" if self.fail_everything else "ok")
        if behaviour == "fail":
            return web.Response(status=500, text="boom")
        if behaviour == "stall":
            await self.release.wait()
            return web.Response(status=204)
        if behaviour == "redirect":
            raise web.HTTPFound("/elsewhere")
        if behaviour == "gone":
            return web.Response(status=410, text="unsubscribed")
        if behaviour.startswith("busy "):
            # "busy <Retry-After value>": 429 asking to come back later.
            return web.Response(status=429, headers={"Retry-After": behaviour[5:]})
        if behaviour == "big-fail":
            return web.Response(status=500, text="x" * 100_000)
        if behaviour == "endless":
            return await self._endless(request)
        return web.Response(status=204)

    async def _endless(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=200)
        await response.prepare(request)
        chunk = b"y" * 65536
        try:
            for _ in range(100_000):
                await response.write(chunk)
        except ConnectionError:
            self.cut_off += 1
        except asyncio.CancelledError:
            # The client hung up: aiohttp cancels the handler (handler_cancellation).
            self.cut_off += 1
            raise
        return response


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A receiver on 127.0.0.1, a free port."""
    got = Receiver()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", got.handle)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    got.port = runner.addresses[0][1]
    yield got
    got.release.set()
    await runner.cleanup()


class FakeResolver(AbstractResolver):
    """Names resolved as the test says (a DNS the test controls)."""

    def __init__(self, names: dict[str, list[str]]) -> None:
        self.names = names

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host not in self.names:
            raise OSError(f"unknown host {host}")
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for address in self.names[host]
        ]

    async def close(self) -> None:
        pass


# -- an independent verifier, from the specification's text ----------------------------------


def verify(secret: str, got: Received) -> dict[str, Any]:
    """Check a request as a Standard Webhooks receiver does; return its payload.

    The key is the base64 after `whsec_`; the signed content is `id.timestamp.body`; the
    header holds space-separated `v1,<base64 HMAC-SHA256>`, one of which must match
    (compared in constant time); the timestamp must be within the tolerance of now.
    """
    message_id = got.headers["webhook-id"]
    timestamp = got.headers["webhook-timestamp"]
    assert abs(time.time() - int(timestamp)) <= TOLERANCE_S
    key = base64.b64decode(secret.split("_", 1)[1])
    content = message_id.encode() + b"." + timestamp.encode() + b"." + got.body
    expected = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest())
    offered = [
        part.split(",", 1)[1].encode()
        for part in got.headers["webhook-signature"].split(" ")
        if part.startswith("v1,")
    ]
    assert any(hmac.compare_digest(expected, signature) for signature in offered)
    assert got.headers["Content-Type"] == "application/json"
    return got.payload


def verifies(secret: str, got: Received) -> bool:
    """Whether a receiver holding only `secret` accepts the request."""
    try:
        verify(secret, got)
    except AssertionError:
        return False
    return True


# -- helpers -----------------------------------------------------------------------------------


async def admin(
    server: RunningServer, method: str, path: str, token: str = ADMIN, **kw: Any
) -> tuple[int, Any]:
    return await rest_call(server.http, token, method, path, **kw)


async def register(
    server: RunningServer,
    url: str,
    events: list[str] | None = None,
    workspace: str | None = "w1",
) -> dict[str, Any]:
    body: dict[str, Any] = {"url": url, "events": events or list(EVENT_TYPES)}
    if workspace is not None:
        body["workspace"] = workspace
    status, answer = await admin(server, "POST", HOOKS, json=body)
    assert status == 201, answer
    return answer  # type: ignore[no-any-return]


async def call(
    server: RunningServer, user: str, method: str, path: str, **kw: Any
) -> tuple[int, Any]:
    token = token_for(server.settings, user, {"w1": ROLES[user]})
    return await rest_call(server.http, token, method, path, **kw)


async def create_note(server: RunningServer, note: str) -> None:
    status, body = await call(server, "ann", "POST", NOTES, json={"id": note, "title": note})
    assert status == 201, body


async def edit_note(server: RunningServer, note: str, text: str) -> None:
    status, state = await call(
        server,
        "ann",
        "GET",
        f"/api/v1/docs/w1/{note}",
        headers={"Accept": "application/octet-stream"},
    )
    assert status == 200
    doc: Doc[Any] = Doc()
    doc.apply_update(state)
    before = doc.get_state()
    doc.get("body", type=XmlFragment).children.append(XmlElement("paragraph", {}, [XmlText(text)]))
    status, body = await call(
        server, "ann", "POST", f"/api/v1/docs/w1/{note}/updates", data=doc.get_update(before)
    )
    assert status == 200, body


async def deliveries(server: RunningServer, hook_id: str, **params: str) -> list[dict[str, Any]]:
    status, body = await admin(server, "GET", f"{HOOKS}/{hook_id}/deliveries", params=params)
    assert status == 200, body
    return body["deliveries"]  # type: ignore[no-any-return]


async def delivered(server: RunningServer, hook_id: str, count: int) -> bool:
    shown = await deliveries(server, hook_id, limit="100")
    return len(shown) >= count and all(d["state"] == "delivered" for d in shown)


def use_dns(server: RunningServer, names: dict[str, list[str]]) -> None:
    server.app[WEBHOOKS].client.resolver = FakeResolver(names)


# -- events ------------------------------------------------------------------------------------


async def test_every_event_is_delivered_signed_with_its_data_in_order(
    start_server: StartServer, receiver: Receiver
) -> None:
    """Each of the nine events reaches the endpoint with its data, signed (an independent
    verifier accepts every request), a note's events in the order they happened."""
    server = await start_server(hook_settings())
    hook = await register(server, receiver.url())
    assert hook["secret"].startswith("whsec_")

    await create_note(server, "n1")
    await edit_note(server, "n1", "hello")
    await eventually(lambda: bool(receiver.of_type("note.updated")), what="note.updated")
    status, version = await call(
        server, "ann", "POST", "/api/v1/docs/w1/n1/versions", json={"name": "v1"}
    )
    assert status == 201, version
    status, _ = await call(
        server,
        "ann",
        "POST",
        "/api/v1/notifications",
        json={"workspace": "w1", "recipients": ["ann"], "title": "Hi"},
    )
    assert status == 201
    status, _ = await call(
        server, "olga", "PUT", "/api/v1/workspaces/w1/members/u9", json={"role": "editor"}
    )
    assert status == 201
    status, _ = await call(server, "olga", "DELETE", "/api/v1/workspaces/w1/members/u9")
    assert status == 200
    assert (await call(server, "ann", "DELETE", f"{NOTES}/n1"))[0] == 200
    assert (await call(server, "ann", "POST", f"{NOTES}/n1/restore"))[0] == 200
    assert (await call(server, "olga", "DELETE", f"{NOTES}/n1", params={"purge": "true"}))[0] == 204

    await eventually(
        lambda: {r.payload["type"] for r in receiver.received} == set(EVENT_TYPES),
        what="all nine events",
    )
    payloads = {p["type"]: p for p in (verify(hook["secret"], r) for r in receiver.received)}
    assert payloads["note.created"]["data"]["title"] == "n1"
    assert payloads["note.updated"]["data"]["excerpt"] == "hello"
    assert payloads["note.updated"]["data"]["updated_by"] == "ann"
    assert payloads["version.created"]["data"] == {
        "workspace": "w1",
        "note": "n1",
        "version": version,
    }
    assert payloads["notification.created"]["data"]["user"] == "ann"
    assert payloads["notification.created"]["data"]["payload"]["title"] == "Hi"
    assert payloads["member.added"]["data"]["user"] == "u9"
    assert payloads["member.added"]["data"]["role"] == "editor"
    assert payloads["member.removed"]["data"]["removed_at"] is not None
    assert payloads["note.trashed"]["data"]["trashed_at"] is not None
    assert payloads["note.restored"]["data"]["trashed_at"] is None
    assert payloads["note.purged"]["data"]["id"] == "n1"
    assert all(p["timestamp"] for p in payloads.values())
    of_n1 = [r.payload["type"] for r in receiver.received if r.note == "n1"]
    firsts = [of_n1.index(t) for t in ("note.created", "note.updated", "version.created")]
    lasts = [of_n1.index(t) for t in ("note.trashed", "note.restored", "note.purged")]
    assert firsts == sorted(firsts)
    assert lasts == sorted(lasts)
    assert max(firsts) < min(lasts)
    assert len({r.headers["webhook-id"] for r in receiver.received}) == len(receiver.received)


async def test_an_endpoint_gets_only_its_events_of_its_workspace(
    start_server: StartServer, receiver: Receiver
) -> None:
    """An endpoint for one workspace and some event types gets those and nothing else."""
    server = await start_server(hook_settings())
    await register(server, receiver.url(), ["note.trashed"], workspace="w1")
    await register(server, receiver.url(path="/other"), ["note.created"], workspace="w2")

    await create_note(server, "n1")
    assert (await call(server, "ann", "DELETE", f"{NOTES}/n1"))[0] == 200

    await eventually(lambda: bool(receiver.received), what="a delivery")
    [got] = receiver.received
    assert (got.path, got.payload["type"]) == ("/hook", "note.trashed")


async def test_two_instances_deliver_each_event_once(
    start_server: StartServer, receiver: Receiver
) -> None:
    """With two instances on one database, an endpoint registered on one gets the events of
    changes made on either, each once, from whichever instance claimed it."""
    first = await start_server(hook_settings())
    second = await start_server(hook_settings())
    hook = await register(first, receiver.url(), ["note.created"])

    for number in range(10):
        await create_note(first if number % 2 else second, f"n{number}")

    await eventually(lambda: delivered(second, hook["id"], 10), what="ten delivered")
    notes = sorted(r.payload["data"]["id"] for r in receiver.received)
    assert notes == [f"n{number}" for number in range(10)]
    for got in receiver.received:
        verify(hook["secret"], got)


# -- retries, order, failures ---------------------------------------------------------------------


async def test_failed_attempts_are_retried_and_a_notes_events_keep_their_order(
    start_server: StartServer, receiver: Receiver
) -> None:
    """A receiver answering 500 twice gets the same message a third time (same webhook-id),
    and the note's later events only after it; the attempts and their statuses are listed;
    the metrics count them."""
    server = await start_server(hook_settings())
    hook = await register(server, receiver.url(), ["note.created", "note.trashed", "note.restored"])
    receiver.scripts["n1"] = ["fail", "fail"]

    await create_note(server, "n1")
    assert (await call(server, "ann", "DELETE", f"{NOTES}/n1"))[0] == 200
    assert (await call(server, "ann", "POST", f"{NOTES}/n1/restore"))[0] == 200
    await create_note(server, "n2")

    await eventually(lambda: delivered(server, hook["id"], 4), what="four delivered")
    of_n1 = [r for r in receiver.received if r.note == "n1"]
    assert [r.payload["type"] for r in of_n1] == [
        "note.created",
        "note.created",
        "note.created",
        "note.trashed",
        "note.restored",
    ]
    assert len({r.headers["webhook-id"] for r in of_n1[:3]}) == 1
    for got in receiver.received:
        verify(hook["secret"], got)
    created = next(
        d
        for d in await deliveries(server, hook["id"])
        if d["type"] == "note.created" and d["payload"]["data"]["id"] == "n1"
    )
    assert created["attempt_count"] == 3
    assert [a["status"] for a in created["attempts"]] == [500, 500, 204]
    assert created["attempts"][0]["error"] == "HTTP 500: boom"
    assert created["message_id"] == of_n1[0].headers["webhook-id"]
    metrics = await scrape(server)
    assert 'collab_webhook_deliveries_total{outcome="retried"} 2.0' in metrics
    assert 'collab_webhook_deliveries_total{outcome="delivered"} 4.0' in metrics


async def test_timeouts_redirects_and_big_bodies_fail_safely(
    start_server: StartServer, receiver: Receiver
) -> None:
    """A receiver that does not answer in time, one that redirects (not followed) and one that
    sends a huge error body (read only in part) fail their attempts; an endless 200 body is
    a success, read no further than its start."""
    server = await start_server(hook_settings(webhook_timeout_s=0.5))
    hook = await register(server, receiver.url(), ["note.created"])
    receiver.scripts["n1"] = ["stall", "redirect", "big-fail", "endless"]

    await create_note(server, "n1")

    await eventually(lambda: delivered(server, hook["id"], 1), what="delivered at last")
    [shown] = await deliveries(server, hook["id"])
    errors = [a["error"] for a in shown["attempts"]]
    assert errors[0] == "no answer within 0.5 s"
    assert errors[1] == "HTTP 302: redirects are not followed (/elsewhere)"
    assert errors[2].startswith("HTTP 500: xxx")
    assert len(errors[2]) < 250
    assert errors[3] is None
    assert [r.path for r in receiver.received] == ["/hook"] * 4
    await eventually(lambda: receiver.cut_off == 1, what="the endless body cut off")


async def test_an_endpoint_failing_for_the_retry_window_is_disabled_until_a_retry(
    start_server: StartServer, receiver: Receiver
) -> None:
    """An endpoint that fails every attempt for COLLAB_WEBHOOK_RETRY_S is disabled, says
    why, and gets nothing more; retrying a delivery by hand sends it again and enables it."""
    server = await start_server(hook_settings(webhook_retry_s=1))
    hook = await register(server, receiver.url(), ["note.created"])
    receiver.fail_everything = True

    await create_note(server, "n1")

    async def disabled() -> bool:
        status, body = await admin(server, "GET", f"{HOOKS}/{hook['id']}")
        assert status == 200
        return body["disabled_at"] is not None

    await eventually(disabled, what="the endpoint disabled")
    _, shown = await admin(server, "GET", HOOKS)
    [listed] = shown["webhooks"]
    assert "secret" not in listed
    assert "HTTP 500: boom" in listed["disabled_reason"]
    [failed] = await deliveries(server, hook["id"])
    assert failed["state"] == "failed"
    assert failed["attempt_count"] >= 2
    await create_note(server, "n2")
    assert len(await deliveries(server, hook["id"])) == 1

    receiver.fail_everything = False
    status, retried = await admin(
        server, "POST", f"{HOOKS}/{hook['id']}/deliveries/{failed['id']}/retry"
    )
    assert status == 202, retried
    assert retried["state"] == "pending"
    await eventually(lambda: delivered(server, hook["id"], 1), what="delivered by hand")
    _, enabled = await admin(server, "GET", f"{HOOKS}/{hook['id']}")
    assert (enabled["disabled_at"], enabled["failing_since"]) == (None, None)
    assert enabled["last_success_at"] is not None


# -- safety -----------------------------------------------------------------------------------


REFUSED_URLS = [
    (f"http://{PUBLIC}/hook", "use https://"),
    ("https://127.0.0.1/hook", "loopback"),
    ("https://10.0.0.1/hook", "private"),
    ("https://169.254.169.254/latest/meta-data", "link-local"),
    ("https://[::1]/hook", "loopback"),
    ("https://[fe80::1]/hook", "link-local"),
    ("https://[::ffff:127.0.0.1]/hook", "loopback"),
    ("https://internal.test/hook", "'internal.test' resolves to 10.1.2.3 is a private"),
    ("https://metadata.test/hook", "169.254.169.254 is a link-local"),
    ("https://loop6.test/hook", "::1 is a loopback"),
    ("https://linklocal6.test/hook", "fe80::5 is a link-local"),
    ("https://mapped.test/hook", "::ffff:127.0.0.1 is a loopback"),
    ("https://mixed.test/hook", "10.0.0.9 is a private"),
    ("https://nowhere.test/hook", "does not resolve"),
]
TEST_DNS = {
    "internal.test": ["10.1.2.3"],
    "metadata.test": ["169.254.169.254"],
    "loop6.test": ["::1"],
    "linklocal6.test": ["fe80::5"],
    "mapped.test": ["::ffff:127.0.0.1"],
    "mixed.test": [PUBLIC, "10.0.0.9"],
    "public.test": [PUBLIC],
}


async def test_registration_refuses_non_public_addresses_unless_allowed(
    start_server: StartServer,
) -> None:
    """URLs whose host is, or resolves to, a loopback (over https), private, link-local or
    IPv4-mapped loopback address, or that use http to a public one, are refused with 422
    naming the address; COLLAB_WEBHOOK_ALLOW_PRIVATE=1 lets the https ones through."""
    server = await start_server(hook_settings())
    use_dns(server, TEST_DNS)
    for url, reason in REFUSED_URLS:
        status, body = await admin(
            server, "POST", HOOKS, json={"url": url, "events": ["note.created"]}
        )
        assert status == 422, (url, body)
        assert body["error"]["message"].startswith("url: "), url
        assert reason in body["error"]["message"], (url, body)
    assert (await admin(server, "GET", HOOKS))[1] == {"webhooks": []}

    relaxed = await start_server(hook_settings(webhook_allow_private=True))
    use_dns(relaxed, TEST_DNS)
    for url in ("https://10.0.0.1/hook", "https://internal.test/hook", "https://[::1]/h"):
        status, body = await admin(
            relaxed, "POST", HOOKS, json={"url": url, "events": ["note.created"]}
        )
        assert status == 201, (url, body)
    status, body = await admin(
        relaxed, "POST", HOOKS, json={"url": f"http://{PUBLIC}/", "events": ["note.created"]}
    )
    assert status == 422, body


async def test_delivery_checks_the_address_each_time_and_connects_to_it(
    start_server: StartServer, receiver: Receiver
) -> None:
    """A name that resolved to a public address at registration and resolves to a loopback,
    private, link-local or IPv4-mapped address at delivery is refused then (nothing reaches
    the receiver); a name resolving to loopback over http is connected to where it was
    resolved."""
    server = await start_server(hook_settings())
    use_dns(server, {"rebind.test": [PUBLIC], "dev.test": ["127.0.0.1"]})
    rebound = await register(server, f"https://rebind.test:{receiver.port}/hook", ["note.created"])
    dev = await register(server, receiver.url(host="dev.test"), ["note.trashed"])
    await create_note(server, "n1")
    for address in [
        "127.0.0.1",
        "10.0.0.1",
        "169.254.169.254",
        "::1",
        "fe80::1",
        "::ffff:127.0.0.1",
    ]:
        use_dns(server, {"rebind.test": [address], "dev.test": ["127.0.0.1"]})

        async def attempted(address: str = address) -> bool:
            [shown] = await deliveries(server, rebound["id"])
            errors = [a["error"] for a in shown["attempts"]]
            if errors and f"resolves to {address} is" in errors[-1]:
                return True
            # Due now (or 409 while an attempt is under way: asked again at the next poll).
            await admin(server, "POST", f"{HOOKS}/{rebound['id']}/deliveries/{shown['id']}/retry")
            return False

        await eventually(attempted, what=f"an attempt refused for {address}")
        [shown] = await deliveries(server, rebound["id"])
        assert shown["attempts"][-1]["error"].startswith("refused: 'rebind.test' resolves to ")
    assert receiver.received == []

    assert (await call(server, "ann", "DELETE", f"{NOTES}/n1"))[0] == 200
    await eventually(lambda: delivered(server, dev["id"], 1), what="dev.test delivered")
    [got] = receiver.received
    assert got.headers["Host"] == f"dev.test:{receiver.port}"
    verify(dev["secret"], got)


# -- the admin API ------------------------------------------------------------------------------


async def test_the_admin_api_needs_the_admin_token(start_server: StartServer) -> None:
    """Without COLLAB_ADMIN_TOKEN the API is absent (404); with it, no token is 401, another
    token (a user's included) 403."""
    closed = await start_server(make_settings())
    assert (await admin(closed, "GET", HOOKS))[0] == 404
    server = await start_server(hook_settings())
    user = token_for(server.settings, "olga", {"w1": "owner"})

    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.http}{HOOKS}") as answer:
            assert answer.status == 401
        async with http.get(
            f"{server.http}{HOOKS}", headers={"Authorization": "Basic YWRtaW4="}
        ) as answer:
            assert answer.status == 401
    for token in ("wrong-token", user, ADMIN + "x"):
        for method, path in (
            ("GET", HOOKS),
            ("POST", HOOKS),
            ("DELETE", f"{HOOKS}/ep_abc"),
            ("GET", f"{HOOKS}/ep_abc/deliveries"),
            ("POST", f"{HOOKS}/ep_abc/deliveries/1/retry"),
            ("POST", f"{HOOKS}/ep_abc/secret/rotate"),
            ("PATCH", f"{HOOKS}/ep_abc"),
            ("POST", f"{HOOKS}/ep_abc/test"),
        ):
            status, body = await admin(server, method, path, token=token, json={})
            assert status == 403, (method, path, body)


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ([], 422, "the body must be a JSON object"),
        (
            {"url": "https://x.example/", "events": ["note.created"], "secret": "s"},
            422,
            "unknown field(s): secret",
        ),
        ({"events": ["note.created"]}, 422, "url: required"),
        ({"url": "https://x.example/"}, 422, "events: required"),
        ({"url": "https://x.example/", "events": []}, 422, "events: required"),
        ({"url": "https://x.example/", "events": "note.created"}, 422, "events: required"),
        (
            {"url": "https://x.example/", "events": ["note.deleted"]},
            422,
            "unknown event type 'note.deleted'",
        ),
        ({"url": "https://x.example/", "events": [7]}, 422, "unknown event type 7"),
        (
            {"url": "https://x.example/", "events": ["note.created", "note.created"]},
            422,
            "listed twice",
        ),
        (
            {"url": "https://x.example/", "events": ["note.created"], "workspace": "bad id"},
            422,
            "workspace:",
        ),
        (
            {"url": "https://x.example/", "events": ["note.created"], "workspace": 3},
            422,
            "workspace:",
        ),
        (
            {"url": "ftp://x.example/", "events": ["note.created"]},
            422,
            "url: the url must be https://",
        ),
        (
            {"url": "https://u:p@x.example/", "events": ["note.created"]},
            422,
            "user name or password",
        ),
        ({"url": "https://x.example/#f", "events": ["note.created"]}, 422, "#fragment"),
        (
            {"url": "https://x.example/" + "a" * 2100, "events": ["note.created"]},
            422,
            "longer than 2048",
        ),
        ({"url": 5, "events": ["note.created"]}, 422, "non-empty string"),
    ],
)
async def test_bad_registrations_get_a_precise_error(
    start_server: StartServer, body: Any, status: int, message: str
) -> None:
    """Each bad registration is refused with its status and a message naming the field."""
    server = await start_server(hook_settings())
    use_dns(server, {"x.example": [PUBLIC]})

    got, answer = await admin(server, "POST", HOOKS, json=body)

    assert got == status, answer
    assert message in answer["error"]["message"]


async def test_a_body_that_is_not_json_is_refused(start_server: StartServer) -> None:
    """A body not declared JSON is 415, one that does not parse 400, one too large 413."""
    server = await start_server(hook_settings())
    headers = {"Authorization": f"Bearer {ADMIN}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.post(f"{server.http}{HOOKS}", data=b"url=x") as answer:
            assert answer.status == 415
        async with http.post(
            f"{server.http}{HOOKS}", data=b"{nope", headers={"Content-Type": "application/json"}
        ) as answer:
            assert answer.status == 400
            assert "not valid JSON" in (await answer.json())["error"]["message"]
        async with http.post(
            f"{server.http}{HOOKS}",
            data=b'{"url": "' + b"a" * 20000 + b'"}',
            headers={"Content-Type": "application/json"},
        ) as answer:
            assert answer.status == 413


async def test_listing_paging_deleting_and_unknown_ids(
    start_server: StartServer, receiver: Receiver
) -> None:
    """Deliveries page newest first with a cursor; bad parameters are 400; unknown endpoints
    and deliveries 404; a deleted endpoint is gone with its deliveries."""
    server = await start_server(hook_settings())
    hook = await register(server, receiver.url(), ["note.created"])
    for note in ("n1", "n2", "n3"):
        await create_note(server, note)
    await eventually(lambda: delivered(server, hook["id"], 3), what="three delivered")

    status, page = await admin(
        server, "GET", f"{HOOKS}/{hook['id']}/deliveries", params={"limit": "2"}
    )
    assert status == 200
    assert [d["payload"]["data"]["id"] for d in page["deliveries"]] == ["n3", "n2"]
    status, rest = await admin(
        server, "GET", f"{HOOKS}/{hook['id']}/deliveries", params={"cursor": page["next"]}
    )
    assert [d["payload"]["data"]["id"] for d in rest["deliveries"]] == ["n1"]
    assert rest["next"] is None
    for params in ({"limit": "0"}, {"limit": "101"}, {"limit": "x"}, {"cursor": "abc"}, {"q": "1"}):
        status, body = await admin(server, "GET", f"{HOOKS}/{hook['id']}/deliveries", params=params)
        assert status == 400, (params, body)
        assert next(iter(params)) in body["error"]["message"]
    assert (await admin(server, "GET", f"{HOOKS}/ep_nope"))[0] == 404
    assert (await admin(server, "GET", f"{HOOKS}/Bad!Id/deliveries"))[0] == 404
    retry = f"{HOOKS}/{hook['id']}/deliveries"
    assert (await admin(server, "POST", f"{retry}/99999/retry"))[0] == 404
    assert (await admin(server, "POST", f"{retry}/0x1/retry"))[0] == 404

    assert (await admin(server, "DELETE", f"{HOOKS}/{hook['id']}"))[0] == 204
    assert (await admin(server, "DELETE", f"{HOOKS}/{hook['id']}"))[0] == 404
    assert (await admin(server, "GET", f"{HOOKS}/{hook['id']}/deliveries"))[0] == 404
    assert (await admin(server, "GET", HOOKS))[1] == {"webhooks": []}


async def test_a_receiver_asking_to_wait_is_retried_no_sooner_than_it_asked(
    start_server: StartServer, receiver: Receiver
) -> None:
    """A 429 with `Retry-After` (seconds or an HTTP date) schedules the next attempt that
    long after the answer, not at the backoff's first retry (20 ms in these tests); one
    without a readable value keeps the backoff."""
    server = await start_server(hook_settings())
    hook = await register(server, receiver.url(), ["note.created"])
    in_an_hour = format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)
    receiver.scripts = {"n1": ["busy 120"], "n2": [f"busy {in_an_hour}"], "n3": ["busy soon"]}

    for note in ("n1", "n2", "n3"):
        await create_note(server, note)
    await eventually(lambda: delivered_or_waiting(server, hook["id"]), what="n3 delivered")

    shown = {d["payload"]["data"]["id"]: d for d in await deliveries(server, hook["id"])}
    for note, wait in (("n1", timedelta(seconds=120)), ("n2", timedelta(minutes=59))):
        [attempt] = shown[note]["attempts"]
        assert attempt["status"] == 429
        assert shown[note]["state"] == "pending"
        waited = datetime.fromisoformat(shown[note]["next_attempt_at"]) - datetime.fromisoformat(
            attempt["at"]
        )
        assert wait <= waited <= timedelta(hours=1), (note, waited)
    assert shown["n3"]["state"] == "delivered"
    assert [a["status"] for a in shown["n3"]["attempts"]] == [429, 204]


async def delivered_or_waiting(server: RunningServer, hook_id: str) -> bool:
    shown = await deliveries(server, hook_id)
    return len(shown) == 3 and any(
        d["payload"]["data"]["id"] == "n3" and d["state"] == "delivered" for d in shown
    )


async def test_a_receiver_answering_gone_disables_its_endpoint_at_once(
    start_server: StartServer, receiver: Receiver
) -> None:
    """410 Gone is the receiver saying it wants nothing more: the delivery fails without a
    retry, the endpoint is disabled saying why, and later events are not sent to it."""
    server = await start_server(hook_settings())
    hook = await register(server, receiver.url(), ["note.created"])
    receiver.scripts["n1"] = ["gone"]

    await create_note(server, "n1")
    await eventually(lambda: endpoint_disabled(server, hook["id"]), what="the endpoint disabled")

    listed = (await admin(server, "GET", f"{HOOKS}/{hook['id']}"))[1]
    assert "410 Gone" in listed["disabled_reason"]
    [failed] = await deliveries(server, hook["id"])
    assert (failed["state"], failed["attempt_count"], failed["last_status"]) == ("failed", 1, 410)
    await create_note(server, "n2")
    assert [d["payload"]["data"]["id"] for d in await deliveries(server, hook["id"])] == ["n1"]
    assert len(receiver.received) == 1


async def endpoint_disabled(server: RunningServer, hook_id: str) -> bool:
    return (await admin(server, "GET", f"{HOOKS}/{hook_id}"))[1]["disabled_at"] is not None


# -- changing an endpoint ------------------------------------------------------------------------


async def test_an_endpoint_is_changed_in_place_paused_and_resumed(
    start_server: StartServer, receiver: Receiver
) -> None:
    """PATCH changes what it names and keeps the rest (the secret, the history): events go to
    the new URL and types at once; disabled by hand, the endpoint gets nothing of what
    happens meanwhile; enabled, it gets the next events. (That a delivery waiting when it
    was disabled waits and then goes is the store contract's test.)"""
    server = await start_server(hook_settings())
    hook = await register(server, receiver.url(), ["note.created"])
    path = f"{HOOKS}/{hook['id']}"
    await create_note(server, "n1")
    await eventually(lambda: delivered(server, hook["id"], 1), what="n1 delivered")

    status, changed = await admin(
        server,
        "PATCH",
        path,
        json={"url": receiver.url(path="/moved"), "events": ["note.trashed"], "workspace": None},
    )
    assert status == 200, changed
    assert (changed["url"], changed["events"], changed["workspace"]) == (
        receiver.url(path="/moved"),
        ["note.trashed"],
        None,
    )
    assert "secret" not in changed
    assert changed["created_at"] == hook["created_at"]
    assert (await admin(server, "GET", path))[1] == changed
    await create_note(server, "n2")
    assert (await call(server, "ann", "DELETE", f"{NOTES}/n2"))[0] == 200
    await eventually(lambda: delivered(server, hook["id"], 2), what="n2 trashed delivered")
    moved = [r for r in receiver.received if r.path == "/moved"]
    assert [r.payload["type"] for r in moved] == ["note.trashed"]
    verify(hook["secret"], moved[0])

    status, paused = await admin(server, "PATCH", path, json={"enabled": False})
    assert status == 200, paused
    assert paused["disabled_reason"] == "disabled by an operator"
    assert (await call(server, "ann", "DELETE", f"{NOTES}/n1"))[0] == 200
    assert len(await deliveries(server, hook["id"])) == 2

    status, resumed = await admin(server, "PATCH", path, json={"enabled": True})
    assert status == 200, resumed
    assert resumed["disabled_at"] is None
    assert (await call(server, "ann", "POST", f"{NOTES}/n2/restore"))[0] == 200
    assert (await call(server, "ann", "DELETE", f"{NOTES}/n2"))[0] == 200
    await eventually(lambda: delivered(server, hook["id"], 3), what="n2 trashed again")
    assert [r.note for r in receiver.received if r.path == "/moved"] == ["n2", "n2"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "give at least one of url, events, workspace, enabled"),
        ({"enabled": "no"}, "enabled: true (enable it again) or false"),
        ({"enabled": 0}, "enabled: true"),
        ({"events": []}, "events: required"),
        ({"events": ["note.deleted"]}, "unknown event type 'note.deleted'"),
        ({"workspace": "bad id"}, "workspace:"),
        ({"url": "ftp://x.example/"}, "url: the url must be https://"),
        ({"url": "https://10.0.0.1/hook"}, "url:"),
        ({"secret": "whsec_AAAA"}, "unknown field(s): secret"),
    ],
)
async def test_a_bad_change_gets_a_precise_error_and_changes_nothing(
    start_server: StartServer, body: Any, message: str
) -> None:
    server = await start_server(hook_settings())
    hook = await register(server, "http://127.0.0.1:9/hook", ["note.created"])
    path = f"{HOOKS}/{hook['id']}"
    before = (await admin(server, "GET", path))[1]

    status, answer = await admin(server, "PATCH", path, json=body)

    assert status == 422, answer
    assert message in answer["error"]["message"]
    assert (await admin(server, "GET", path))[1] == before


async def test_changing_an_unknown_webhook_is_404(start_server: StartServer) -> None:
    server = await start_server(hook_settings())

    for hook_id in ("ep_nope", "Bad!Id"):
        status, _ = await admin(server, "PATCH", f"{HOOKS}/{hook_id}", json={"enabled": False})
        assert status == 404


# -- a test event ------------------------------------------------------------------------------


async def test_a_test_event_reaches_the_endpoint_signed_whatever_it_wants(
    start_server: StartServer, receiver: Receiver
) -> None:
    """POST …/test sends one signed `webhook.test` to the endpoint (which wants other
    events), listed with its deliveries; while it is disabled the answer is 409 and nothing
    is written; an unknown id is 404."""
    server = await start_server(hook_settings())
    hook = await register(server, receiver.url(), ["note.purged"])
    path = f"{HOOKS}/{hook['id']}"

    status, delivery = await admin(server, "POST", f"{path}/test")

    assert status == 202, delivery
    assert (delivery["type"], delivery["payload"]["data"]) == (
        "webhook.test",
        {"webhook": hook["id"], "url": receiver.url()},
    )
    await eventually(lambda: delivered(server, hook["id"], 1), what="the test delivered")
    [got] = receiver.received
    assert verify(hook["secret"], got)["type"] == "webhook.test"
    assert got.headers["webhook-id"] == delivery["message_id"]

    assert (await admin(server, "PATCH", path, json={"enabled": False}))[0] == 200
    status, refused = await admin(server, "POST", f"{path}/test")
    assert status == 409, refused
    assert refused["error"]["code"] == "webhook_disabled"
    assert "enable it first" in refused["error"]["message"]
    assert len(await deliveries(server, hook["id"])) == 1
    assert (await admin(server, "POST", f"{HOOKS}/ep_nope/test"))[0] == 404


# -- rotating a secret -------------------------------------------------------------------------


async def test_a_rotated_secret_keeps_signing_beside_the_new_one_for_its_overlap(
    start_server: StartServer, receiver: Receiver
) -> None:
    """A rotation answers the new secret once; what is sent during the overlap is accepted by
    a receiver holding either secret, so receivers switch without refusing anything; after a
    rotation without overlap only the newest secret verifies. Listings never show a secret."""
    server = await start_server(hook_settings())
    hook = await register(server, receiver.url(), ["note.created"])
    rotate = f"{HOOKS}/{hook['id']}/secret/rotate"

    # No body: the default overlap, a day.
    status, rotated = await admin(server, "POST", rotate)
    assert status == 200, rotated
    assert rotated["secret"].startswith("whsec_")
    assert rotated["secret"] != hook["secret"]
    until = datetime.fromisoformat(rotated["previous_secret_until"])
    assert timedelta(hours=23) < until - datetime.now(UTC) <= timedelta(days=1)
    status, shown = await admin(server, "GET", f"{HOOKS}/{hook['id']}")
    assert status == 200
    assert "secret" not in shown
    assert shown == {k: v for k, v in rotated.items() if k != "secret"}
    listed = (await admin(server, "GET", HOOKS))[1]["webhooks"]
    assert all("secret" not in each for each in listed)

    await create_note(server, "n1")
    await eventually(lambda: len(receiver.received) == 1, what="the first delivery")
    [during] = receiver.received
    assert verifies(rotated["secret"], during)
    assert verifies(hook["secret"], during)
    assert not verifies(new_secret(), during)

    status, again = await admin(server, "POST", rotate, json={"previous_valid_s": 0})
    assert status == 200, again
    assert again["previous_secret_until"] is None
    await create_note(server, "n2")
    await eventually(lambda: len(receiver.received) == 2, what="the second delivery")
    after = receiver.received[1]
    assert verifies(again["secret"], after)
    assert not verifies(rotated["secret"], after)
    assert not verifies(hook["secret"], after)
    assert len(after.headers["webhook-signature"].split(" ")) == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"previous_valid_s": -1}, "previous_valid_s: whole seconds from 0 to 604800"),
        ({"previous_valid_s": 604801}, "previous_valid_s: whole seconds"),
        ({"previous_valid_s": "60"}, "previous_valid_s: whole seconds"),
        ({"previous_valid_s": True}, "previous_valid_s: whole seconds"),
        ({"previous_valid_s": 1.5}, "previous_valid_s: whole seconds"),
        ({"previous_valid_s": None}, "previous_valid_s: whole seconds"),
        ({"secret": "whsec_AAAA"}, "unknown field(s): secret"),
        ([], "the body must be a JSON object"),
    ],
)
async def test_a_bad_rotation_gets_a_precise_error_and_changes_nothing(
    start_server: StartServer, receiver: Receiver, body: Any, message: str
) -> None:
    """Each bad rotation is refused with 422 naming the field; the endpoint keeps its secret
    (what it sends still verifies with it, and with nothing else)."""
    server = await start_server(hook_settings())
    hook = await register(server, receiver.url(), ["note.created"])

    status, answer = await admin(server, "POST", f"{HOOKS}/{hook['id']}/secret/rotate", json=body)

    assert status == 422, answer
    assert message in answer["error"]["message"]
    assert (await admin(server, "GET", f"{HOOKS}/{hook['id']}"))[1]["previous_secret_until"] is None
    await create_note(server, "n1")
    await eventually(lambda: len(receiver.received) == 1, what="a delivery")
    assert verifies(hook["secret"], receiver.received[0])
    assert len(receiver.received[0].headers["webhook-signature"].split(" ")) == 1


async def test_rotating_an_unknown_webhook_or_with_a_body_not_json_is_refused(
    start_server: StartServer,
) -> None:
    """An unknown or malformed id is 404; a body not declared JSON 415, one that does not
    parse 400."""
    server = await start_server(hook_settings())

    assert (await admin(server, "POST", f"{HOOKS}/ep_nope/secret/rotate"))[0] == 404
    assert (await admin(server, "POST", f"{HOOKS}/Bad!Id/secret/rotate"))[0] == 404
    hook = await register(server, "http://127.0.0.1:9/hook", ["note.created"])
    rotate = f"{HOOKS}/{hook['id']}/secret/rotate"
    status, _ = await admin(server, "POST", rotate, data=b"previous_valid_s=5")
    assert status == 415
    status, _ = await admin(
        server, "POST", rotate, data=b"{", headers={"Content-Type": "application/json"}
    )
    assert status == 400
    assert (await admin(server, "GET", f"{HOOKS}/{hook['id']}"))[1]["previous_secret_until"] is None


# -- secrets sealed in the database ------------------------------------------------------------

KEY_A = "key-a-" + "a" * 40
KEY_B = "key-b-" + "b" * 40


def keyed(*keys: str) -> Settings:
    return hook_settings(webhook_secret_keys=tuple(Secret(key) for key in keys))


async def stored_secrets(server: RunningServer, hook_id: str) -> tuple[str, str | None]:
    endpoint = await server.app[DATABASE].get_endpoint(hook_id)
    assert endpoint is not None
    return endpoint.secret, endpoint.previous_secret


async def test_with_keys_secrets_are_stored_sealed_and_what_is_sent_still_verifies(
    start_server: StartServer, receiver: Receiver
) -> None:
    """With COLLAB_WEBHOOK_SECRET_KEYS the database holds no secret the API showed, neither
    the registered one nor the rotated ones; what is sent verifies with the secrets shown."""
    server = await start_server(keyed(KEY_A))
    hook = await register(server, receiver.url(), ["note.created"])
    status, rotated = await admin(server, "POST", f"{HOOKS}/{hook['id']}/secret/rotate")
    assert status == 200, rotated

    secret, previous = await stored_secrets(server, hook["id"])
    assert previous is not None
    for stored in (secret, previous):
        assert stored.startswith("sealed:v1:")
        assert hook["secret"] not in stored
        assert rotated["secret"] not in stored
    await create_note(server, "n1")
    await eventually(lambda: len(receiver.received) == 1, what="a delivery")
    assert verifies(hook["secret"], receiver.received[0])
    assert verifies(rotated["secret"], receiver.received[0])


async def test_keys_are_taken_up_and_replaced_at_start_and_unreadable_secrets_stop_it(
    start_server: StartServer, receiver: Receiver
) -> None:
    """Secrets stored as shown are sealed when an instance starts with keys; listing a new
    key first seals them again with it; an instance whose keys cannot read a secret does not
    start, naming the webhook and what to do. Deliveries verify with the secret shown
    throughout."""
    plain = await start_server(hook_settings())
    hook = await register(plain, receiver.url(), ["note.created"])
    assert await stored_secrets(plain, hook["id"]) == (hook["secret"], None)

    await start_server(keyed(KEY_A))
    sealed_with_a, _ = await stored_secrets(plain, hook["id"])
    assert sealed_with_a.startswith("sealed:v1:")
    moved = await start_server(keyed(KEY_B, KEY_A))
    sealed_with_b, _ = await stored_secrets(plain, hook["id"])
    assert sealed_with_b.startswith("sealed:v1:")
    assert sealed_with_b.split(":")[2] != sealed_with_a.split(":")[2]

    with pytest.raises(ConfigError) as refused:
        await start_server(keyed(KEY_A))
    assert refused.value.problems == [
        f"COLLAB_WEBHOOK_SECRET_KEYS: webhook {hook['id']}: its secret is sealed with a key "
        f"that is not in COLLAB_WEBHOOK_SECRET_KEYS (key id {sealed_with_b.split(':')[2]!r}); "
        "add that key"
    ]
    with pytest.raises(ConfigError, match="COLLAB_WEBHOOK_SECRET_KEYS is not set"):
        await start_server(hook_settings())

    await create_note(moved, "n1")
    await eventually(lambda: delivered(moved, hook["id"], 1), what="delivered")
    assert verifies(hook["secret"], receiver.of_type("note.created")[-1])


async def test_an_instance_without_the_keys_leaves_the_delivery_to_one_that_has_them(
    start_server: StartServer, receiver: Receiver
) -> None:
    """During a rollout an instance started before the keys were set meets a sealed secret:
    it sends nothing unsigned and records no attempt (the endpoint is not charged with a
    failure), counting `not_signed`; once it is replaced by an instance with the keys, that
    one delivers it."""
    plain = await start_server(hook_settings())
    hook = await register(plain, receiver.url(), ["note.created"])
    keyed_instance = await start_server(keyed(KEY_A))
    await keyed_instance.close()

    await create_note(plain, "n1")
    await eventually(
        lambda: plain.app[WEBHOOKS].outcomes["not_signed"] >= 1, what="an attempt not made"
    )
    [waiting] = await deliveries(plain, hook["id"])
    assert (waiting["state"], waiting["attempt_count"], waiting["last_error"]) == (
        "pending",
        0,
        None,
    )
    assert (await admin(plain, "GET", f"{HOOKS}/{hook['id']}"))[1]["failing_since"] is None
    assert receiver.received == []

    await plain.close()
    replaced = await start_server(keyed(KEY_A))
    await eventually(lambda: delivered(replaced, hook["id"], 1), what="delivered by the keyed one")
    assert verifies(hook["secret"], receiver.received[0])
    [sent] = await deliveries(replaced, hook["id"])
    assert sent["attempt_count"] == 1


class UnfinishedAnswers:
    """Answers every request `200 OK` with a Content-Length its body never reaches: "stall"
    keeps the connection open, "short" closes it after two bytes."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.port = 0
        self._server: asyncio.Server | None = None
        self._release = asyncio.Event()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._answer, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        self._release.set()
        assert self._server is not None
        self._server.close()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nok")
            await writer.drain()
            if self.mode == "stall":
                await self._release.wait()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture(params=["stall", "short"])
async def unfinished_answers(request: pytest.FixtureRequest) -> AsyncIterator[UnfinishedAnswers]:
    answers = UnfinishedAnswers(request.param)
    await answers.start()
    yield answers
    await answers.close()


async def test_a_2xx_answer_delivers_whatever_its_body_does_next(
    start_server: StartServer, unfinished_answers: UnfinishedAnswers
) -> None:
    """The status delivers; the body of a 2xx answer is not read, so one that stalls or is
    cut short does not turn the delivery into a failed attempt sent again."""
    server = await start_server(hook_settings())
    url = f"http://127.0.0.1:{unfinished_answers.port}/hook"
    status, hook = await admin(server, "POST", HOOKS, json={"url": url, "events": ["note.created"]})
    assert status == 201, hook
    status, delivery = await admin(server, "POST", f"{HOOKS}/{hook['id']}/test")
    assert status == 202, delivery

    async def attempted() -> bool:
        status, body = await admin(server, "GET", f"{HOOKS}/{hook['id']}/deliveries")
        assert status == 200, body
        return bool(body["deliveries"][0]["attempt_count"] >= 1)

    await eventually(attempted, what="one attempt recorded")
    status, body = await admin(server, "GET", f"{HOOKS}/{hook['id']}/deliveries")
    [shown] = body["deliveries"]
    assert shown["state"] == "delivered", shown["attempts"]
    assert [attempt["status"] for attempt in shown["attempts"]] == [200]


async def test_a_receiver_that_hangs_holds_a_few_attempts_and_the_others_go_out(
    start_server: StartServer, receiver: Receiver
) -> None:
    """40 events to an endpoint that never answers and to one that does: the first holds
    PER_ENDPOINT attempts (until they time out), and the second's events all go out meanwhile,
    not after the hanging ones (16 slots, all of them taken before)."""
    server = await start_server(hook_settings(webhook_timeout_s=600.0))
    receiver.stuck_path = "/stuck"
    await register(server, receiver.url(path="/stuck"), events=["notification.created"])
    await register(server, receiver.url(path="/fine"), events=["notification.created"])
    for number in range(40):
        status, body = await call(
            server,
            "ann",
            "POST",
            "/api/v1/notifications",
            json={"workspace": "w1", "recipients": ["ann"], "title": f"n{number}"},
        )
        assert status == 201, body

    def at(path: str) -> int:
        return sum(1 for r in receiver.received if r.path == path)

    await eventually(lambda: at("/fine") == 40, what="the answering endpoint's 40 events")
    # The count only grows: equal to the bound after all that, it never went past it.
    await eventually(lambda: at("/stuck") == PER_ENDPOINT, what="the hanging attempts")
