"""The live channel: presence and notifications, on one instance and across two."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from pycrdt import Array, Map, Text, XmlElement, XmlFragment, XmlText

from tests.conftest import RunningServer, StartServer, make_settings
from tests.support.live import LiveClient
from tests.support.yclient import YClient

W1 = {"w1": "editor"}


def _user(event: dict[str, Any]) -> str:
    user = event["user"]
    return str(user if isinstance(user, str) else user["user"])


def _users(snapshot: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {user["user"]: user for user in snapshot["users"]}


async def _post(server: RunningServer, token: str, body: Any) -> aiohttp.ClientResponse:
    async with aiohttp.ClientSession() as http:
        response = await http.post(
            f"{server.http}/api/v1/notifications",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
        )
        await response.read()
        return response


async def test_connection_is_welcomed_and_synced(server: RunningServer) -> None:
    """A new live connection gets `welcome`, then `notifications.synced` with nothing unread."""
    async with LiveClient.connect(server.ws, server.token("u1", W1, name="Una")) as live:
        synced = await live.wait_event("notifications.synced")
        assert live.events[0] == {
            "type": "welcome",
            "user": "u1",
            "name": "Una",
            "connection": live.events[0]["connection"],
        }
        assert synced["unread"] == 0


async def test_presence_follows_users_notes_and_status_across_instances(
    start_server: StartServer,
) -> None:
    """A subscriber on A sees a user of B join, open a note, change status, and leave."""
    fast = make_settings(presence_heartbeat_s=0.2)
    a = await start_server(fast)
    b = await start_server(fast)
    async with LiveClient.connect(a.ws, a.token("u1", W1, name="Una")) as watcher:
        await watcher.send({"type": "subscribe", "workspace": "w1", "ref": 1})
        snapshot = await watcher.wait_event("presence.snapshot")
        assert snapshot["ref"] == 1
        assert set(_users(snapshot)) == {"u1"}
        async with LiveClient.connect(b.ws, b.token("u2", W1, name="Dos")) as other:
            await other.send({"type": "subscribe", "workspace": "w1"})
            joined = await watcher.wait_event("presence.join", lambda e: _user(e) == "u2")
            assert joined["user"]["name"] == "Dos"
            async with YClient.connect(b.doc_url("w1/n7", token=b.token("u2", W1))) as doc:
                await doc.wait_synced()
                await watcher.wait_event(
                    "presence.update",
                    lambda e: _user(e) == "u2" and e["user"]["notes"] == ["n7"],
                )
            await other.send({"type": "presence.status", "workspace": "w1", "status": "lunch"})
            await watcher.wait_event(
                "presence.update", lambda e: _user(e) == "u2" and e["user"]["status"] == "lunch"
            )
        await watcher.wait_event("presence.leave", lambda e: _user(e) == "u2")


async def test_a_user_with_several_tabs_counts_once_with_all_notes(
    start_server: StartServer,
) -> None:
    """Two document tabs of one user, on two instances, give one entry with both notes; the
    REST snapshot says the same."""
    fast = make_settings(presence_heartbeat_s=0.2)
    a = await start_server(fast)
    b = await start_server(fast)
    token = a.token("u2", W1, name="Dos")
    async with (
        LiveClient.connect(a.ws, a.token("u1", W1)) as watcher,
        YClient.connect(a.doc_url("w1/n1", token=token)),
        YClient.connect(b.doc_url("w1/n2", token=token)),
    ):
        await watcher.send({"type": "subscribe", "workspace": "w1"})
        await watcher.wait_for(
            lambda c: _presence_of(c, "u2") == ["n1", "n2"], what="both notes of u2"
        )
        async with aiohttp.ClientSession() as http:
            response = await http.get(
                f"{b.http}/api/v1/workspaces/w1/presence",
                headers={"Authorization": f"Bearer {token}"},
            )
            body = await response.json()
        users = _users(body)
        assert users["u2"]["notes"] == ["n1", "n2"]
        assert sorted(users) == ["u1", "u2"]


def _presence_of(client: LiveClient, user_id: str) -> list[str] | None:
    """The latest notes of `user_id` according to the events the client received."""
    notes = None
    for event in client.events:
        if event["type"] == "presence.snapshot":
            notes = _users(event).get(user_id, {}).get("notes")
        elif event["type"] in ("presence.join", "presence.update") and _user(event) == user_id:
            notes = event["user"]["notes"]
        elif event["type"] == "presence.leave" and _user(event) == user_id:
            notes = None
    return notes


async def test_notifications_reach_every_connection_of_the_user_on_every_instance(
    start_server: StartServer,
) -> None:
    """A notification posted on A arrives once on each of the user's connections on A and B."""
    a = await start_server()
    b = await start_server()
    async with (
        LiveClient.connect(a.ws, a.token("u2", W1)) as tab_a,
        LiveClient.connect(b.ws, b.token("u2", W1)) as tab_b,
    ):
        for tab in (tab_a, tab_b):
            await tab.wait_event("notifications.synced")
        response = await _post(
            a, a.token("u1", W1), {"workspace": "w1", "recipients": ["u2"], "title": "Hi"}
        )
        assert response.status == 201
        for tab in (tab_a, tab_b):
            event = await tab.wait_event("notification")
            assert event["notification"]["payload"]["title"] == "Hi"
            assert event["notification"]["kind"] == "message"
        assert tab_a.of_type("notification") == tab_b.of_type("notification")


