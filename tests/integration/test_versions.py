"""Version history over REST and the live channel, on the embedded and the scaled backend:
automatic versions (while editing, at unload), named versions, attribution of WebSocket and
REST edits, content, binary state and diffs, restore on two instances, access on every
endpoint, every bad parameter, retention with an injected clock, purge, metrics."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from pycrdt import Doc, Map, Text, XmlElement, XmlFragment, XmlText

from collab.store.rows import format_timestamp
from collab.web.keys import DATABASE, HISTORY
from tests.conftest import RunningServer, StartServer, make_settings, token_for
from tests.support.live import LiveClient
from tests.support.metrics import scrape
from tests.support.rest import rest_call
from tests.support.waiting import eventually
from tests.support.yclient import YClient

NOTES = "/api/v1/workspaces/w1/notes"
DOCS = "/api/v1/docs/w1"
ROLES = {"ann": "editor", "ben": "editor", "vic": "viewer", "olga": "owner", "out": "editor"}


@pytest.fixture
async def server(start_server: StartServer) -> RunningServer:
    return await start_server(make_settings(catalog_interval_ms=20))


def token(server: RunningServer, user: str) -> str:
    return token_for(server.settings, user, {"w1": ROLES[user]})


async def call(
    server: RunningServer, user: str, method: str, path: str, **kw: Any
) -> tuple[int, Any]:
    return await rest_call(server.http, token(server, user), method, path, **kw)


def paragraph_update(state: bytes | None, text: str) -> bytes:
    """A client's edit: one more paragraph at the end of the body, on top of `state`."""
    doc: Doc[Any] = Doc()
    if state:
        doc.apply_update(state)
    before = doc.get_state()
    body = doc.get("body", type=XmlFragment)
    body.children.append(XmlElement("paragraph", {}, [XmlText(text)]))
    return doc.get_update(before)


async def state_of(server: RunningServer, note: str) -> bytes:
    status, body = await call(
        server, "ann", "GET", f"{DOCS}/{note}", headers={"Accept": "application/octet-stream"}
    )
    assert status == 200
    assert isinstance(body, bytes)
    return body


async def rest_paragraph(server: RunningServer, user: str, note: str, text: str) -> None:
    update = paragraph_update(await state_of(server, note), text)
    status, body = await call(server, user, "POST", f"{DOCS}/{note}/updates", data=update)
    assert status == 200, body


async def create_note(server: RunningServer, note: str, title: str, text: str = "") -> None:
    status, body = await call(
        server, "ann", "POST", NOTES, json={"id": note, "title": title, "text": text}
    )
    assert status == 201, body


async def name(server: RunningServer, note: str, label: str, user: str = "ann") -> dict[str, Any]:
    status, body = await call(server, user, "POST", f"{DOCS}/{note}/versions", json={"name": label})
    assert status == 201, body
    return body  # type: ignore[no-any-return]


async def versions(server: RunningServer, note: str, **params: str) -> list[dict[str, Any]]:
    status, body = await call(server, "ann", "GET", f"{DOCS}/{note}/versions", params=params)
    assert status == 200, body
    return body["versions"]  # type: ignore[no-any-return]


def body_text(state: bytes) -> str:
    doc: Doc[Any] = Doc()
    doc.apply_update(state)
    return str(doc.get("body", type=XmlFragment))


# -- taking versions -------------------------------------------------------------------------


async def test_a_named_version_lists_who_edited_over_websocket_and_rest(
    server: RunningServer,
) -> None:
    await create_note(server, "n", "Plan", "first")
    async with YClient.connect(server.doc_url("w1/n", token=token(server, "ben"))) as ben:
        await ben.wait_until(lambda: "first" in str(ben.doc.get("body", type=XmlFragment)))
        ben.doc.get("meta", type=Map)["title"] = "Plan by ben"
        await ben.flush()
        await rest_paragraph(server, "out", "n", "from rest")
        version = await name(server, "n", "reviewed", user="ann")
    assert version["kind"] == "named"
    assert version["name"] == "reviewed"
    assert version["created_by"] == "ann"
    # ann created it (a REST edit), ben typed over WebSocket, out posted an update.
    assert version["authors"] == ["ann", "ben", "out"]
    assert version["size"] > 0
    # The next version lists only who edited since.
    await rest_paragraph(server, "ben", "n", "later")
    assert (await name(server, "n", "second"))["authors"] == ["ben"]
    assert (await name(server, "n", "unchanged"))["authors"] == []


