"""Per-note access: its REST endpoint, and its enforcement on every surface that serves a note
(the document WebSocket, REST snapshots and updates, the catalog's entry, listing and search,
live catalog events, presence, mention notifications), changes applied at once on two
instances. Each test runs on the embedded and the scaled backend."""

from __future__ import annotations

import contextlib
from typing import Any

import aiohttp
import pytest
from pycrdt import Doc, Text, XmlElement, XmlFragment, XmlText

from collab.protocol.close_codes import CloseCode
from collab.protocol.messages import encode_token_refresh
from tests.conftest import RunningServer, StartServer, make_settings, token_for
from tests.support.live import LiveClient
from tests.support.rest import rest_call
from tests.support.waiting import eventually
from tests.support.yclient import YClient, connect_http_error

NOTES = "/api/v1/workspaces/w1/notes"
# Every user's workspace role; `vi` is listed as a viewer, `ed` as an editor.
ROLES = {"creator": "editor", "ed": "editor", "vi": "editor", "other": "editor", "boss": "owner"}
READERS = {"creator", "ed", "vi"}


@pytest.fixture
async def server(start_server: StartServer) -> RunningServer:
    return await start_server(make_settings(catalog_interval_ms=20))


def token(server: RunningServer, user: str) -> str:
    return token_for(server.settings, user, {"w1": ROLES[user]})


async def call(
    server: RunningServer, user: str, method: str, path: str, **kw: Any
) -> tuple[int, Any]:
    status, body = await rest_call(server.http, token(server, user), method, path, **kw)
    return status, body if not isinstance(body, bytes) else None


async def make_private(server: RunningServer, note_id: str, title: str) -> None:
    status, body = await call(
        server, "creator", "POST", NOTES, json={"id": note_id, "title": title, "text": "plans"}
    )
    assert status == 201, body
    status, body = await call(
        server,
        "creator",
        "PUT",
        f"{NOTES}/{note_id}/access",
        json={"visibility": "private", "users": {"ed": "editor", "vi": "viewer"}},
    )
    assert status == 200, body


def an_update(text: str) -> bytes:
    doc: Doc[Any] = Doc()
    doc.get("scratch", type=Text).insert(0, text)
    return doc.get_update()


async def assert_edit_not_applied(server: RunningServer, writer: YClient, other: YClient) -> None:
    """An edit `writer` makes now never reaches the note `w1/secret`: `other`'s marker, sent
    after it, comes back to the writer, and a fresh reader sees the marker without the edit."""
    writer.doc.get("t", type=Text).insert(0, "ignored")
    await writer.flush()
    other.doc.get("m", type=Text).insert(0, "marker")
    await writer.wait_until(lambda: str(writer.doc.get("m", type=Text)) == "marker")
    async with YClient.connect(server.doc_url("w1/secret", token=token(server, "creator"))) as late:
        await late.wait_until(lambda: str(late.doc.get("m", type=Text)) == "marker")
        assert str(late.doc.get("t", type=Text)) == ""


async def listed(server: RunningServer, user: str, **params: str) -> set[str]:
    status, body = await call(server, user, "GET", NOTES, params=params)
    assert status == 200, body
    return {note["id"] for note in body["notes"]}