async def test_replay_after_reconnect_loses_none_and_repeats_none(server: RunningServer) -> None:
    """Reconnecting with the last id seen delivers exactly the notifications sent meanwhile."""
    sender = server.token("u1", W1)
    async with LiveClient.connect(server.ws, server.token("u2", W1)) as first:
        await first.wait_event("notifications.synced")
        await _post(server, sender, {"workspace": "w1", "recipients": ["u2"], "title": "one"})
        seen = (await first.wait_event("notification"))["notification"]["id"]
    for title in ("two", "three"):
        await _post(server, sender, {"workspace": "w1", "recipients": ["u2"], "title": title})
    async with LiveClient.connect(server.ws, server.token("u2", W1), after=seen) as again:
        synced = await again.wait_event("notifications.synced")
        await _post(server, sender, {"workspace": "w1", "recipients": ["u2"], "title": "four"})
        await again.wait_for(lambda c: len(c.of_type("notification")) == 3, what="three")
        titles = [e["notification"]["payload"]["title"] for e in again.of_type("notification")]
        assert titles == ["two", "three", "four"]
        assert synced["unread"] == 3
        ids = [e["notification"]["id"] for e in again.of_type("notification")]
        assert ids == sorted(ids)
        assert ids[0] > seen


async def test_mentions_and_assignments_in_a_note_notify_members_once(
    server: RunningServer,
) -> None:
    """Mentioning a member in the body and assigning them in `meta` notifies them once each;
    later edits do not notify again, and non-members are not notified."""
    async with LiveClient.connect(server.ws, server.token("u2", W1)) as u2:
        await u2.send({"type": "subscribe", "workspace": "w1"})
        await u2.wait_event("presence.snapshot")
        async with YClient.connect(server.doc_url("w1/plan", token=server.token("u1", W1))) as ed:
            await ed.wait_synced()
            body = ed.doc.get("body", type=XmlFragment)
            body.children.append(
                XmlElement("paragraph", {}, [XmlText("ask @u2 and @stranger about it")])
            )
            mention = await u2.wait_event("notification")
            assert mention["notification"]["kind"] == "mention"
            assert mention["notification"]["payload"]["note"] == "plan"
            assert mention["notification"]["payload"]["actor"] == "u1"
            meta = ed.doc.get("meta", type=Map)
            meta["title"] = "The plan"
            meta["assignees"] = Array(["u2"])
            assignment = await u2.wait_event(
                "notification", lambda e: e["notification"]["kind"] == "assignment"
            )
            assert assignment["notification"]["payload"]["title"] == "The plan"
            body.children.append(XmlElement("paragraph", {}, [XmlText("again @u2")]))
            marker = ed.doc.get("t", type=Text)
            marker.insert(0, "x")
            await _post(
                server,
                server.token("u1", W1),
                {"workspace": "w1", "recipients": ["u2"], "title": "fence"},
            )
            await u2.wait_event(
                "notification", lambda e: e["notification"]["payload"].get("title") == "fence"
            )
        kinds = [e["notification"]["kind"] for e in u2.of_type("notification")]
        assert kinds.count("mention") == 1
        assert kinds.count("assignment") == 1