async def test_automatic_versions_while_editing_and_when_the_room_unloads(
    start_server: StartServer,
) -> None:
    server = await start_server(make_settings(version_interval_s=0.3, room_grace_s=0.2))
    await create_note(server, "n", "Auto")
    async with YClient.connect(server.doc_url("w1/n", token=token(server, "ben"))) as ben:
        await ben.wait_until(lambda: ben.doc.get("meta", type=Map).get("title") == "Auto")
        ben.doc.get("meta", type=Map)["title"] = "Auto 2"
        await ben.flush()

        async def an_automatic_version() -> bool:
            return any(v["kind"] == "auto" for v in await versions(server, "n"))

        await eventually(an_automatic_version, what="an automatic version after a pause")
        first = [v for v in await versions(server, "n") if v["kind"] == "auto"]
        assert first[0]["authors"] == ["ann", "ben"]
        ben.doc.get("meta", type=Map)["title"] = "Auto 3"
        await ben.flush()
    # The room unloads with an edit no version holds: one is taken.

    async def two_automatic_versions() -> bool:
        return len([v for v in await versions(server, "n") if v["kind"] == "auto"]) >= 2

    await eventually(two_automatic_versions, what="an automatic version at unload")
    newest = (await versions(server, "n"))[0]
    status, content = await call(server, "ann", "GET", f"{DOCS}/n/versions/{newest['id']}")
    assert status == 200
    assert content["roots"]["meta"]["title"] == "Auto 3"


async def versions_holding(server: RunningServer, note: str, text: str) -> list[str]:
    """The kinds of the note's versions whose body holds `text`."""
    database = server.app[DATABASE]
    found = []
    for version in await database.list_versions(f"w1/{note}", limit=100):
        state = await database.version_state(f"w1/{note}", version.id)
        assert state is not None
        if text in body_text(state):
            found.append(version.kind)
    return found


async def unloaded(server: RunningServer, room_id: str) -> None:
    """Wait for the room to unload and for the version its unload takes."""
    history = server.app[HISTORY]

    async def gone() -> bool:
        return history.rooms.get(room_id) is None

    await eventually(gone, what="the room unloaded")
    while history._pending:
        await asyncio.wait(list(history._pending))


class Clocks:
    """The history's monotonic and wall clocks, moved together by the test."""

    def __init__(self) -> None:
        self.monotonic = 1000.0
        self.wall = datetime.now(UTC)

    def advance(self, seconds: float) -> None:
        self.monotonic += seconds
        self.wall += timedelta(seconds=seconds)


@pytest.fixture
async def slow_clock_server(start_server: StartServer) -> tuple[RunningServer, Clocks]:
    """The default interval (300 s): automatic versions fall due when the test moves the
    history's clocks."""
    server = await start_server(make_settings(catalog_interval_ms=20, room_grace_s=0.2))
    clocks = Clocks()
    history = server.app[HISTORY]
    history._clock = lambda: clocks.monotonic
    history._wall_clock = lambda: clocks.wall
    return server, clocks


async def test_edits_after_an_automatic_version_get_one_when_the_room_unloads(
    slow_clock_server: tuple[RunningServer, Clocks],
) -> None:
    """The version at unload is taken however soon after the last one: no later version
    would hold its edits."""
    server, clocks = slow_clock_server
    history = server.app[HISTORY]
    await create_note(server, "n", "T")
    async with history.rooms.holding("w1/n"):
        await rest_paragraph(server, "ann", "n", "first")
        clocks.advance(310.0)
        assert await history.take_due() == 1
        await rest_paragraph(server, "ann", "n", "the last words")
    await unloaded(server, "w1/n")
    assert await versions_holding(server, "n", "the last words") == ["auto"]