async def test_a_private_note_is_served_to_its_readers_only(server: RunningServer) -> None:
    await make_private(server, "secret", "Quarterly secret plan")
    await call(server, "creator", "POST", NOTES, json={"id": "open", "title": "Quarterly open"})
    for user in ROLES:
        readable = user in READERS
        path = "/api/v1/docs/w1/secret"
        status, body = await call(server, user, "GET", path)
        assert status == (200 if readable else 404), (user, body)
        if not readable:
            # The catalog answers as for an id never used.
            assert body["error"]["code"] == "not_found"
            _, never = await call(server, user, "GET", f"{NOTES}/never-used")
            _, hidden = await call(server, user, "GET", f"{NOTES}/secret")
            assert hidden["error"]["code"] == never["error"]["code"] == "not_found"
        status, _ = await call(server, user, "GET", f"{NOTES}/secret")
        assert status == (200 if readable else 404), user
        status, _ = await call(server, user, "POST", f"{path}/updates", data=an_update(user))
        expected = {"creator": 200, "ed": 200, "vi": 403}.get(user, 404)
        assert status == expected, user
        assert ("secret" in await listed(server, user)) is readable, user
        assert ("secret" in await listed(server, user, q="quarterly")) is readable, user
        assert ("secret" in await listed(server, user, sort="title")) is readable, user
        assert "open" in await listed(server, user, q="quarterly"), user
        # Trash, restore and purge of a note one cannot read: not found either.
        if not readable:
            assert (await call(server, user, "DELETE", f"{NOTES}/secret"))[0] == 404
            assert (await call(server, user, "POST", f"{NOTES}/secret/restore"))[0] == 404


async def test_the_document_socket_refuses_or_caps_by_the_notes_access(
    server: RunningServer,
) -> None:
    await make_private(server, "secret", "Secret")
    for user in ("other", "boss"):
        status, body = await connect_http_error(
            server.doc_url("w1/secret", token=token(server, user))
        )
        assert status == 404, user
        assert b"no note 'secret'" in body
    async with (
        YClient.connect(server.doc_url("w1/secret", token=token(server, "vi"))) as viewer,
        YClient.connect(server.doc_url("w1/secret", token=token(server, "ed"))) as editor,
    ):
        await viewer.wait_synced()
        await editor.wait_synced()
        await assert_edit_not_applied(server, viewer, editor)


async def test_a_mention_notifies_only_those_who_can_read_the_note(
    server: RunningServer,
) -> None:
    for user in ROLES:  # every user a member of the directory
        assert (await call(server, user, "GET", "/api/v1/notifications"))[0] == 200
    await make_private(server, "secret", "Secret")
    async with YClient.connect(
        server.doc_url("w1/secret", token=token(server, "creator"))
    ) as writer:
        await writer.wait_synced()
        body = writer.doc.get("body", type=XmlFragment)
        body.children.append(XmlElement("paragraph", {}, [XmlText("ask @ed and @other")]))
        await writer.flush()

        async def ed_notified() -> bool:
            _, listed_ = await call(server, "ed", "GET", "/api/v1/notifications")
            return [n["payload"]["note"] for n in listed_["notifications"]] == ["secret"]

        await eventually(ed_notified, what="the listed editor notified of the mention")
    _, others = await call(server, "other", "GET", "/api/v1/notifications")
    assert others["notifications"] == []


