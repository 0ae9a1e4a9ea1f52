"""The notes catalog end to end: indexing from real edits, REST, lifecycle, live events, on
one instance and across two (every test runs on the embedded and the scaled backend)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from pycrdt import Array, Doc, Map, Text, XmlElement, XmlFragment, XmlText

from collab.protocol.close_codes import CloseCode
from collab.web.keys import CATALOG, STORE
from tests.conftest import RunningServer, StartServer, make_settings
from tests.support.live import LiveClient
from tests.support.metrics import scrape
from tests.support.waiting import eventually
from tests.support.yclient import YClient, connect_http_error

NOTES = "/api/v1/workspaces/w1/notes"
ROLES = {"w1": "owner"}


@pytest.fixture
async def server(start_server: StartServer) -> RunningServer:
    return await start_server(make_settings(catalog_interval_ms=20))


def headers(server: RunningServer, sub: str = "u1", role: str = "owner") -> dict[str, str]:
    return {"Authorization": f"Bearer {server.token(sub, {'w1': role})}"}


async def call(
    server: RunningServer,
    method: str,
    path: str,
    *,
    sub: str = "u1",
    role: str = "owner",
    json: Any = None,
    params: Mapping[str, str] | list[tuple[str, str]] | None = None,
) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http:
        response = await http.request(
            method,
            f"{server.http}{path}",
            headers=headers(server, sub, role),
            json=json,
            params=params,
        )
        body = await response.json() if response.content_type == "application/json" else None
        return response.status, body


async def listed(server: RunningServer, **params: str) -> list[str]:
    status, body = await call(server, "GET", NOTES, params=params)
    assert status == 200, body
    return [note["id"] for note in body["notes"]]


def write_note(doc: Doc[Any], title: str, text: str = "", **meta: Any) -> None:
    with doc.transaction():
        fields = doc.get("meta", type=Map)
        fields["title"] = title
        for key, value in meta.items():
            fields[key] = Array(value) if isinstance(value, list) else value
        if text:
            body = doc.get("body", type=XmlFragment)
            body.children.append(XmlElement("paragraph", {}, [XmlText(text)]))


async def entry_of(server: RunningServer, note_id: str) -> dict[str, Any]:
    status, body = await call(server, "GET", f"{NOTES}/{note_id}")
    assert status == 200, body
    return body  # type: ignore[no-any-return]


# --- indexing from edits ------------------------------------------------------------------


async def test_an_edit_lists_the_note_and_a_mere_open_does_not(server: RunningServer) -> None:
    async with YClient.connect(server.doc_url("w1/opened")) as idle:
        await idle.wait_synced()
        async with YClient.connect(server.doc_url("w1/n1", sub="u2")) as client:
            await client.wait_synced()
            write_note(client.doc, "Quarterly plan", "Budget review", tags=["work"], pinned=True)
            await client.flush()

            async def indexed() -> bool:
                return await listed(server) == ["n1"]

            await eventually(indexed, what="the edited note listed")
    entry = await entry_of(server, "n1")
    assert entry["title"] == "Quarterly plan"
    assert entry["tags"] == ["work"]
    assert entry["pinned"] is True
    assert entry["excerpt"] == "Budget review"
    assert entry["created_by"] == "u2"
    assert entry["updated_by"] == "u2"
    status, _ = await call(server, "GET", f"{NOTES}/opened")
    assert status == 404


async def test_a_due_out_of_range_in_utc_is_no_due_and_the_note_is_indexed(
    server: RunningServer,
) -> None:
    """`9999-12-31T23:00:00-05:00` is a valid ISO-8601 date-time past year 9999 in UTC: the
    note is indexed without a due, like any other due that is not a date."""
    doc: Doc[Any] = Doc()
    write_note(doc, "Far away", due="9999-12-31T23:00:00-05:00")
    async with aiohttp.ClientSession() as http:
        response = await http.post(
            f"{server.http}/api/v1/docs/w1/far/updates",
            data=doc.get_update(),
            headers={**headers(server), "Content-Type": "application/octet-stream"},
        )
        assert response.status == 200

    async def indexed() -> bool:
        return await listed(server) == ["far"]

    await eventually(indexed, what="the note indexed")
    entry = await entry_of(server, "far")
    assert (entry["title"], entry["due"]) == ("Far away", None)


async def test_a_rest_edit_counts_and_names_its_author(server: RunningServer) -> None:
    doc: Doc[Any] = Doc()
    write_note(doc, "From REST", priority="urgent")
    async with aiohttp.ClientSession() as http:
        response = await http.post(
            f"{server.http}/api/v1/docs/w1/rest/updates",
            data=doc.get_update(),
            headers={**headers(server, "u3"), "Content-Type": "application/octet-stream"},
        )
        assert response.status == 200

    async def indexed() -> bool:
        return await listed(server) == ["rest"]

    await eventually(indexed, what="the REST edit indexed")
    entry = await entry_of(server, "rest")
    assert (entry["priority"], entry["updated_by"]) == ("urgent", "u3")
    metrics = await scrape(server)
    indexed = next(
        line
        for line in metrics.splitlines()
        if line.startswith("collab_catalog_indexed_notes_total")
    )
    assert float(indexed.split()[-1]) >= 1
    assert "collab_catalog_dirty_notes 0.0" in metrics


async def test_edits_beside_the_fields_move_the_time_and_a_later_field_edit_still_shows(
    server: RunningServer,
) -> None:
    """The indexer reuses a note's fields while no edit reaches `meta` or `body`: the row
    still takes each edit's author, and the next edit of the fields is read again."""
    async with YClient.connect(server.doc_url("w1/n1", sub="u2")) as writer:
        await writer.wait_synced()
        write_note(writer.doc, "Plan", "First draft")
        await writer.flush()

        async def titled(title: str) -> bool:
            return (await listed(server)) == ["n1"] and (await entry_of(server, "n1"))[
                "title"
            ] == title

        await eventually(lambda: titled("Plan"), what="the note indexed")
        async with YClient.connect(server.doc_url("w1/n1", sub="u3")) as other:
            await other.wait_synced()
            cursor = other.doc.get("cursor", type=Map)
            for index in range(3):
                cursor["at"] = index
                await other.flush()

            async def moved_by_u3() -> bool:
                return (await entry_of(server, "n1"))["updated_by"] == "u3"

            await eventually(moved_by_u3, what="the edit beside the fields indexed")
            entry = await entry_of(server, "n1")
            assert (entry["title"], entry["excerpt"]) == ("Plan", "First draft")
            with other.doc.transaction():
                other.doc.get("meta", type=Map)["title"] = "Plan B"
                paragraph = other.doc.get("body", type=XmlFragment).children[0]
                assert isinstance(paragraph, XmlElement)
                text = paragraph.children[0]
                assert isinstance(text, XmlText)
                text.insert(len(text), ", revised")
            await other.flush()
            await eventually(lambda: titled("Plan B"), what="the later title edit indexed")
    assert (await entry_of(server, "n1"))["excerpt"] == "First draft, revised"