async def test_edits_after_a_named_version_get_an_automatic_one(
    slow_clock_server: tuple[RunningServer, Clocks],
) -> None:
    """A named version starts the period again: the automatic version of the edits after it
    comes a period later, not just after it, when the store would refuse it as too soon."""
    server, clocks = slow_clock_server
    history = server.app[HISTORY]
    await create_note(server, "n", "T")
    async with history.rooms.holding("w1/n"):
        await rest_paragraph(server, "ann", "n", "before")
        clocks.advance(290.0)
        await name(server, "n", "r")
        await rest_paragraph(server, "ann", "n", "after the named one")
        clocks.advance(20.0)
        assert await history.take_due() == 0  # not due: the period started at the named one
        clocks.advance(300.0)
        assert await history.take_due() == 1
    assert await versions_holding(server, "n", "after the named one") == ["auto"]


async def test_a_version_refused_as_too_soon_is_tried_again_once_the_gap_has_passed(
    slow_clock_server: tuple[RunningServer, Clocks],
) -> None:
    """Another instance stored a version just before this one's fell due: the store refuses
    this one as too soon, and the edits since are taken once the gap has passed."""
    server, clocks = slow_clock_server
    history = server.app[HISTORY]
    await create_note(server, "n", "T")
    async with history.rooms.holding("w1/n") as live:
        await rest_paragraph(server, "ann", "n", "before")
        clocks.advance(300.0)
        other = await server.app[DATABASE].add_version(
            "w1/n",
            live.room.encoded_state(),
            kind="auto",
            name=None,
            created_by=None,
            at=format_timestamp(clocks.wall),
        )
        assert other is not None
        await rest_paragraph(server, "ann", "n", "since the other one")
        clocks.advance(10.0)
        assert await history.take_due() == 0  # refused: the other one is 10 s old
        clocks.advance(150.0)
        assert await history.take_due() == 1
        clocks.advance(300.0)
        assert await history.take_due() == 0  # tried once more, not for ever
    assert await versions_holding(server, "n", "since the other one") == ["auto"]


async def test_an_unchanged_state_is_not_stored_twice(server: RunningServer) -> None:
    await create_note(server, "n", "Same")
    history = server.app[HISTORY]
    rooms = history.rooms
    async with rooms.holding("w1/n") as live:
        first = await history.take(live, kind="auto", name=None, created_by=None)
        again = await history.take(live, kind="auto", name=None, created_by=None)
    assert first is not None
    assert again is None
    before = await server.app[DATABASE].version_bytes()
    await name(server, "n", "a name for the same state")
    assert await server.app[DATABASE].version_bytes() == before


# -- reading ---------------------------------------------------------------------------------


async def test_a_version_reads_as_json_or_as_its_yjs_state_and_diffs(server: RunningServer) -> None:
    await create_note(server, "n", "Diff me", "the quick fox")
    v1 = await name(server, "n", "one")
    await rest_paragraph(server, "ben", "n", "jumps high")
    status, content = await call(server, "vic", "GET", f"{DOCS}/n/versions/{v1['id']}")
    assert status == 200
    assert content["version"] == v1
    assert content["room"] == "w1/n"
    assert content["roots"]["meta"]["title"] == "Diff me"
    status, state = await call(
        server,
        "vic",
        "GET",
        f"{DOCS}/n/versions/{v1['id']}",
        headers={"Accept": "application/octet-stream"},
    )
    assert status == 200
    assert "jumps high" not in body_text(state)
    assert "the quick fox" in body_text(state)

    # From the note now to the version: restoring it would remove the paragraph.
    status, diff = await call(server, "vic", "GET", f"{DOCS}/n/versions/{v1['id']}/diff")
    assert status == 200, diff
    assert (diff["before"], diff["after"]) == ("current", v1["id"])
    deleted = "".join(op["text"] for op in diff["body"] if op["op"] == "delete")
    assert "jumps high" in deleted
    assert not [op for op in diff["body"] if op["op"] == "insert"]
    assert diff["meta"] == []

    v2 = await name(server, "n", "two")
    status, diff = await call(
        server, "vic", "GET", f"{DOCS}/n/versions/{v2['id']}/diff", params={"against": v1["id"]}
    )
    assert status == 200
    inserted = "".join(op["text"] for op in diff["body"] if op["op"] == "insert")
    assert "jumps high" in inserted


