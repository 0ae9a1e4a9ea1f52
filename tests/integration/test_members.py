"""The member directory end to end: recorded from every surface, managed by owners over
REST, removals and role changes applied at once on every instance (each test runs on the
embedded and the scaled backend)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from pycrdt import Text, XmlElement, XmlFragment, XmlText

from collab.auth.tokens import Role
from collab.protocol.close_codes import CloseCode
from collab.web.keys import CATALOG, DIRECTORY
from tests.conftest import RunningServer, StartServer, make_settings, token_for
from tests.support.live import LiveClient
from tests.support.waiting import eventually, scaled
from tests.support.yclient import YClient, connect_http_error

MEMBERS = "/api/v1/workspaces/w1/members"


@pytest.fixture
async def server(start_server: StartServer) -> RunningServer:
    return await start_server(make_settings())


async def call(
    server: RunningServer,
    method: str,
    path: str,
    *,
    sub: str = "owner",
    role: str = "owner",
    name: str | None = None,
    json: Any = None,
    params: Mapping[str, str] | None = None,
) -> tuple[int, Any]:
    token = token_for(server.settings, sub, {"w1": role}, name=name)
    async with aiohttp.ClientSession() as http:
        response = await http.request(
            method,
            f"{server.http}{path}",
            headers={"Authorization": f"Bearer {token}"},
            json=json,
            params=params,
        )
        body = await response.json() if response.content_type == "application/json" else None
        return response.status, body


async def every_page(server: RunningServer, *, limit: int) -> list[str]:
    """The user ids of every page of the listing, `limit` at a time, following `next`."""
    seen: list[str] = []
    params = {"limit": str(limit)}
    while True:
        status, body = await call(server, "GET", MEMBERS, params=params)
        assert status == 200, body
        seen += [member["user"] for member in body["members"]]
        if body["next"] is None:
            return seen
        params = {"limit": str(limit), "cursor": body["next"]}


async def members(server: RunningServer, **params: str) -> dict[str, dict[str, Any]]:
    status, body = await call(server, "GET", MEMBERS, params=params)
    assert status == 200, body
    return {member["user"]: member for member in body["members"]}


async def test_every_surface_records_its_user_with_name_role_and_last_seen(
    server: RunningServer,
) -> None:
    assert (await call(server, "GET", "/api/v1/notifications", sub="rest", name="Rita"))[0] == 200
    assert (await call(server, "GET", "/api/v1/workspaces/w1/presence", sub="pres", role="viewer"))[
        0
    ] == 200
    live_token = token_for(server.settings, "live", {"w1": "editor"}, name="Liv")
    async with LiveClient.connect(server.ws, live_token) as live:
        await live.wait_event("welcome")
        async with YClient.connect(server.doc_url("w1/n1", sub="doc")) as client:
            await client.wait_synced()

            async def all_recorded() -> bool:
                return {"rest", "pres", "live", "doc"} <= set(await members(server))

            await eventually(all_recorded, what="every surface's user recorded")
    listed = await members(server)
    assert (listed["rest"]["name"], listed["rest"]["role"]) == ("Rita", "owner")
    assert listed["pres"]["role"] == "viewer"
    assert (listed["live"]["name"], listed["live"]["role"]) == ("Liv", "editor")
    assert all(listed[user]["last_seen_at"] for user in ("rest", "pres", "live", "doc"))
    # Listing is for any member, and only owners see emails.
    status, body = await call(server, "GET", MEMBERS, sub="pres", role="viewer")
    assert status == 200
    assert all("email" not in member for member in body["members"])
    assert all("email" in member for member in listed.values())


async def test_a_provisioned_member_who_never_signed_in_is_listed_and_mentioned(
    server: RunningServer,
) -> None:
    body = {"role": "editor", "name": "Grace Hopper", "email": "grace@example.com"}
    status, created = await call(server, "PUT", f"{MEMBERS}/grace", json=body)
    assert status == 201, created
    assert created == {
        "user": "grace",
        "name": "Grace Hopper",
        "role": "editor",
        "last_seen_at": None,
        "email": "grace@example.com",
        "removed_at": None,
    }
    status, changed = await call(server, "PUT", f"{MEMBERS}/grace", json={"role": "viewer"})
    assert status == 200
    assert (changed["role"], changed["name"], changed["email"]) == ("viewer", None, None)
    assert "grace" in await members(server, q="gr")
    async with YClient.connect(server.doc_url("w1/n1", sub="writer")) as writer:
        await writer.wait_synced()
        body_root = writer.doc.get("body", type=XmlFragment)
        body_root.children.append(XmlElement("paragraph", {}, [XmlText("ask @grace and @nobody")]))
        await writer.flush()

        async def grace_notified() -> bool:
            status, listed = await call(server, "GET", "/api/v1/notifications", sub="grace")
            return status == 200 and [n["kind"] for n in listed["notifications"]] == ["mention"]

        await eventually(grace_notified, what="the provisioned member notified")


async def test_a_user_seen_only_over_rest_is_mentioned(server: RunningServer) -> None:
    assert (await call(server, "GET", "/api/v1/notifications", sub="quiet", role="viewer"))[
        0
    ] == 200
    async with YClient.connect(server.doc_url("w1/n2", sub="writer")) as writer:
        await writer.wait_synced()
        body_root = writer.doc.get("body", type=XmlFragment)
        body_root.children.append(XmlElement("paragraph", {}, [XmlText("thanks @quiet")]))
        await writer.flush()

        async def notified() -> bool:
            _, listed = await call(server, "GET", "/api/v1/notifications", sub="quiet")
            return [n["payload"]["note"] for n in listed["notifications"]] == ["n2"]

        await eventually(notified, what="the user seen over REST mentioned")


async def test_autocomplete_by_prefix_of_id_or_name_with_pages(server: RunningServer) -> None:
    for user_id, name in (
        ("anders", "Anders"),
        ("u-ann", "Ann Lee"),
        ("u-bob", "Bob"),
        ("u-cat", "Élodie Annan"),
        ("zed", None),
    ):
        body = {"role": "editor", "name": name}
        assert (await call(server, "PUT", f"{MEMBERS}/{user_id}", json=body))[0] == 201
    assert set(await members(server, q="an")) == {"anders", "u-ann"}
    assert set(await members(server, q="ÉLO")) == {"u-cat"}
    assert set(await members(server, q="u-")) == {"u-ann", "u-bob", "u-cat"}
    assert await members(server, q="%") == {}
    seen = await every_page(server, limit=2)
    assert seen == sorted(seen)
    assert {"anders", "u-ann", "u-bob", "u-cat", "zed", "owner"} <= set(seen)
    status, body = await call(server, "GET", MEMBERS, params={"limit": "2"})
    cursor = body["next"]
    for params, name in (
        ({"cursor": cursor, "q": "a"}, "cursor"),
        ({"cursor": cursor[:-3] + "xyz"}, "cursor"),
        ({"cursor": "!!"}, "cursor"),
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "\u00b2"}, "limit"),  # a digit to str.isdigit, not to int()
        # A cursor is plain base64 of [workspace, q, after]: one made by hand holding a NUL
        # reached PostgreSQL (503).
        ({"cursor": base64.urlsafe_b64encode(b'["w1","","a\\u0000"]').decode()}, "cursor"),
        ({"q": "x" * 101}, "q"),
        ({"q": "a\x00"}, "q"),
    ):
        status, error = await call(server, "GET", MEMBERS, params=params)
        assert status == 400, (params, error)
        assert f"'{name}'" in error["error"]["message"], (params, error)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "'role'"),
        ({"role": "admin"}, "'role'"),
        ({"role": "editor", "name": ""}, "'name'"),
        ({"role": "editor", "name": "x" * 201}, "'name'"),
        ({"role": "editor", "name": "a\nb"}, "'name'"),
        ({"role": "editor", "email": "not an address"}, "'email'"),
        # Addresses the digests would refuse: kept, they stopped the member's digests.
        ({"role": "editor", "email": "bob@example.com>"}, "'email'"),
        (
            {"role": "editor", "email": "=?utf-8?q?a=3E=2C_eve=40corp.example?=@x.example"},
            "'email'",
        ),
        ({"role": "editor", "email": 5}, "'email'"),
        ({"role": "editor", "extra": 1}, "unknown field"),
    ],
)
async def test_each_bad_body_is_a_422_naming_the_field(
    server: RunningServer, body: dict[str, Any], fragment: str
) -> None:
    status, error = await call(server, "PUT", f"{MEMBERS}/u9", json=body)
    assert status == 422, error
    assert fragment in error["error"]["message"]


async def test_only_owners_manage_and_never_themselves(server: RunningServer) -> None:
    editor_put = await call(
        server, "PUT", f"{MEMBERS}/u9", sub="ed", role="editor", json={"role": "viewer"}
    )
    assert editor_put[0] == 403
    assert (await call(server, "DELETE", f"{MEMBERS}/owner", sub="ed", role="editor"))[0] == 403
    status, error = await call(server, "DELETE", f"{MEMBERS}/owner")
    assert status == 422
    assert "themselves" in error["error"]["message"]
    status, error = await call(server, "PUT", f"{MEMBERS}/owner", json={"role": "editor"})
    assert status == 422
    assert (await call(server, "DELETE", f"{MEMBERS}/stranger"))[0] == 404
    assert (await call(server, "GET", f"{MEMBERS}/stranger"))[0] == 404
    async with aiohttp.ClientSession() as http:
        token = token_for(server.settings, "owner", {"w1": "owner"})
        response = await http.put(
            f"{server.http}{MEMBERS}/u9",
            data=b"{",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        assert response.status == 400


async def test_removal_closes_sockets_on_every_instance_and_refuses_until_put_back(
    start_server: StartServer,
) -> None:
    a = await start_server(make_settings())
    b = await start_server(make_settings())
    removed = token_for(b.settings, "u2", {"w1": "editor", "w2": "editor"})
    live_token = token_for(b.settings, "u2", {"w1": "editor"})
    async with (
        YClient.connect(b.doc_url("w1/n1", token=removed)) as doc,
        YClient.connect(b.doc_url("w2/n1", token=removed)) as elsewhere,
        LiveClient.connect(b.ws, live_token) as live,
    ):
        await doc.wait_synced()
        await elsewhere.wait_synced()
        await live.wait_event("welcome")
        status, body = await call(a, "DELETE", f"{MEMBERS}/u2")
        assert status == 200, body
        assert body["removed_at"] is not None
        assert await doc.wait_closed() == CloseCode.FORBIDDEN
        assert await live.wait_closed() == CloseCode.FORBIDDEN
        # Only that workspace: the same user's connection to another stays.
        assert not elsewhere.closed
    for server in (a, b):
        status, error = await connect_http_error(server.doc_url("w1/n1", token=removed))
        assert status == 403
        assert b"removed from workspace" in error
        assert (await call(server, "GET", "/api/v1/docs/w1/n1", sub="u2", role="editor"))[0] == 403
    assert "u2" not in await members(a)
    # Being seen again does not bring them back; an owner does.
    assert (await call(a, "GET", "/api/v1/notifications", sub="u2", role="editor"))[0] == 200
    assert "u2" not in await members(a)
    status, body = await call(a, "GET", f"{MEMBERS}/u2")
    assert (status, body["removed_at"] is not None) == (200, True)
    assert (await call(a, "GET", f"{MEMBERS}/u2", sub="ed", role="editor"))[0] == 404
    assert (await call(b, "PUT", f"{MEMBERS}/u2", json={"role": "editor"}))[0] == 201

    async def back_on_a() -> bool:
        status, _ = await call(a, "GET", "/api/v1/docs/w1/n1", sub="u2", role="editor")
        return status == 200

    await eventually(back_on_a, what="the member put back on B admitted on A")
    async with YClient.connect(a.doc_url("w1/n1", token=removed)) as again:
        await again.wait_synced()


@asynccontextmanager
async def _two_editors_on(server: RunningServer) -> AsyncIterator[tuple[YClient, YClient]]:
    """u2 (whom the tests cap) and u3, synced in w1/n1 on `server`."""
    async with (
        YClient.connect(server.doc_url("w1/n1", sub="u2")) as capped,
        YClient.connect(server.doc_url("w1/n1", sub="u3")) as other,
    ):
        await capped.wait_synced()
        await other.wait_synced()
        yield capped, other


async def _check_an_edit_of_the_capped_is_dropped(
    reader_on: RunningServer, capped: YClient, other: YClient
) -> None:
    """`capped` edits, then `other`; a client joining on `reader_on` once `capped` has seen
    `other`'s edit gets that edit and nothing of `capped`'s; `capped` stays open."""
    capped.doc.get("t", type=Text).insert(0, "ignored")
    await capped.flush()
    other.doc.get("m", type=Text).insert(0, "marker")
    await capped.wait_until(lambda: str(capped.doc.get("m", type=Text)) == "marker")
    async with YClient.connect(reader_on.doc_url("w1/n1", sub="u4")) as late:
        await late.wait_until(lambda: str(late.doc.get("m", type=Text)) == "marker")
        assert str(late.doc.get("t", type=Text)) == ""
    assert not capped.closed


async def test_a_cap_stops_a_sockets_writes_before_its_notes_access_is_read(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a role change an instance reads the note's access from the store; while that
    read is held, the capped socket's edits are already dropped."""
    a = await start_server(make_settings())
    b = await start_server(make_settings())
    async with _two_editors_on(b) as (capped, other):
        catalog = b.app[CATALOG]
        read_started, read_held = asyncio.Event(), asyncio.Event()
        read_access = catalog.role_on

        async def held(*args: Any, **kwargs: Any) -> Any:
            read_started.set()
            await read_held.wait()
            return await read_access(*args, **kwargs)

        monkeypatch.setattr(catalog, "role_on", held)
        assert (await call(a, "PUT", f"{MEMBERS}/u2", json={"role": "viewer"}))[0] == 200
        # B's directory has the cap and its re-check reads the note's access: held there.
        await asyncio.wait_for(read_started.wait(), scaled(10))
        await _check_an_edit_of_the_capped_is_dropped(a, capped, other)
        read_held.set()