async def test_values_of_the_wrong_type_or_size_are_indexed_sanitized(
    server: RunningServer,
) -> None:
    async with YClient.connect(server.doc_url("w1/odd")) as client:
        await client.wait_synced()
        with client.doc.transaction():
            meta = client.doc.get("meta", type=Map)
            meta["title"] = 42
            meta["tags"] = Array(["ok", 7, "x" * 500, "ok", {"a": 1}])
            meta["pinned"] = "yes"
            meta["priority"] = "extreme"
            meta["due"] = "tomorrow"
            meta["assignees"] = "u2"
            client.doc.get("body", type=XmlFragment).children.append(
                XmlElement("p", {}, [XmlText("<b>not markup</b> " + "word " * 100)])
            )
        await client.flush()

        async def indexed() -> bool:
            return await listed(server) == ["odd"]

        await eventually(indexed, what="the odd note indexed")
    entry = await entry_of(server, "odd")
    assert entry["title"] == ""
    assert entry["tags"] == ["ok", "x" * 64]
    assert (entry["pinned"], entry["priority"], entry["due"]) == (False, None, None)
    assert entry["assignees"] == []
    assert entry["excerpt"].startswith("<b>not markup</b> word")
    assert len(entry["excerpt"]) == 200


# --- create -------------------------------------------------------------------------------