async def test_live_catalog_events_of_a_private_note_reach_its_readers_only(
    start_server: StartServer,
) -> None:
    """On every instance: the note's events go to its readers' live connections only, and a
    workspace note's events (sent after) to everyone, as the marker that the rest was not."""
    a = await start_server(make_settings(catalog_interval_ms=20))
    b = await start_server(make_settings(catalog_interval_ms=20))
    await make_private(a, "secret", "Secret")
    async with (
        LiveClient.connect(b.ws, token(b, "ed")) as reader,
        LiveClient.connect(b.ws, token(b, "other")) as stranger,
    ):
        for client in (reader, stranger):
            await client.send({"type": "subscribe", "workspace": "w1"})
            await client.wait_event("presence.snapshot")
        async with YClient.connect(a.doc_url("w1/secret", token=token(a, "creator"))) as writer:
            await writer.wait_synced()
            body = writer.doc.get("body", type=XmlFragment)
            body.children.append(XmlElement("paragraph", {}, [XmlText("new words")]))
            await writer.flush()
            updated = await reader.wait_event("note.updated", lambda e: e["note"]["id"] == "secret")
            assert "readers" not in updated
            assert updated["note"]["visibility"] == "private"
        assert (await call(a, "creator", "DELETE", f"{NOTES}/secret"))[0] == 200
        await reader.wait_event("note.trashed", lambda e: e["note"]["id"] == "secret")
        assert (await call(a, "creator", "POST", f"{NOTES}/secret/restore"))[0] == 200
        await reader.wait_event("note.restored", lambda e: e["note"]["id"] == "secret")
        assert (await call(a, "boss", "POST", NOTES, json={"id": "open", "title": "Open"}))[
            0
        ] == 201
        for client in (reader, stranger):
            await client.wait_event("note.created", lambda e: e["note"]["id"] == "open")
        # Presence: the creator on both notes shows on the workspace note only.
        async with (
            YClient.connect(a.doc_url("w1/secret", token=token(a, "creator"))) as on_secret,
            YClient.connect(a.doc_url("w1/open", token=token(a, "creator"))) as on_open,
        ):
            await on_secret.wait_synced()
            await on_open.wait_synced()

            def creator_on_open(event: dict[str, Any]) -> bool:
                user = event.get("user")
                return (
                    isinstance(user, dict)
                    and user.get("user") == "creator"
                    and "open" in user.get("notes", [])
                )

            for client in (reader, stranger):
                await client.wait_for(
                    lambda c: any(creator_on_open(e) for e in c.events), what="presence"
                )
        for client in (reader, stranger):
            for event in client.events:
                if event["type"].startswith("presence."):
                    assert "secret" not in str(event), event
        status, _ = await call(a, "creator", "DELETE", f"{NOTES}/secret", params={"purge": "x"})
        assert status == 400
        # Purged by its creator? Only owners purge; the owner cannot read it: not found.
        assert (await call(a, "boss", "DELETE", f"{NOTES}/secret", params={"purge": "true"}))[
            0
        ] == 404
        secret_events = [
            event
            for event in stranger.events
            if "secret" in (event.get("id"), (event.get("note") or {}).get("id"))
        ]
        assert secret_events == [], [
            (e["type"], (e.get("note") or {}).get("visibility")) for e in secret_events
        ]


async def test_the_access_endpoint_reads_and_changes_with_every_rule(
    server: RunningServer,
) -> None:
    await make_private(server, "secret", "Secret")
    path = f"{NOTES}/secret/access"
    expected = {
        "visibility": "private",
        "users": {"ed": "editor", "vi": "viewer"},
        "created_by": "creator",
    }
    for user in ("creator", "ed", "vi", "boss"):  # readers, and the workspace's owner
        assert await call(server, user, "GET", path) == (200, expected), user
    assert (await call(server, "other", "GET", path))[0] == 404
    body = {"visibility": "private", "users": {}}
    assert (await call(server, "ed", "PUT", path, json=body))[0] == 403
    assert (await call(server, "other", "PUT", path, json=body))[0] == 404
    status, changed = await call(server, "boss", "PUT", path, json=body)
    assert (status, changed["users"]) == (200, {})
    for bad in (
        {},
        {"visibility": "secret"},
        {"visibility": "private", "users": []},
        {"visibility": "private", "users": {"u": "owner"}},
        {"visibility": "private", "users": {"": "viewer"}},
        {"visibility": "private", "users": {"a\nb": "viewer"}},
        {"visibility": "private", "users": {f"u{i}": "viewer" for i in range(101)}},
        {"visibility": "private", "extra": 1},
    ):
        status, error = await call(server, "creator", "PUT", path, json=bad)
        assert status == 422, (bad, error)
    assert (await call(server, "creator", "GET", f"{NOTES}/never/access"))[0] == 404
    await call(server, "creator", "POST", NOTES, json={"id": "gone"})
    assert (await call(server, "boss", "DELETE", f"{NOTES}/gone", params={"purge": "true"}))[
        0
    ] == 204
    assert (await call(server, "creator", "GET", f"{NOTES}/gone/access"))[0] == 410