async def test_versions_page_newest_first(server: RunningServer) -> None:
    await create_note(server, "n", "Pages")
    made = []
    for number in range(5):
        await rest_paragraph(server, "ann", "n", f"p{number}")
        made.append((await name(server, "n", f"v{number}"))["id"])
    seen: list[str] = []
    params: dict[str, str] = {"limit": "2"}
    while True:
        status, page = await call(server, "vic", "GET", f"{DOCS}/n/versions", params=params)
        assert status == 200
        seen += [v["id"] for v in page["versions"]]
        if page["next"] is None:
            break
        params["cursor"] = page["next"]
    assert seen == list(reversed(made))


# -- restore ---------------------------------------------------------------------------------


async def test_a_restore_reaches_clients_on_two_instances_as_an_edit(
    start_server: StartServer,
) -> None:
    a = await start_server(make_settings(catalog_interval_ms=20))
    b = await start_server(make_settings(catalog_interval_ms=20))
    await create_note(a, "n", "Restore", "original text")
    v1 = await name(a, "n", "original")
    url_a = a.doc_url("w1/n", token=token(a, "ben"))
    url_b = b.doc_url("w1/n", token=token(b, "vic"))
    async with (
        YClient.connect(url_a) as on_a,
        YClient.connect(url_b) as on_b,
        LiveClient.connect(b.ws, token(b, "vic")) as live,
    ):
        await live.send({"type": "subscribe", "workspace": "w1"})
        body_a = on_a.doc.get("body", type=XmlFragment)
        await on_a.wait_until(lambda: "original text" in str(body_a))
        body_a.children.append(XmlElement("paragraph", {}, [XmlText("vandalism")]))
        on_a.doc.get("meta", type=Map)["title"] = "Defaced"
        body_b = on_b.doc.get("body", type=XmlFragment)
        await on_b.wait_until(lambda: "vandalism" in str(body_b))

        # Asked of ben's instance: it stores his edits, so they are written (and he is
        # listed) before the restore version is taken.
        status, restored = await call(a, "ben", "POST", f"{DOCS}/n/versions/{v1['id']}/restore")
        assert status == 200, restored
        assert restored["changed"] is True
        assert restored["version"]["id"] == v1["id"]
        assert restored["backup"]["kind"] == "restore"
        assert restored["backup"]["authors"] == ["ben"]
        for client in (on_a, on_b):
            await client.wait_until(
                lambda c=client: (
                    "vandalism" not in str(c.doc.get("body", type=XmlFragment))
                    and c.doc.get("meta", type=Map).get("title") == "Restore"
                )
            )
        assert "original text" in str(body_a)
        event = await live.wait_event("note.restored_version")
        assert (event["id"], event["version"]["id"], event["by"]) == ("n", v1["id"], "ben")
        created = await live.wait_event(
            "version.created", lambda e: e["version"]["id"] == restored["backup"]["id"]
        )
        assert created["version"]["kind"] == "restore"
    # The restore is stored: a fresh reader on either instance reads the restored content.
    assert "vandalism" not in body_text(await state_of(a, "n"))
    assert "vandalism" not in body_text(await state_of(b, "n"))


async def test_restoring_the_current_content_changes_nothing(server: RunningServer) -> None:
    await create_note(server, "n", "Same", "text")
    v1 = await name(server, "n", "now")
    status, restored = await call(server, "ben", "POST", f"{DOCS}/n/versions/{v1['id']}/restore")
    assert status == 200
    assert restored["changed"] is False


# -- access and bad input --------------------------------------------------------------------


async def test_access_on_every_version_endpoint(server: RunningServer) -> None:
    await create_note(server, "n", "Shared")
    v1 = await name(server, "n", "one")
    base = f"{DOCS}/n/versions"
    for user in ("vic", "ann", "olga"):
        assert (await call(server, user, "GET", base))[0] == 200
        assert (await call(server, user, "GET", f"{base}/{v1['id']}"))[0] == 200
        assert (await call(server, user, "GET", f"{base}/{v1['id']}/diff"))[0] == 200
    status, body = await call(server, "vic", "POST", base, json={"name": "mine"})
    assert (status, body["error"]["code"]) == (403, "forbidden")
    status, body = await call(server, "vic", "POST", f"{base}/{v1['id']}/restore")
    assert (status, body["error"]["code"]) == (403, "forbidden")
    status, body = await call(server, "ann", "DELETE", f"{base}/{v1['id']}")
    assert (status, body["error"]["code"]) == (403, "forbidden")
    # No token: 401, whatever the endpoint.
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.http}{base}") as response:
            assert response.status == 401

    # A private note's history is not found for whoever cannot read the note.
    status, body = await call(
        server, "ann", "PUT", f"{NOTES}/n/access", json={"visibility": "private", "users": {}}
    )
    assert status == 200, body
    for path in (base, f"{base}/{v1['id']}", f"{base}/{v1['id']}/diff"):
        status, body = await call(server, "ben", "GET", path)
        assert (status, body["error"]["code"]) == (404, "not_found"), path
    status, _ = await call(server, "ben", "POST", f"{base}/{v1['id']}/restore")
    assert status == 404