async def test_create_writes_the_document_an_editor_then_opens(server: RunningServer) -> None:
    fields = {
        "id": "plan",
        "title": "Plan",
        "tags": ["a", "b"],
        "pinned": True,
        "priority": "high",
        "due": "2026-12-24",
        "assignees": ["u2"],
        "text": "first line\nsecond line",
    }
    status, entry = await call(server, "POST", NOTES, json=fields, role="editor")

    assert status == 201
    assert {key: entry[key] for key in fields if key not in ("id", "text")} == {
        key: value for key, value in fields.items() if key not in ("id", "text")
    }
    assert entry["id"] == "plan"
    assert entry["excerpt"] == "first line second line"
    async with YClient.connect(server.doc_url("w1/plan", sub="u2")) as client:
        await client.wait_synced()
        assert client.doc.get("meta", type=Map)["title"] == "Plan"
        body = str(client.doc.get("body", type=XmlFragment))
        assert body == "<paragraph>first line</paragraph><paragraph>second line</paragraph>"
    assert await listed(server) == ["plan"]


async def test_create_takes_text_of_up_to_ten_thousand_lines(server: RunningServer) -> None:
    lines = [f"line {i}" if i % 2 else "" for i in range(10_000)]
    status, entry = await call(server, "POST", NOTES, json={"id": "long", "text": "\n".join(lines)})

    assert status == 201, entry
    async with YClient.connect(server.doc_url("w1/long")) as client:
        await client.wait_synced()
        paragraphs = list(client.doc.get("body", type=XmlFragment).children)
        assert len(paragraphs) == 10_000
        assert str(paragraphs[-1]) == "<paragraph>line 9999</paragraph>"


async def test_create_without_an_id_generates_one(server: RunningServer) -> None:
    status, first = await call(server, "POST", NOTES, json={})
    _, second = await call(server, "POST", NOTES, json={"title": "t"})

    assert status == 201
    assert first["id"] != second["id"]
    assert len(first["id"]) >= 16
    # The generated id addresses the note like any other: over REST and over WebSocket.
    assert (await call(server, "GET", f"{NOTES}/{second['id']}"))[1]["title"] == "t"
    async with YClient.connect(server.doc_url(f"w1/{second['id']}")) as client:
        await client.wait_synced()
        assert str(client.doc.get("meta", type=Map).get("title")) == "t"


async def test_create_refuses_an_id_that_exists_or_existed(server: RunningServer) -> None:
    assert (await call(server, "POST", NOTES, json={"id": "n1"}))[0] == 201
    async with YClient.connect(server.doc_url("w1/edited")) as client:
        await client.wait_synced()
        client.doc.get("t", type=Text).insert(0, "x")
        await client.flush()
        status, body = await call(server, "POST", NOTES, json={"id": "edited"})
    assert status == 409, body
    assert (await call(server, "POST", NOTES, json={"id": "n1"}))[0] == 409
    assert (await call(server, "DELETE", f"{NOTES}/n1", params={"purge": "true"}))[0] == 204
    status, body = await call(server, "POST", NOTES, json={"id": "n1"})
    assert status == 409
    assert "never reused" in body["error"]["message"]


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"title": 5}, "'title'"),
        ({"title": "x" * 501}, "'title'"),
        ({"tags": "a"}, "'tags'"),
        ({"tags": ["a"] * 33}, "'tags'"),
        ({"tags": [""]}, "'tags'"),
        ({"assignees": [1]}, "'assignees'"),
        ({"pinned": "true"}, "'pinned'"),
        ({"priority": "extreme"}, "'priority'"),
        ({"due": "tomorrow"}, "'due'"),
        ({"due": "9999-12-31T23:00:00-05:00"}, "'due'"),  # past year 9999 in UTC
        ({"text": ["a"]}, "'text'"),
        ({"text": "\n" * 10_000}, "'text'"),  # 10,001 lines
        ({"id": 5}, "'id'"),
        ({"colour": "red"}, "colour"),
        ([1, 2], "JSON object"),
    ],
)
async def test_create_names_each_invalid_field(
    server: RunningServer, body: Any, named: str
) -> None:
    status, answer = await call(server, "POST", NOTES, json=body)

    assert status == 422
    assert named in answer["error"]["message"]
    assert await listed(server) == []