async def test_notes_edited_in_one_check_interval_are_each_checked(
    server: RunningServer,
) -> None:
    """Changed notes are checked together, once per interval: mentions in three notes edited
    at about the same time each notify, with the right note and actor."""
    async with LiveClient.connect(server.ws, server.token("u2", W1)) as u2:
        await u2.send({"type": "subscribe", "workspace": "w1"})
        await u2.wait_event("presence.snapshot")
        notes = ["alpha", "beta", "gamma"]
        editors = [
            YClient.connect(server.doc_url(f"w1/{note}", token=server.token("u1", W1)))
            for note in notes
        ]
        async with editors[0] as a, editors[1] as b, editors[2] as c:
            for editor in (a, b, c):
                await editor.wait_synced()
            for editor, note in zip((a, b, c), notes, strict=True):
                body = editor.doc.get("body", type=XmlFragment)
                body.children.append(XmlElement("paragraph", {}, [XmlText(f"@u2 see {note}")]))
            await u2.wait_for(lambda c: len(c.of_type("notification")) == 3, what="three")
        mentions = [e["notification"] for e in u2.of_type("notification")]
        assert sorted(m["payload"]["note"] for m in mentions) == notes
        assert {m["kind"] for m in mentions} == {"mention"}
        assert {m["payload"]["actor"] for m in mentions} == {"u1"}


async def test_read_state_is_shared_by_every_connection(server: RunningServer) -> None:
    """Marking read (singly over the live channel, all over REST) updates the unread count
    on every connection of the user."""
    sender = server.token("u1", W1)
    token = server.token("u2", W1)
    async with (
        LiveClient.connect(server.ws, token) as tab1,
        LiveClient.connect(server.ws, token) as tab2,
    ):
        for tab in (tab1, tab2):
            await tab.wait_event("notifications.synced")
        for title in ("a", "b", "c"):
            await _post(server, sender, {"workspace": "w1", "recipients": ["u2"], "title": title})
        await tab1.wait_for(lambda c: len(c.of_type("notification")) == 3, what="three")
        first = tab1.of_type("notification")[0]["notification"]["id"]
        await tab1.send({"type": "notifications.read", "ids": [first]})
        read = await tab2.wait_event("notifications.read")
        assert read == {"type": "notifications.read", "ids": [first], "unread": 2}
        async with aiohttp.ClientSession() as http:
            auth = {"Authorization": f"Bearer {token}"}
            response = await http.post(f"{server.http}/api/v1/notifications/read-all", headers=auth)
            assert (await response.json())["unread"] == 0
            await tab1.wait_event("notifications.read", lambda e: e["unread"] == 0)
            listing = await (
                await http.get(f"{server.http}/api/v1/notifications?unread=true", headers=auth)
            ).json()
            assert listing["notifications"] == []
            everything = await (
                await http.get(f"{server.http}/api/v1/notifications?after=0&limit=2", headers=auth)
            ).json()
            assert [n["payload"]["title"] for n in everything["notifications"]] == ["a", "b"]
            assert everything["more"] is True


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("{not json", "invalid_json"),
        ("[1, 2]", "invalid_message"),
        ('{"no": "type"}', "invalid_message"),
        ('{"type": "dance"}', "unknown_type"),
        ('{"type": "subscribe", "workspace": "w9"}', "forbidden"),
        ('{"type": "presence.status", "workspace": "w1", "status": "x"}', "not_subscribed"),
        ('{"type": "notifications.read", "ids": "all"}', "invalid_message"),
    ],
)
async def test_bad_messages_get_error_frames_and_the_connection_stays(
    server: RunningServer, message: str, code: str
) -> None:
    """Each bad message gets an error frame with its code; the connection keeps working."""
    async with LiveClient.connect(server.ws, server.token("u1", W1)) as live:
        await live.send(message)
        error = await live.wait_event("error")
        assert error["code"] == code
        await live.send({"type": "ping", "ref": "after"})
        assert (await live.wait_event("pong"))["ref"] == "after"