async def test_an_access_change_applies_at_once_on_every_instance(
    start_server: StartServer,
) -> None:
    a = await start_server(make_settings(catalog_interval_ms=20))
    b = await start_server(make_settings(catalog_interval_ms=20))
    status, _ = await call(a, "creator", "POST", NOTES, json={"id": "n", "title": "Plan"})
    assert status == 201
    path = f"{NOTES}/n/access"
    async with (
        LiveClient.connect(b.ws, token(b, "other")) as other_live,
        LiveClient.connect(b.ws, token(b, "vi")) as vi_live,
        YClient.connect(b.doc_url("w1/n", token=token(b, "other"))) as other_doc,
        YClient.connect(b.doc_url("w1/n", token=token(b, "vi"))) as vi_doc,
        YClient.connect(b.doc_url("w1/n", token=token(b, "creator"))) as creator_doc,
    ):
        for client in (other_live, vi_live):
            await client.send({"type": "subscribe", "workspace": "w1"})
            await client.wait_event("presence.snapshot")
        for doc in (other_doc, vi_doc, creator_doc):
            await doc.wait_synced()
        body = {"visibility": "private", "users": {"vi": "viewer"}}
        assert (await call(a, "creator", "PUT", path, json=body))[0] == 200
        assert await other_doc.wait_closed() == CloseCode.FORBIDDEN
        hidden = await other_live.wait_event("note.hidden")
        assert hidden == {"type": "note.hidden", "workspace": "w1", "id": "n"}

        async def notes_in_presence(server: RunningServer) -> set[str]:
            _, body = await call(server, "other", "GET", "/api/v1/workspaces/w1/presence")
            return {note for user in body["users"] for note in user["notes"]}

        async def hidden_from_presence() -> bool:
            return "n" not in await notes_in_presence(a)

        await eventually(hidden_from_presence, what="the private note gone from presence")
        assert "n" not in await listed(b, "other")

        async def vi_cannot_write() -> bool:
            status, _ = await call(b, "vi", "POST", "/api/v1/docs/w1/n/updates", data=b"")
            return status == 403

        await eventually(vi_cannot_write, what="the listed viewer capped")
        vi_doc.doc.get("t", type=Text).insert(0, "ignored")
        await vi_doc.flush()
        creator_doc.doc.get("m", type=Text).insert(0, "marker")
        await creator_doc.flush()
        await vi_doc.wait_until(lambda: str(vi_doc.doc.get("m", type=Text)) == "marker")
        async with YClient.connect(a.doc_url("w1/n", token=token(a, "creator"))) as reader:
            await reader.wait_until(lambda: str(reader.doc.get("m", type=Text)) == "marker")
            assert str(reader.doc.get("t", type=Text)) == ""
        assert not vi_doc.closed
        # Back to the workspace: the note shows again for those who lost it.
        body = {"visibility": "workspace", "users": {}}
        assert (await call(a, "boss", "PUT", path, json=body))[0] == 200
        shown = await other_live.wait_event("note.shown")
        assert (shown["note"]["id"], shown["note"]["visibility"]) == ("n", "workspace")

        async def back_in_presence() -> bool:
            return "n" in await notes_in_presence(a)

        await eventually(back_in_presence, what="the note back in presence")
        assert "n" in await listed(b, "other")
        # The viewer never lost sight of it: no event either way.
        assert vi_live.of_type("note.hidden") == vi_live.of_type("note.shown") == []


async def test_the_purge_of_a_private_note_is_told_to_its_readers_only(
    server: RunningServer,
) -> None:
    status, _ = await call(server, "boss", "POST", NOTES, json={"id": "mine", "title": "Mine"})
    assert status == 201
    body = {"visibility": "private", "users": {"ed": "viewer"}}
    assert (await call(server, "boss", "PUT", f"{NOTES}/mine/access", json=body))[0] == 200
    async with (
        LiveClient.connect(server.ws, token(server, "ed")) as reader,
        LiveClient.connect(server.ws, token(server, "other")) as stranger,
    ):
        for client in (reader, stranger):
            await client.send({"type": "subscribe", "workspace": "w1"})
            await client.wait_event("presence.snapshot")
        purge = await call(server, "boss", "DELETE", f"{NOTES}/mine", params={"purge": "true"})
        assert purge[0] == 204
        assert (await reader.wait_event("note.purged"))["id"] == "mine"
        marker = await call(server, "boss", "POST", NOTES, json={"id": "after", "title": "After"})
        assert marker[0] == 201
        await stranger.wait_event("note.created", lambda e: e["note"]["id"] == "after")
        assert stranger.of_type("note.purged") == []