async def test_create_refuses_a_bad_id_and_bad_json(server: RunningServer) -> None:
    status, answer = await call(server, "POST", NOTES, json={"id": "no/slash"})
    assert status == 404
    assert "invalid note id" in answer["error"]["message"]
    async with aiohttp.ClientSession() as http:
        response = await http.post(
            f"{server.http}{NOTES}",
            data=b"{not json",
            headers={**headers(server), "Content-Type": "application/json"},
        )
        assert response.status == 400


# --- roles --------------------------------------------------------------------------------


async def test_every_role_rule(server: RunningServer) -> None:
    assert (await call(server, "POST", NOTES, json={"id": "n1"}, role="viewer"))[0] == 403
    assert (await call(server, "POST", NOTES, json={"id": "n1"}, role="editor"))[0] == 201
    assert (await call(server, "GET", NOTES, role="viewer"))[0] == 200
    assert (await call(server, "GET", f"{NOTES}/n1", role="viewer"))[0] == 200
    assert (await call(server, "DELETE", f"{NOTES}/n1", role="viewer"))[0] == 403
    purge = {"purge": "true"}
    assert (await call(server, "DELETE", f"{NOTES}/n1", role="editor", params=purge))[0] == 403
    assert (await call(server, "DELETE", f"{NOTES}/n1", role="editor"))[0] == 200
    assert (await call(server, "POST", f"{NOTES}/n1/restore", role="viewer"))[0] == 403
    assert (await call(server, "POST", f"{NOTES}/n1/restore", role="editor"))[0] == 200
    async with aiohttp.ClientSession() as http:
        other = {"Authorization": f"Bearer {server.token('u1', {'w2': 'owner'})}"}
        response = await http.get(f"{server.http}{NOTES}", headers=other)
        assert response.status == 403
        response = await http.get(f"{server.http}{NOTES}")
        assert response.status == 401


# --- listing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ([("limit", "0")], "'limit'"),
        ([("limit", "201")], "'limit'"),
        ([("limit", "ten")], "'limit'"),
        ([("pinned", "yes")], "'pinned'"),
        ([("trashed", "1")], "'trashed'"),
        ([("priority", "extreme")], "'priority'"),
        ([("due_before", "tomorrow")], "'due_before'"),
        ([("due_before", "0001-01-01T00:00:00+05:00")], "'due_before'"),  # before year 1 in UTC
        ([("due_after", "2026-13-01")], "'due_after'"),
        ([("sort", "size")], "'sort'"),
        ([("order", "up"), ("sort", "title")], "'order'"),
        ([("order", "asc")], "'order'"),
        ([("q", "x" * 501)], "'q'"),
        ([("tag", "")], "'tag'"),
        ([("tag", "a\x00")], "'tag'"),  # PostgreSQL text cannot hold NUL: a 503 before
        ([("assignee", "u\x00")], "'assignee'"),
        ([("assignee", "")], "'assignee'"),
        ([("cursor", "!!!")], "'cursor'"),
        ([("cursor", "AAAA")], "'cursor'"),
        ([("colour", "red")], "'colour'"),
        ([("limit", "5"), ("limit", "6")], "'limit'"),
    ],
)
async def test_each_bad_parameter_is_a_400_naming_it(
    server: RunningServer, params: list[tuple[str, str]], named: str
) -> None:
    status, body = await call(server, "GET", NOTES, params=params)

    assert status == 400
    assert named in body["error"]["message"]