async def test_an_assigned_role_caps_the_token_at_once_on_open_sockets(
    start_server: StartServer,
) -> None:
    a = await start_server(make_settings())
    b = await start_server(make_settings())
    async with _two_editors_on(b) as (capped, other):
        status, body = await call(a, "PUT", f"{MEMBERS}/u2", json={"role": "viewer"})
        assert (status, body["role"]) == (200, "viewer")  # seen when it connected

        async def capped_on_b() -> bool:
            status, _ = await call(b, "POST", "/api/v1/docs/w1/n1/updates", sub="u2")
            return status == 403

        await eventually(capped_on_b, what="the cap applied on B")
        await _check_an_edit_of_the_capped_is_dropped(a, capped, other)
        # Lifted: writes count again.
        assert (await call(a, "PUT", f"{MEMBERS}/u2", json={"role": "owner"}))[0] == 200

        async def lifted() -> bool:
            capped.doc.get("t", type=Text).insert(0, "x")
            await capped.flush()
            async with YClient.connect(a.doc_url("w1/n1", sub="u5")) as reader:
                await reader.wait_until(lambda: str(reader.doc.get("m", type=Text)) == "marker")
                return str(reader.doc.get("t", type=Text)) != ""

        await eventually(lifted, what="the lifted cap applied on B")


async def test_a_page_of_the_largest_size_says_where_the_next_starts(
    server: RunningServer,
) -> None:
    """206 members listed 200 at a time: the first page has a cursor, the second the rest."""
    directory = server.app[DIRECTORY]
    for index in range(205):
        await directory.put("w1", f"user-{index:04d}", role=Role.EDITOR, name=None, email=None)
    seen = await every_page(server, limit=200)
    assert len(seen) == len(set(seen)) == 206  # and the owner asking