async def test_only_named_versions_are_deleted_by_hand(server: RunningServer) -> None:
    await create_note(server, "n", "Delete")
    named = await name(server, "n", "one")
    await rest_paragraph(server, "ben", "n", "more")
    restored = await call(server, "ben", "POST", f"{DOCS}/n/versions/{named['id']}/restore")
    backup = restored[1]["backup"]
    status, body = await call(server, "olga", "DELETE", f"{DOCS}/n/versions/{backup['id']}")
    assert (status, body["error"]["code"]) == (409, "version_not_named")
    status, _ = await call(server, "olga", "DELETE", f"{DOCS}/n/versions/{named['id']}")
    assert status == 204
    assert [v["id"] for v in await versions(server, "n")] == [backup["id"]]
    status, body = await call(server, "olga", "DELETE", f"{DOCS}/n/versions/{named['id']}")
    assert (status, body["error"]["code"]) == (404, "not_found")


@pytest.mark.parametrize(
    ("method", "suffix", "params", "json", "status", "needle"),
    [
        ("GET", "", {"limit": "0"}, None, 400, "limit"),
        ("GET", "", {"limit": "101"}, None, 400, "limit"),
        ("GET", "", {"limit": "x"}, None, 400, "limit"),
        ("GET", "", {"cursor": "abc"}, None, 400, "cursor"),
        ("GET", "", {"cursor": "-1"}, None, 400, "cursor"),
        ("GET", "/1/diff", {"against": "yesterday"}, None, 400, "against"),
        ("GET", "/abc", {}, None, 404, "abc"),
        ("GET", "/99999999999999999999999", {}, None, 404, "version"),
        ("GET", "/0", {}, None, 404, "version"),
        ("GET", "/424242", {}, None, 404, "424242"),
        ("GET", "/424242/diff", {}, None, 404, "424242"),
        ("POST", "/424242/restore", {}, None, 404, "424242"),
        ("POST", "", {}, {"name": ""}, 422, "name"),
        ("POST", "", {}, {"name": "  "}, 422, "name"),
        ("POST", "", {}, {"name": 7}, 422, "name"),
        ("POST", "", {}, {"name": "x" * 201}, 422, "200"),
        ("POST", "", {}, {"name": "a\u0000b"}, 422, "control"),
        ("POST", "", {}, {"name": "ok", "extra": 1}, 422, "extra"),
        ("POST", "", {}, [], 422, "object"),
    ],
)
async def test_bad_input_gets_a_precise_error(
    server: RunningServer,
    method: str,
    suffix: str,
    params: dict[str, str],
    json: Any,
    status: int,
    needle: str,
) -> None:
    await create_note(server, "n", "Bad input")
    got, body = await call(
        server, "ann", method, f"{DOCS}/n/versions{suffix}", params=params, json=json
    )
    assert got == status, body
    assert needle in body["error"]["message"]


async def test_a_note_no_edit_reached_has_nothing_to_name(server: RunningServer) -> None:
    """Probing ids stores nothing: a named version of a note that was never edited is a 404,
    and no version is kept."""
    status, body = await call(server, "ann", "POST", f"{DOCS}/ghost/versions", json={"name": "v"})

    assert status == 404, body
    assert "nothing to version" in body["error"]["message"]
    assert await versions(server, "ghost") == []
    assert await server.app[DATABASE].version_bytes() == 0


