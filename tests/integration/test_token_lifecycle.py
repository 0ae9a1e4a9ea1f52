"""Tokens on open sockets: expiry closes with 4401, in-band refresh, and operator revocation
(4403 on every instance, 403 for new connections until the revocation ends)."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import aiohttp
import pytest
from pycrdt import Text
from websockets.exceptions import InvalidStatus

from collab.protocol.close_codes import CloseCode
from collab.protocol.messages import encode_token_refresh
from collab.settings import Secret
from collab.web.keys import VERIFIER
from tests.conftest import RunningServer, StartServer, make_settings, token_for
from tests.support.live import LiveClient
from tests.support.servers import clean_environ
from tests.support.waiting import eventually, scaled
from tests.support.yclient import YClient

ADMIN_TOKEN = "admin-token-for-collab-tests-0123456789"


def short_lived_settings(**changes: Any) -> Any:
    # No leeway: the socket closes at `exp` itself, so a short token closes soon.
    return make_settings(jwt_leeway_s=0, admin_token=Secret(ADMIN_TOKEN), **changes)


# Long enough to connect and sync before it ends on a loaded machine (`exp` is whole seconds,
# so a token of N seconds lives between N - 1 and N).
SHORT_TTL_S = 5


async def past(moment: float) -> None:
    """Wait (bounded) until the wall clock is past `moment`."""
    await eventually(lambda: time.time() > moment, timeout=30, what=f"time past {moment}")


# --- expiry and refresh on /ws/docs -------------------------------------------------------


async def test_expired_token_closes_the_docs_socket_with_4401(start_server: StartServer) -> None:
    """A socket whose token expires is closed with 4401 and a reason telling to reconnect."""
    server = await start_server(short_lived_settings())
    token = token_for(server.settings, ttl_s=SHORT_TTL_S)
    async with YClient.connect(server.doc_url(token=token)) as client:
        await client.wait_synced()
        assert await client.wait_closed(timeout=30) == CloseCode.TOKEN_EXPIRED
        assert client.close_reason == "token expired; reconnect with a fresh token"


async def test_refresh_keeps_the_docs_socket_open_past_the_first_expiry(
    start_server: StartServer,
) -> None:
    """A client that sends `[2][1][token]` with a fresh token stays connected and keeps
    editing after its first token's `exp`; the server answers the refresh with nothing."""
    server = await start_server(short_lived_settings())
    first = token_for(server.settings, ttl_s=SHORT_TTL_S)
    first_expires = time.time() + SHORT_TTL_S
    async with (
        YClient.connect(server.doc_url(token=first)) as client,
        YClient.connect(server.doc_url(sub="u2")) as other,
    ):
        await client.wait_synced()
        await other.wait_synced()
        await client.send_raw(encode_token_refresh(token_for(server.settings, ttl_s=3600)))
        await past(first_expires + 1)
        client.doc.get("t", type=Text).insert(0, "still here")
        await other.wait_until(lambda: str(other.doc.get("t", type=Text)) == "still here")
        assert not client.closed
        assert client.permission_denied == []


async def test_refresh_to_viewer_stops_relaying_the_clients_edits(
    start_server: StartServer,
) -> None:
    """A refreshed token with a lower role takes effect at once: the editor-turned-viewer's
    updates are no longer applied, while its connection stays open."""
    server = await start_server(short_lived_settings())
    async with (
        YClient.connect(server.doc_url()) as client,
        YClient.connect(server.doc_url(sub="u2")) as other,
    ):
        await client.wait_synced()
        await other.wait_synced()
        viewer = token_for(server.settings, workspaces={"w1": "viewer"})
        await client.send_raw(encode_token_refresh(viewer))
        client.doc.get("t", type=Text).insert(0, "ignored")
        # A marker edit from `other` comes back through the server after the viewer's edit
        # was processed (frames of one connection are handled in order).
        await client.flush()
        other.doc.get("m", type=Text).insert(0, "marker")
        await client.wait_until(lambda: str(client.doc.get("m", type=Text)) == "marker")
        async with YClient.connect(server.doc_url(sub="u3")) as late:
            await late.wait_until(lambda: str(late.doc.get("m", type=Text)) == "marker")
            assert str(late.doc.get("t", type=Text)) == ""
        assert not client.closed