async def test_status_flood_is_rate_limited(server: RunningServer) -> None:
    """Status changes beyond the burst get `rate_limited` errors; others keep working."""
    async with LiveClient.connect(server.ws, server.token("u1", W1)) as live:
        await live.send({"type": "subscribe", "workspace": "w1"})
        await live.wait_event("presence.snapshot")
        for index in range(8):
            await live.send({"type": "presence.status", "workspace": "w1", "status": str(index)})
        await live.wait_event("error", lambda e: e["code"] == "rate_limited")
        assert len(live.of_type("presence.status.ok")) <= 5


@pytest.mark.parametrize(
    ("payload", "code"),
    [(b"\x00\x01", 1003), ("x" * (70 * 1024), 1009), ("flood", 1008)],
)
async def test_abuse_closes_only_that_connection(
    server: RunningServer, payload: bytes | str, code: int
) -> None:
    """Binary frames, oversized frames and message floods close the connection with a code;
    another user's connection is unaffected."""
    async with (
        LiveClient.connect(server.ws, server.token("u2", W1)) as bystander,
        LiveClient.connect(server.ws, server.token("u1", W1)) as abuser,
    ):
        await abuser.wait_event("notifications.synced")
        if payload == "flood":
            for _ in range(200):
                if abuser.close_code is not None:
                    break
                await abuser.send({"type": "ping"})
        else:
            await abuser.send(payload)
        assert await abuser.wait_closed() == code
        await bystander.send({"type": "ping", "ref": 1})
        await bystander.wait_event("pong")


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"workspace": "w1", "recipients": ["nobody-seen"], "title": "x"}, 403),
        ({"workspace": "w1", "recipients": ["u2", "nobody-seen"], "title": "x"}, 403),
        ({"workspace": "w9", "recipients": ["u2"], "title": "x"}, 403),
        ({"workspace": "w1", "recipients": [], "title": "x"}, 422),
        ({"workspace": "w1", "recipients": ["u2"], "title": ""}, 422),
        ({"workspace": "w1", "recipients": ["u2"], "title": "x" * 201}, 422),
        ({"workspace": "w1", "recipients": ["u2"], "title": "x", "extra": 1}, 422),
        ("not an object", 422),
    ],
)
async def test_posting_notifications_is_validated(
    server: RunningServer, body: Any, status: int
) -> None:
    """Bad notification requests are refused with a JSON error and create nothing."""
    async with LiveClient.connect(server.ws, server.token("u2", W1)) as u2:
        await u2.wait_event("notifications.synced")
        await u2.send({"type": "subscribe", "workspace": "w1"})
        await u2.wait_event("presence.snapshot")
    response = await _post(server, server.token("u1", W1), body)
    assert response.status == status
    async with aiohttp.ClientSession() as http:
        listing = await (
            await http.get(
                f"{server.http}/api/v1/notifications",
                headers={"Authorization": f"Bearer {server.token('u2', W1)}"},
            )
        ).json()
    assert listing["notifications"] == []


async def test_ids_and_counts_that_are_digits_only_to_isdigit_are_refused_not_errors(
    server: RunningServer,
) -> None:
    """ "²" is a digit to `str.isdigit` but not to `int`: a 400 or 404, never a 500."""
    auth = {"Authorization": f"Bearer {server.token('u1', W1)}"}
    async with aiohttp.ClientSession() as http:
        for method, path, expected in (
            ("GET", "/api/v1/notifications?after=\u00b2", 400),
            ("GET", "/api/v1/notifications?limit=\u00b2", 400),
            ("POST", "/api/v1/notifications/\u00b2/read", 404),
            ("GET", f"/ws/live?after=\u00b2&token={server.token('u1', W1)}", 400),
        ):
            async with http.request(method, f"{server.http}{path}", headers=auth) as response:
                assert response.status == expected, (path, await response.text())