async def test_pages_follow_next_and_a_tampered_or_foreign_cursor_is_refused(
    server: RunningServer,
) -> None:
    for number in range(5):
        await call(server, "POST", NOTES, json={"id": f"n{number}", "title": f"t{number}"})
    seen: list[str] = []
    params: dict[str, str] = {"limit": "2", "sort": "title"}
    cursors = []
    while True:
        status, body = await call(server, "GET", NOTES, params=params)
        assert status == 200
        seen += [note["id"] for note in body["notes"]]
        if body["next"] is None:
            break
        cursors.append(body["next"])
        params = {**params, "cursor": body["next"]}
    assert seen == [f"n{number}" for number in range(5)]

    cursor = cursors[0]
    tampered = cursor[:-2] + ("A" if cursor[-2] != "A" else "B") + cursor[-1]
    status, body = await call(server, "GET", NOTES, params={"sort": "title", "cursor": tampered})
    assert status == 400
    assert "'cursor'" in body["error"]["message"]
    status, body = await call(server, "GET", NOTES, params={"sort": "updated", "cursor": cursor})
    assert status == 400
    assert "other filters" in body["error"]["message"]


async def test_filters_sorting_and_search_over_rest(server: RunningServer) -> None:
    notes = [
        {"id": "a", "title": "Roadmap", "tags": ["work"], "priority": "high", "due": "2026-12-20"},
        {"id": "b", "title": "Groceries", "tags": ["home"], "pinned": True, "text": "roadmap"},
        {"id": "c", "title": "Retro", "tags": ["work", "team"], "assignees": ["u2"]},
    ]
    for note in notes:
        assert (await call(server, "POST", NOTES, json=note))[0] == 201

    assert (await listed(server))[0] == "b"  # pinned first
    assert sorted(await listed(server, tag="work")) == ["a", "c"]
    _status, body = await call(server, "GET", NOTES, params=[("tag", "work"), ("tag", "team")])
    assert [note["id"] for note in body["notes"]] == ["c"]
    assert await listed(server, assignee="u2") == ["c"]
    assert await listed(server, pinned="true") == ["b"]
    assert await listed(server, priority="high") == ["a"]
    assert await listed(server, due_before="2026-12-21") == ["a"]
    assert await listed(server, due_after="2026-12-21") == []
    assert await listed(server, sort="title") == ["b", "c", "a"]
    assert await listed(server, sort="title", order="desc") == ["a", "c", "b"]
    assert await listed(server, q="roadmap") == ["a", "b"]  # title above body
    assert await listed(server, q='(road"*') == ["a", "b"]  # operators mean nothing
    assert await listed(server, q="!!!") == []


# --- trash, restore, purge ----------------------------------------------------------------


async def test_trash_closes_connections_refuses_the_note_and_restore_brings_it_back(
    server: RunningServer,
) -> None:
    await call(server, "POST", NOTES, json={"id": "n1", "title": "Doomed", "text": "content"})
    async with YClient.connect(server.doc_url("w1/n1", sub="u2")) as client:
        await client.wait_synced()
        status, entry = await call(server, "DELETE", f"{NOTES}/n1", role="editor")
        assert status == 200
        assert entry["trashed_at"] is not None
        assert await client.wait_closed() == CloseCode.NOTE_DELETED

    status, body = await connect_http_error(server.doc_url("w1/n1"))
    assert status == 404
    assert b"note_trashed" in body
    status, answer = await call(server, "GET", "/api/v1/docs/w1/n1")
    assert status == 404
    assert answer["error"]["code"] == "note_trashed"
    assert await listed(server) == []
    assert await listed(server, trashed="true") == ["n1"]
    assert (await entry_of(server, "n1"))["trashed_at"] == entry["trashed_at"]

    status, restored = await call(server, "POST", f"{NOTES}/n1/restore")
    assert status == 200
    assert restored["trashed_at"] is None
    assert await listed(server) == ["n1"]
    async with YClient.connect(server.doc_url("w1/n1")) as client:
        await client.wait_synced()
        assert client.doc.get("meta", type=Map)["title"] == "Doomed"