@pytest.mark.parametrize(
    ("grants", "sub", "code", "reason"),
    [
        ({"w2": "editor"}, "u1", CloseCode.FORBIDDEN, "grants no role in workspace 'w1'"),
        ({"w1": "editor"}, "u9", CloseCode.FORBIDDEN, "the token is for another user"),
    ],
)
async def test_refresh_that_loses_access_closes_with_4403(
    start_server: StartServer, grants: dict[str, str], sub: str, code: int, reason: str
) -> None:
    """A refreshed token without a role in the document's workspace, or for another user,
    gets y-protocols' permission-denied message and a 4403 close."""
    server = await start_server(short_lived_settings())
    async with YClient.connect(server.doc_url()) as client:
        await client.wait_synced()
        await client.send_raw(encode_token_refresh(token_for(server.settings, sub, grants)))
        assert await client.wait_closed() == code
        assert reason in (client.close_reason or "")
        assert any(reason in denied for denied in client.permission_denied)


async def test_refresh_with_an_invalid_token_closes_with_4401(server: RunningServer) -> None:
    """A refresh carrying an expired or forged token closes with 4401, saying why."""
    async with YClient.connect(server.doc_url()) as client:
        await client.wait_synced()
        await client.send_raw(encode_token_refresh(token_for(server.settings, ttl_s=-3600)))
        assert await client.wait_closed() == CloseCode.TOKEN_EXPIRED
        assert client.close_reason == "refresh refused: token expired"


async def test_auth_message_of_another_sub_type_closes_with_1003(server: RunningServer) -> None:
    """A client may only send auth sub-type 1; sub-type 0 (the server's) closes with 1003."""
    async with YClient.connect(server.doc_url()) as client:
        await client.wait_synced()
        await client.send_raw(b"\x02\x00\x02no")
        assert await client.wait_closed() == CloseCode.UNSUPPORTED_DATA


# --- expiry and refresh on /ws/live -------------------------------------------------------


async def test_expired_token_closes_the_live_socket_with_4401(start_server: StartServer) -> None:
    """A live-channel socket whose token expires is closed with 4401."""
    server = await start_server(short_lived_settings())
    async with LiveClient.connect(
        server.ws, token_for(server.settings, ttl_s=SHORT_TTL_S)
    ) as client:
        await client.wait_event("welcome")
        assert await client.wait_closed(timeout=30) == CloseCode.TOKEN_EXPIRED


async def test_live_refresh_keeps_the_socket_open_past_the_first_expiry(
    start_server: StartServer,
) -> None:
    """`{"type": "refresh", "token": ...}` is answered with `refreshed` and the new `exp`;
    the socket still answers a ping after the first token expired."""
    server = await start_server(short_lived_settings())
    first_expires = time.time() + SHORT_TTL_S
    async with LiveClient.connect(
        server.ws, token_for(server.settings, ttl_s=SHORT_TTL_S)
    ) as client:
        await client.wait_event("welcome")
        fresh = token_for(server.settings, ttl_s=3600)
        await client.send({"type": "refresh", "token": fresh, "ref": 1})
        refreshed = await client.wait_event("refreshed")
        assert refreshed["ref"] == 1
        assert refreshed["expires_at"] > time.time() + 3000
        await past(first_expires + 1)
        await client.send({"type": "ping", "ref": 2})
        await client.wait_event("pong", lambda e: e.get("ref") == 2)
        assert client.close_code is None


async def test_live_refresh_losing_a_subscribed_workspace_closes_with_4403(
    server: RunningServer,
) -> None:
    """A live refresh whose token lost the role in a subscribed workspace gets an error
    frame and a 4403 close."""
    async with LiveClient.connect(server.ws, server.token()) as client:
        await client.send({"type": "subscribe", "workspace": "w1"})
        await client.wait_event("presence.snapshot")
        await client.send({"type": "refresh", "token": server.token(workspaces={"w2": "owner"})})
        assert await client.wait_closed() == CloseCode.FORBIDDEN
        error = client.of_type("error")[-1]
        assert error["code"] == "forbidden"
        assert "no role in subscribed workspace 'w1'" in error["message"]


# --- revocation ---------------------------------------------------------------------------


async def revoke(server: RunningServer, body: dict[str, Any], token: str = ADMIN_TOKEN) -> Any:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{server.http}/api/v1/admin/revocations",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
        ) as response,
    ):
        return response.status, await response.json()