# --- the matrix: workspace role, the note's visibility, the user's place on it, surface ---

MATRIX_ROLES = ("owner", "editor", "viewer")
# Where the user stands with the note: its creator is always "maker" (an editor).
PLACES = ("listed-editor", "listed-viewer", "unlisted")


def expected_role(visibility: str, workspace_role: str, place: str) -> str | None:
    """The README's table, written out: None when the note is not found for the user."""
    rank = {"viewer": 1, "editor": 2, "owner": 3}
    if visibility == "workspace":
        return workspace_role
    if place == "unlisted":
        return None
    listed = "editor" if place == "listed-editor" else "viewer"
    return min(workspace_role, listed, key=rank.__getitem__)


# The matrix's users, named by their workspace role and place ("editor-listed-viewer"), and
# its note's share list; "maker" creates the note (an editor), SENTINEL is listed as a viewer.
MATRIX_USERS = {f"{role}-{place}": (role, place) for role in MATRIX_ROLES for place in PLACES}
SENTINEL = "zz-sentinel"
MATRIX_SHARES = {
    user: ("editor" if place == "listed-editor" else "viewer")
    for user, (_, place) in MATRIX_USERS.items()
    if place != "unlisted"
} | {SENTINEL: "viewer"}


def matrix_token(server: RunningServer, user: str) -> str:
    role = "editor" if user in ("maker", SENTINEL) else MATRIX_USERS[user][0]
    return token_for(server.settings, user, {"w1": role})