async def test_purge_keeps_a_returning_client_out_for_good(server: RunningServer) -> None:
    await call(server, "POST", NOTES, json={"id": "n1", "title": "Secret", "text": "words"})
    offline: Doc[Any] = Doc()
    async with YClient.connect(server.doc_url("w1/n1", sub="u2"), doc=offline) as client:
        await client.wait_synced()
        status, _ = await call(server, "DELETE", f"{NOTES}/n1", params={"purge": "true"})
        assert status == 204
        assert await client.wait_closed() == CloseCode.NOTE_DELETED
    # Edits made offline, then the client comes back.
    offline.get("meta", type=Map)["title"] = "Edited offline"

    status, body = await connect_http_error(server.doc_url("w1/n1", sub="u2"))
    assert status == 410
    assert b"note_purged" in body
    async with aiohttp.ClientSession() as http:
        response = await http.post(
            f"{server.http}/api/v1/docs/w1/n1/updates",
            data=offline.get_update(),
            headers={**headers(server, "u2"), "Content-Type": "application/octet-stream"},
        )
        assert response.status == 410
        assert (await response.json())["error"]["code"] == "note_purged"
    assert (await call(server, "GET", f"{NOTES}/n1"))[0] == 410
    assert (await call(server, "POST", f"{NOTES}/n1/restore"))[0] == 410
    assert (await call(server, "DELETE", f"{NOTES}/n1"))[0] == 410
    assert await listed(server) == []
    assert await listed(server, q="secret") == []

    async def content_gone() -> bool:
        return (await server.app[STORE].load("w1/n1")).is_empty

    await eventually(content_gone, what="the purged content gone from the store")


async def test_deleting_a_note_that_never_existed_is_a_404(server: RunningServer) -> None:
    for method, path, params in (
        ("DELETE", f"{NOTES}/never", None),
        ("DELETE", f"{NOTES}/never", {"purge": "true"}),
        ("POST", f"{NOTES}/never/restore", None),
        ("GET", f"{NOTES}/never", None),
    ):
        status, body = await call(server, method, path, params=params)
        assert status == 404, (method, path, body)
    status, body = await call(server, "DELETE", f"{NOTES}/never", params={"purge": "yes"})
    assert status == 400
    assert "'purge'" in body["error"]["message"]


async def test_the_trash_is_purged_after_its_retention(server: RunningServer) -> None:
    await call(server, "POST", NOTES, json={"id": "old"})
    await call(server, "POST", NOTES, json={"id": "recent"})
    await call(server, "DELETE", f"{NOTES}/old")
    await call(server, "DELETE", f"{NOTES}/recent")
    catalog = server.app[CATALOG]

    assert await catalog.purge_expired(datetime.now(UTC) + timedelta(days=29)) == 0
    assert await catalog.purge_expired(datetime.now(UTC) + timedelta(days=31)) == 2
    assert (await call(server, "GET", f"{NOTES}/old"))[0] == 410


# --- live events and two instances --------------------------------------------------------


