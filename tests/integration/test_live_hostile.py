"""The live channel, the notifications REST API and presence under odd input: token claims
that hold half of a UTF-16 surrogate pair, ids no store holds, `ref`s, an `after` past every
id, tokens naming many workspaces, and Redis going down."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.conftest import RunningServer
from tests.support.live import LiveClient
from tests.support.yclient import YClient

W1 = {"w1": "editor"}
# A display name cut in the middle of an emoji by a UTF-16 `slice` (as JavaScript identity
# providers do): a lone high surrogate. Python's json (PyJWT) decodes "\ud83d" to it.
TRUNCATED_NAME = "Ann \ud83d"


async def _post(server: RunningServer, token: str, body: Any) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http:
        response = await http.post(
            f"{server.http}/api/v1/notifications",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
        )
        return response.status, await response.text()


async def _make_member(server: RunningServer, user: str, workspaces: dict[str, str]) -> None:
    """Be seen by the server with a role (the member directory records the user)."""
    async with aiohttp.ClientSession() as http:
        response = await http.get(
            f"{server.http}/api/v1/notifications",
            headers={"Authorization": f"Bearer {server.token(user, workspaces)}"},
        )
        assert response.status == 200, await response.text()


# -- 2. a display name with a lone surrogate (token `name`) ---------------------------------


async def test_live_connection_of_a_user_whose_name_has_a_lone_surrogate_works(
    server: RunningServer,
) -> None:
    """The token is valid (PyJWT accepts it): the connection is welcomed and synced. The
    connection's task died encoding the `welcome` frame, the socket open and silent."""
    token = server.token("u1", W1, name=TRUNCATED_NAME)
    async with LiveClient.connect(server.ws, token) as live:
        welcome = await live.wait_event("welcome")
        await live.send({"type": "ping", "ref": 1})
        await live.wait_event("pong")
        await live.wait_event("notifications.synced")
    assert welcome["name"] == "Ann \ufffd"  # the half pair shown as U+FFFD


async def test_posting_a_notification_from_a_user_whose_name_has_a_lone_surrogate(
    server: RunningServer,
) -> None:
    """A sender with a valid token whose `name` holds a lone surrogate: 201, not a 500 from
    encoding `actor_name` into the payload."""
    await _make_member(server, "u2", W1)
    status, text = await _post(
        server,
        server.token("u1", W1, name=TRUNCATED_NAME),
        {"workspace": "w1", "recipients": ["u2"], "title": "hi"},
    )
    assert status == 201, (status, text)


async def test_presence_survives_a_member_whose_name_has_a_lone_surrogate(
    server: RunningServer,
) -> None:
    """One member with such a name opens a note: the other members of the workspace must
    still get their `presence.snapshot` and the REST snapshot must answer (200), not have
    their live connection closed with 1011 or the REST call answer 500."""
    odd = server.token("u9", W1, name=TRUNCATED_NAME)
    async with YClient.connect(server.doc_url("w1/n1", token=odd)) as doc:
        await doc.wait_synced()
        async with LiveClient.connect(server.ws, server.token("u1", W1, name="Una")) as watcher:
            await watcher.wait_event("notifications.synced")
            await watcher.send({"type": "subscribe", "workspace": "w1", "ref": "s"})
            await watcher.wait_for(
                lambda c: bool(c.of_type("presence.snapshot")) or c.close_code is not None,
                what="a snapshot or a close",
            )
            assert watcher.close_code is None, watcher.close_code
            async with aiohttp.ClientSession() as http:
                response = await http.get(
                    f"{server.http}/api/v1/workspaces/w1/presence",
                    headers={"Authorization": f"Bearer {server.token('u1', W1)}"},
                )
                assert response.status == 200, await response.text()


# -- 3. `ref` on notifications.read ---------------------------------------------------------


async def test_notifications_read_reply_carries_the_ref(server: RunningServer) -> None:
    """docs/live-protocol.md: "Any client message may carry a `ref` (any JSON value); the
    reply or error it causes carries the same `ref`", and the reply to `notifications.read`
    (and `notifications.read_all`) is a `notifications.read` frame. The sender's copy has no
    `ref`."""
    await _make_member(server, "u2", W1)
    async with LiveClient.connect(server.ws, server.token("u2", W1)) as live:
        await live.wait_event("notifications.synced")
        status, text = await _post(
            server, server.token("u1", W1), {"workspace": "w1", "recipients": ["u2"], "title": "a"}
        )
        assert status == 201, text
        notification = await live.wait_event("notification")
        await live.send(
            {"type": "notifications.read", "ids": [notification["notification"]["id"]], "ref": 7}
        )
        reply = await live.wait_event("notifications.read")
        assert reply.get("ref") == 7, reply
        await live.send({"type": "notifications.read_all", "ref": "all"})
        await live.wait_for(lambda c: len(c.of_type("notifications.read")) == 2, what="second")
        assert live.of_type("notifications.read")[1].get("ref") == "all"


# -- 4. `after` beyond the newest id --------------------------------------------------------


async def test_new_notifications_are_pushed_whatever_after_said(server: RunningServer) -> None:
    """ "On connect the server replays every notification with a larger id, then pushes new
    ones live." A client resuming with an `after` above every id (its stored id came from
    a database since restored from a backup, say) is synced with `last_id` = that `after`, and
    then never receives a new notification on this connection: pushes with a smaller id are
    taken for duplicates."""
    await _make_member(server, "u2", W1)
    async with LiveClient.connect(server.ws, server.token("u2", W1), after=10**17) as live:
        await live.wait_event("notifications.synced")
        status, text = await _post(
            server, server.token("u1", W1), {"workspace": "w1", "recipients": ["u2"], "title": "x"}
        )
        assert status == 201, text
        # The push is queued before the POST answers; the pong comes after it on the socket.
        await live.send({"type": "ping", "ref": "marker"})
        await live.wait_event("pong")
        assert [e["notification"]["payload"]["title"] for e in live.of_type("notification")] == [
            "x"
        ]