async def matrix_call(
    server: RunningServer, user: str, method: str, path: str, **kw: Any
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {matrix_token(server, user)}"}
    if "data" in kw:
        headers["Content-Type"] = "application/octet-stream"
    async with aiohttp.ClientSession() as http:
        response = await http.request(method, f"{server.http}{path}", headers=headers, **kw)
        body = await response.json() if response.content_type == "application/json" else None
        return response.status, body


async def matrix_note(server: RunningServer, visibility: str, **content: Any) -> None:
    """The note `m`, by the maker, with the matrix's share list and `visibility`."""
    created = await matrix_call(server, "maker", "POST", NOTES, json={"id": "m", **content})
    assert created[0] == 201
    body = {"visibility": visibility, "users": MATRIX_SHARES}
    assert (await matrix_call(server, "maker", "PUT", f"{NOTES}/m/access", json=body))[0] == 200


@pytest.mark.parametrize("visibility", ["workspace", "private"])
async def test_every_role_and_place_on_every_document_and_catalog_surface(
    server: RunningServer, visibility: str
) -> None:
    users = MATRIX_USERS

    def grant(user: str) -> str:
        return matrix_token(server, user)

    async def as_user(user: str, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        return await matrix_call(server, user, method, path, **kw)

    await matrix_note(server, visibility, title="Matrix zebra", text="body")
    for user, (role, place) in users.items():
        expected = expected_role(visibility, role, place)
        case = (visibility, role, place)
        readable = expected is not None
        status, _ = await as_user(user, "GET", "/api/v1/docs/w1/m")
        assert status == (200 if readable else 404), case
        status, _ = await as_user(user, "GET", f"{NOTES}/m")
        assert status == (200 if readable else 404), case
        update = await as_user(user, "POST", "/api/v1/docs/w1/m/updates", data=an_update(user))
        write_status = 200 if expected in ("owner", "editor") else 403
        assert update[0] == (write_status if readable else 404), case
        for params in ({}, {"q": "zebra"}, {"sort": "title", "order": "asc"}):
            status, body = await as_user(user, "GET", NOTES, params=params)
            assert status == 200
            assert ("m" in {n["id"] for n in body["notes"]}) is readable, (case, params)
        if not readable:
            status, _ = await connect_http_error(server.doc_url("w1/m", token=grant(user)))
            assert status == 404, case
            continue
        async with YClient.connect(server.doc_url("w1/m", token=grant(user))) as client:
            await client.wait_synced()
            client.doc.get("w", type=Text).insert(0, user)
            await client.flush()
            # The maker's marker comes back after the user's edit was handled.
            async with YClient.connect(server.doc_url("w1/m", token=grant("maker"))) as maker:
                await maker.wait_synced()
                maker.doc.get("mark", type=Text).insert(0, user)
                await maker.flush()
                await client.wait_until(
                    lambda user=user: user in str(client.doc.get("mark", type=Text))
                )
            status, body = await as_user("maker", "GET", "/api/v1/docs/w1/m")
            wrote = user in body["roots"].get("w", "")
            assert wrote is (expected in ("owner", "editor")), case


@pytest.mark.parametrize("visibility", ["workspace", "private"])
async def test_every_role_and_place_on_live_events_presence_and_notifications(
    server: RunningServer, visibility: str
) -> None:
    users = MATRIX_USERS
    # Mentioned last (ids are checked in order): once it is notified, every user was decided.
    sentinel = SENTINEL

    def grant(user: str) -> str:
        return matrix_token(server, user)

    async def as_user(user: str, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        return await matrix_call(server, user, method, path, **kw)

    await matrix_note(server, visibility, title="M")
    everyone = [*users, sentinel]
    async with contextlib.AsyncExitStack() as stack:
        lives = {
            user: await stack.enter_async_context(LiveClient.connect(server.ws, grant(user)))
            for user in everyone
        }
        for live in lives.values():
            await live.send({"type": "subscribe", "workspace": "w1"})
            await live.wait_event("presence.snapshot")
        async with YClient.connect(server.doc_url("w1/m", token=grant("maker"))) as maker:
            await maker.wait_synced()
            text = " ".join(f"@{user}" for user in everyone)
            fragment = maker.doc.get("body", type=XmlFragment)
            fragment.children.append(XmlElement("paragraph", {}, [XmlText(text)]))
            await maker.flush()
            await lives[sentinel].wait_event("note.updated", lambda e: e["note"]["id"] == "m")

            async def sentinel_notified() -> bool:
                _, listed_ = await as_user(sentinel, "GET", "/api/v1/notifications")
                return len(listed_["notifications"]) == 1

            await eventually(sentinel_notified, what="the last mentioned user decided")
            _, presence = await as_user("maker", "GET", "/api/v1/workspaces/w1/presence")
        for user, (role, place) in users.items():
            case = (visibility, role, place)
            readable = expected_role(visibility, role, place) is not None
            events = [
                e
                for e in lives[user].events
                if e["type"].startswith("note.") and (e.get("note") or {}).get("id") == "m"
            ]
            assert bool(events) is readable, case
            _, notified = await as_user(user, "GET", "/api/v1/notifications")
            kinds = [n["kind"] for n in notified["notifications"]]
            assert kinds == (["mention"] if readable else []), case
        shown_notes = {note for entry in presence["users"] for note in entry["notes"]}
        assert ("m" in shown_notes) is (visibility == "workspace")


async def test_a_token_refresh_keeps_the_notes_cap(server: RunningServer) -> None:
    """An in-band refresh decides the role anew from the token and the directory: the note's
    access still caps it, and a refresh by a user the note no longer lets read it closes."""
    await make_private(server, "secret", "Secret")
    async with (
        YClient.connect(server.doc_url("w1/secret", token=token(server, "vi"))) as viewer,
        YClient.connect(server.doc_url("w1/secret", token=token(server, "ed"))) as editor,
    ):
        await viewer.wait_synced()
        await editor.wait_synced()
        await viewer.send_raw(encode_token_refresh(token(server, "vi")))
        await assert_edit_not_applied(server, viewer, editor)
        assert not viewer.closed