async def test_revocation_closes_sockets_on_every_instance_and_denies_new_ones(
    start_server: StartServer,
) -> None:
    """Revoking a user on A closes its docs socket on A and live socket on B with 4403,
    leaves other users connected, and refuses its new connections on A, B and an instance
    started afterwards with 403, until the revocation is lifted."""
    settings = short_lived_settings()
    a = await start_server(settings)
    b = await start_server(settings)
    async with (
        YClient.connect(a.doc_url()) as on_a,
        LiveClient.connect(b.ws, b.token()) as on_b,
        YClient.connect(b.doc_url(sub="u2")) as bystander,
    ):
        await on_a.wait_synced()
        await on_b.wait_event("welcome")
        await bystander.wait_synced()
        status, body = await revoke(a, {"user": "u1", "until": 3600})
        assert status == 201
        assert body["active"] is True
        assert await on_a.wait_closed() == CloseCode.FORBIDDEN
        assert on_a.close_reason == "access revoked"
        assert await on_b.wait_closed() == CloseCode.FORBIDDEN
        assert not bystander.closed
        for server in (a, b, await start_server(settings)):
            with pytest.raises(InvalidStatus) as refused:
                async with YClient.connect(server.doc_url()):
                    pass
            assert refused.value.response.status_code == 403
            assert b"access revoked until" in refused.value.response.body
        status, body = await revoke(b, {"user": "u1", "until": 0})
        assert (status, body["active"]) == (200, False)
        # A hears of the lift over the bus, a moment after B answered.
        await eventually(
            lambda: a.app[VERIFIER].revocations.revoked_until("u1") is None,
            what="instance A lifts the revocation",
        )
        for server in (a, b):
            async with YClient.connect(server.doc_url()) as again:
                await again.wait_synced()


async def test_revocation_ends_at_its_until(start_server: StartServer) -> None:
    """A revocation given as an ISO time denies new connections only until that time."""
    server = await start_server(short_lived_settings())
    # Long enough that the refused connection below surely comes before it, on a slow machine
    # too (two seconds was not).
    until = time.time() + scaled(6)
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(until + 1))
    assert (await revoke(server, {"user": "u1", "until": iso}))[0] == 201
    with pytest.raises(InvalidStatus):
        async with YClient.connect(server.doc_url()):
            pass
    await past(until + 1)
    async with YClient.connect(server.doc_url()) as client:
        await client.wait_synced()


@pytest.mark.parametrize(
    ("token", "body", "status", "message"),
    [
        (None, {"user": "u1", "until": 60}, 401, "Authorization: Bearer"),
        ("wrong-token-" + "x" * 30, {"user": "u1", "until": 60}, 403, "wrong admin token"),
        (ADMIN_TOKEN, {"user": "", "until": 60}, 400, "'user' must be a user id"),
        (ADMIN_TOKEN, {"user": "u1", "until": "tomorrow"}, 400, "ISO-8601 time with a timezone"),
        (ADMIN_TOKEN, {"user": "u1", "until": "2030-01-01T00:00:00"}, 400, "needs a timezone"),
        (ADMIN_TOKEN, {"user": "u1", "until": 10**12}, 400, "within 10 years"),
        (ADMIN_TOKEN, {"user": "u1"}, 400, "'until' must be"),
    ],
)
async def test_bad_revocation_requests_are_refused(
    start_server: StartServer,
    token: str | None,
    body: dict[str, Any],
    status: int,
    message: str,
) -> None:
    """Missing or wrong admin tokens and malformed bodies get a precise error, and revoke
    nothing."""
    server = await start_server(short_lived_settings())
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{server.http}/api/v1/admin/revocations", json=body, headers=headers
        ) as response,
    ):
        assert response.status == status
        assert message in (await response.json())["error"]["message"]
    async with YClient.connect(server.doc_url()) as client:
        await client.wait_synced()


async def test_admin_api_is_off_without_an_admin_token(server: RunningServer) -> None:
    """Without COLLAB_ADMIN_TOKEN the endpoint answers 404 and says how to enable it."""
    status, body = await revoke(server, {"user": "u1", "until": 60})
    assert status == 404
    assert "set COLLAB_ADMIN_TOKEN" in body["error"]["message"]


async def run_cli(*args: str, admin_token: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "collab",
        *args,
        env={**clean_environ(), "COLLAB_ADMIN_TOKEN": admin_token},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), scaled(30))
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_cli_revoke_calls_the_admin_endpoint(start_server: StartServer) -> None:
    """`collab revoke --user U --until S --url URL` revokes through the endpoint (exit 0);
    with a wrong admin token it exits 1 and prints the server's reason."""
    server = await start_server(short_lived_settings())
    revoke_u2 = ("revoke", "--user", "u2", "--until", "3600", "--url", server.http)
    code, _, err = await run_cli(*revoke_u2, admin_token="not-the-admin-token-" + "y" * 20)
    assert (code, err.strip()) == (1, "collab revoke: HTTP 403: wrong admin token")
    async with YClient.connect(server.doc_url(sub="u2")) as client:
        await client.wait_synced()
        code, out, err = await run_cli(*revoke_u2, admin_token=ADMIN_TOKEN)
        assert code == 0, err
        assert out.startswith("revoked u2 until ")
        assert await client.wait_closed() == CloseCode.FORBIDDEN