async def test_live_subscribers_on_another_instance_see_every_catalog_event(
    start_server: StartServer,
) -> None:
    settings = make_settings(catalog_interval_ms=20)
    a = await start_server(settings)
    b = await start_server(settings)
    async with LiveClient.connect(b.ws, b.token("u9", ROLES)) as live:
        await live.send({"type": "subscribe", "workspace": "w1"})
        await live.wait_event("presence.snapshot")
        async with YClient.connect(a.doc_url("w1/n1")) as client:
            await client.wait_synced()
            write_note(client.doc, "First")
            await client.flush()
            created = await live.wait_event("note.created")
            assert created["workspace"] == "w1"
            assert created["note"]["id"] == "n1"
            client.doc.get("meta", type=Map)["title"] = "Second"
            await client.flush()
            await live.wait_event("note.updated", lambda e: e["note"]["title"] == "Second")

            async def listed_on_b() -> bool:
                return [n["id"] for n in (await call(b, "GET", NOTES))[1]["notes"]] == ["n1"]

            await eventually(listed_on_b, what="an edit on A listed on B")
            assert (await call(b, "DELETE", f"{NOTES}/n1"))[0] == 200
            assert await client.wait_closed() == CloseCode.NOTE_DELETED
        await live.wait_event("note.trashed")
        status, body = await connect_http_error(a.doc_url("w1/n1"))
        assert status == 404
        assert b"note_trashed" in body
        assert (await call(a, "POST", f"{NOTES}/n1/restore"))[0] == 200
        await live.wait_event("note.restored")
        assert (await call(a, "DELETE", f"{NOTES}/n1", params={"purge": "true"}))[0] == 204
        purged = await live.wait_event("note.purged")
        assert purged == {"type": "note.purged", "workspace": "w1", "id": "n1"}


async def test_notes_stored_before_the_catalog_are_indexed_at_start(
    start_server: StartServer,
) -> None:
    first = await start_server(make_settings(catalog_interval_ms=20))
    doc: Doc[Any] = Doc()
    write_note(doc, "Old note", "from before")
    await first.app[STORE].append_updates([("w1/legacy", doc.get_update(), None)])
    assert (await call(first, "GET", f"{NOTES}/legacy"))[0] == 200  # indexed on demand
    second_doc: Doc[Any] = Doc()
    write_note(second_doc, "Another")
    await first.app[STORE].append_updates([("w1/legacy2", second_doc.get_update(), None)])

    second = await start_server(make_settings(catalog_interval_ms=20))

    async def both_listed() -> bool:
        return sorted(await listed(second)) == ["legacy", "legacy2"]

    await eventually(both_listed, what="stored notes indexed at start")
    entry = await entry_of(second, "legacy2")
    assert entry["title"] == "Another"
    assert entry["created_by"] is None


async def test_a_room_that_unloads_is_indexed_then_not_an_interval_later(
    start_server: StartServer,
) -> None:
    """With an interval far longer than the room's grace, the entry comes with the unload."""
    server = await start_server(make_settings(catalog_interval_ms=600_000, room_grace_s=0.1))
    async with YClient.connect(server.doc_url("w1/n1")) as client:
        await client.wait_synced()
        write_note(client.doc, "Written before leaving")
        await client.flush()

    async def indexed() -> bool:
        return await listed(server) == ["n1"]

    await eventually(indexed, what="the note indexed when its room unloaded")
    assert (await entry_of(server, "n1"))["title"] == "Written before leaving"


async def test_a_large_note_is_indexed_from_a_copy_read_off_the_event_loop(
    server: RunningServer,
) -> None:
    """A body far over the inline size: read in a thread, indexed all the same."""
    async with YClient.connect(server.doc_url("w1/big")) as client:
        await client.wait_synced()
        with client.doc.transaction():
            client.doc.get("meta", type=Map)["title"] = "Big"
            body = client.doc.get("body", type=XmlFragment)
            for number in range(300):
                body.children.append(
                    XmlElement("paragraph", {}, [XmlText(f"paragraph{number} " * 10)])
                )
        await client.flush()

        async def indexed() -> bool:
            return await listed(server, q="paragraph299") == ["big"]

        await eventually(indexed, what="the large note indexed and searchable")
    assert len(client.doc.get_update()) > 16 * 1024