# -- 5. the presence store (Redis) down -----------------------------------------------------


@pytest.mark.parametrize("backend", ["embedded"])
async def test_presence_store_down_gives_unavailable_not_internal_errors(
    start_server: Any, fresh_redis: Any
) -> None:
    """With Redis (the presence store and bus) down, docs/live-protocol.md promises an `error`
    `unavailable` frame ("the store is down", the connection stays open), and the README a
    503 for a REST call whose backend failed. A repeated `subscribe` instead closes the live
    connection with 1011 "internal error", and `GET …/presence` answers 500."""
    from tests.conftest import make_settings

    server = await start_server(make_settings(redis_url=fresh_redis.url))
    try:
        async with LiveClient.connect(server.ws, server.token("u1", W1)) as live:
            await live.wait_event("notifications.synced")
            await live.send({"type": "subscribe", "workspace": "w1", "ref": 1})
            await live.wait_event("presence.snapshot")
            await fresh_redis.stop()
            async with aiohttp.ClientSession() as http:
                response = await http.get(
                    f"{server.http}/api/v1/workspaces/w1/presence",
                    headers={"Authorization": f"Bearer {server.token('u1', W1)}"},
                )
                rest_status = response.status
            await live.send({"type": "subscribe", "workspace": "w1", "ref": 2})
            await live.wait_for(
                lambda c: any(e.get("ref") == 2 for e in c.events) or c.close_code is not None,
                timeout=30,
                what="an answer to the second subscribe",
            )
            closed = live.close_code
            answers = [e for e in live.events if e.get("ref") == 2]
    finally:
        await fresh_redis.start()
    assert closed is None, f"live connection closed with {closed}; REST presence: {rest_status}"
    assert answers, "no answer to the second subscribe"
    assert answers[0]["type"] in ("error", "presence.snapshot"), answers
    if answers[0]["type"] == "error":
        assert answers[0]["code"] == "unavailable", answers
    assert rest_status == 503, rest_status


# -- 6. `subscribe` records the user as a member --------------------------------------------


async def test_subscribe_records_the_user_as_a_member_of_that_workspace(
    server: RunningServer,
) -> None:
    """docs/live-protocol.md, `subscribe`: "needs a role in the workspace; records the user
    as a member". The connection records at most 32 of the token's workspaces; a user whose
    token names 40 and who subscribes to the 40th is not recorded there, so a member of it
    cannot notify them (403 "not members")."""
    many = {f"w{i:02d}": "editor" for i in range(40)}
    async with LiveClient.connect(server.ws, server.token("u2", many)) as live:
        await live.wait_event("notifications.synced")
        await live.send({"type": "subscribe", "workspace": "w39", "ref": 1})
        await live.wait_event("presence.snapshot")
        status, text = await _post(
            server,
            server.token("u1", {"w39": "editor"}),
            {"workspace": "w39", "recipients": ["u2"], "title": "hello"},
        )
        assert status == 201, (status, text)


async def test_a_user_id_with_a_lone_surrogate_is_refused_as_a_bad_token(
    server: RunningServer,
) -> None:
    """No store or encoder takes a `sub` holding a lone surrogate: a bad token (401), not a
    503 from every call."""
    token = server.token("u\ud800", W1)
    async with aiohttp.ClientSession() as http:
        response = await http.get(
            f"{server.http}/api/v1/notifications", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status == 401, (response.status, await response.text())


async def test_an_error_for_a_bad_type_carries_the_ref(server: RunningServer) -> None:
    """ "the reply or error it causes carries the same `ref`": a JSON object with a `ref` but
    no string `type` gets its `invalid_message` error without the `ref` (it is read only
    after the type was checked)."""
    async with LiveClient.connect(server.ws, server.token("u1", W1)) as live:
        await live.wait_event("notifications.synced")
        await live.send({"ref": "r-5", "type": 7})
        error = await live.wait_event("error")
        assert error["code"] == "invalid_message"
        assert error.get("ref") == "r-5", error


async def test_a_dead_live_connection_does_not_keep_its_users_connection_slot(
    start_server: Any,
) -> None:
    """Connections are counted "while their socket lives" (README, Limits). The live
    connections of a token whose `name` holds a lone surrogate die before the task's cleanup
    (`_serve` raised sending `welcome`, outside its try/finally), and their slots were never
    released: after COLLAB_MAX_CONNECTIONS_PER_USER of them, closed by the client, the user
    was refused with 429 even with a good token."""
    from tests.conftest import make_settings

    server = await start_server(make_settings(max_connections_per_user=2))
    for _ in range(2):
        async with LiveClient.connect(
            server.ws, server.token("u1", W1, name=TRUNCATED_NAME)
        ) as live:
            await live.wait_event("notifications.synced")
    async with LiveClient.connect(server.ws, server.token("u1", W1, name="Una")) as live:
        await live.wait_event("notifications.synced")


async def test_a_workspace_id_with_a_lone_surrogate_is_refused_as_a_bad_token(
    server: RunningServer,
) -> None:
    token = server.token("u1", {"w1": "editor", "w\ud800": "editor"})
    async with aiohttp.ClientSession() as http:
        response = await http.get(
            f"{server.http}/api/v1/notifications", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status == 401, (response.status, await response.text())
        assert "'workspaces'" in (await response.json())["error"]["message"]