async def test_a_body_that_is_not_json_is_refused(server: RunningServer) -> None:
    await create_note(server, "n", "Bad body")
    status, body = await call(
        server,
        "ann",
        "POST",
        f"{DOCS}/n/versions",
        data=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert (status, body["error"]["code"]) == (400, "bad_request")


async def test_a_trashed_note_has_no_history_and_a_purge_deletes_it(
    server: RunningServer,
) -> None:
    await create_note(server, "n", "Doomed")
    v1 = await name(server, "n", "before")
    assert (await call(server, "ann", "DELETE", f"{NOTES}/n"))[0] == 200
    status, body = await call(server, "ann", "GET", f"{DOCS}/n/versions")
    assert (status, body["error"]["code"]) == (404, "note_trashed")
    assert (await call(server, "olga", "DELETE", f"{NOTES}/n", params={"purge": "true"}))[0] == 204
    for method, path in (
        ("GET", f"{DOCS}/n/versions"),
        ("GET", f"{DOCS}/n/versions/{v1['id']}"),
        ("POST", f"{DOCS}/n/versions/{v1['id']}/restore"),
    ):
        status, body = await call(server, "olga", method, path)
        assert (status, body["error"]["code"]) == (410, "note_purged"), path
    database = server.app[DATABASE]
    assert await database.get_version("w1/n", v1["id"]) is None
    assert await database.version_state("w1/n", v1["id"]) is None


# -- retention -------------------------------------------------------------------------------


async def test_retention_thins_automatic_versions_by_age(server: RunningServer) -> None:
    await create_note(server, "n", "Old")
    database = server.app[DATABASE]
    now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    kept: set[str] = set()
    dropped: set[str] = set()

    async def add(age: timedelta, kind: str = "auto", keep: bool = True) -> None:
        # A distinct state per version: unchanged states are not stored twice.
        doc: Doc[Any] = Doc()
        doc.get("t", type=Text).insert(0, str(age))
        version = await database.add_version(
            "w1/n",
            doc.get_update(),
            kind=kind,
            name="n" if kind == "named" else None,
            created_by=None,
            at=format_timestamp(now - age),
        )
        assert version is not None
        (kept if keep else dropped).add(version.id)

    await add(timedelta(hours=2))
    await add(timedelta(hours=2, minutes=10))  # both younger than a day: kept
    await add(timedelta(days=2, minutes=50), keep=False)  # same hour as the next, older
    await add(timedelta(days=2, minutes=10))  # the newest of its hour
    await add(timedelta(days=20, hours=5), keep=False)
    await add(timedelta(days=20, hours=1))  # the newest of its day
    await add(timedelta(days=100), keep=False)  # past 90 days
    await add(timedelta(days=100), kind="named")  # named: kept whatever its age
    await add(timedelta(days=200), kind="restore")
    assert await server.app[HISTORY].thin(now) == len(dropped)
    assert {v["id"] for v in await versions(server, "n", limit="100")} == kept
    assert await server.app[HISTORY].thin(now) == 0


# -- metrics ---------------------------------------------------------------------------------


async def test_metrics_report_versions(server: RunningServer) -> None:
    await create_note(server, "n", "Measured", "some text")
    await name(server, "n", "one")
    text = await scrape(server)
    assert 'collab_versions_created_total{kind="named"} 1.0' in text
    assert "collab_version_stored_bytes " in text
    assert "collab_version_loop_seconds_total " in text


async def test_a_note_nesting_maps_thousands_deep_is_read_and_versioned(
    server: RunningServer,
) -> None:
    """Each nested Y.Map is an item of its own, so a valid update can nest thousands: the
    note's snapshot and its version are read all the same (as deep as the bound allows)."""
    doc: Doc[Any] = Doc()
    meta = doc.get("meta", type=Map)
    with doc.transaction():
        meta["title"] = "deep"
        current = meta
        for _ in range(3000):
            current["k"] = Map()
            current = current["k"]
    status, body = await call(server, "ann", "POST", f"{DOCS}/deep/updates", data=doc.get_update())
    assert status == 200, body
    status, body = await call(server, "ann", "GET", f"{DOCS}/deep")
    assert status == 200, body
    assert body["roots"]["meta"]["title"] == "deep"
    status, version = await call(server, "ann", "POST", f"{DOCS}/deep/versions", json={"name": "v"})
    assert status == 201, version
    status, body = await call(server, "ann", "GET", f"{DOCS}/deep/versions/{version['id']}")
    assert status == 200, body
    assert body["roots"]["meta"]["title"] == "deep"
