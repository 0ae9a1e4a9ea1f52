"""REST: snapshots, server-side updates, health and JSON errors."""

from __future__ import annotations

import aiohttp
import pytest
from pycrdt import Array, Doc, Map, Text, XmlElement, XmlFragment, XmlText

from collab.errors import StoreError
from collab.store.memory import MemoryStore
from tests.conftest import RunningServer, StartServer, make_settings
from tests.support.waiting import eventually
from tests.support.yclient import YClient


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _note_update() -> bytes:
    doc = Doc()
    meta = doc.get("meta", type=Map)
    meta["title"] = "Plan"
    meta["assignees"] = Array(["u2"])
    meta["pinned"] = True
    body = doc.get("body", type=XmlFragment)
    body.children.append(XmlElement("paragraph", {}, [XmlText("hello @u2")]))
    doc.get("extra", type=Text).insert(0, "kept")
    return doc.get_update()


async def test_snapshot_json_shows_every_root_type(server: RunningServer) -> None:
    """GET returns text as a string, maps as objects, arrays as lists and XML as a string."""
    async with aiohttp.ClientSession() as http:
        response = await http.post(
            f"{server.http}/api/v1/docs/w1/n1/updates",
            data=_note_update(),
            headers={**_auth(server.token()), "Content-Type": "application/octet-stream"},
        )
        assert response.status == 200
        assert (await response.json())["changed"] is True
        response = await http.get(f"{server.http}/api/v1/docs/w1/n1", headers=_auth(server.token()))
        assert response.status == 200
        body = await response.json()
    assert body["roots"] == {
        "meta": {"title": "Plan", "assignees": ["u2"], "pinned": True},
        "body": "<paragraph>hello @u2</paragraph>",
        "extra": "kept",
    }


async def test_snapshot_etag_and_if_none_match(server: RunningServer) -> None:
    """The ETag changes with the document; If-None-Match with the current tag gets 304."""
    headers = _auth(server.token())
    async with aiohttp.ClientSession() as http:
        first = await http.get(f"{server.http}/api/v1/docs/w1/n1", headers=headers)
        etag = first.headers["ETag"]
        again = await http.get(
            f"{server.http}/api/v1/docs/w1/n1", headers={**headers, "If-None-Match": etag}
        )
        assert again.status == 304
        await http.post(
            f"{server.http}/api/v1/docs/w1/n1/updates",
            data=_note_update(),
            headers={**headers, "Content-Type": "application/octet-stream"},
        )
        changed = await http.get(
            f"{server.http}/api/v1/docs/w1/n1", headers={**headers, "If-None-Match": etag}
        )
        assert changed.status == 200
        assert changed.headers["ETag"] != etag


async def test_binary_snapshot_is_a_yjs_update_of_the_whole_state(server: RunningServer) -> None:
    """With Accept: application/octet-stream the body is the state as one Yjs v1 update."""
    async with YClient.connect(server.doc_url()) as client:
        await client.wait_synced()
        client.doc.get("t", type=Text).insert(0, "binary me")
        await client.flush()
        doc = Doc()
        async with aiohttp.ClientSession() as http:

            async def served_state_has_the_edit() -> bool:
                response = await http.get(
                    f"{server.http}/api/v1/docs/w1/n1",
                    headers={**_auth(server.token()), "Accept": "application/octet-stream"},
                )
                assert response.content_type == "application/octet-stream"
                doc.apply_update(await response.read())
                return str(doc.get("t", type=Text)) == "binary me"

            await eventually(served_state_has_the_edit, what="REST serves the edit")
        assert str(doc.get("t", type=Text)) == "binary me"


async def test_posted_update_reaches_live_clients(server: RunningServer) -> None:
    """An update applied over REST is received by connected clients like any edit."""
    async with YClient.connect(server.doc_url()) as client:
        await client.wait_synced()
        async with aiohttp.ClientSession() as http:
            response = await http.post(
                f"{server.http}/api/v1/docs/w1/n1/updates",
                data=_note_update(),
                headers={**_auth(server.token()), "Content-Type": "application/octet-stream"},
            )
            assert response.status == 200
        await client.wait_until(lambda: client.doc.get("meta", type=Map).get("title") == "Plan")


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("no token", 401, "unauthorized"),
        ("viewer posts", 403, "forbidden"),
        ("other workspace", 403, "forbidden"),
        ("garbage update", 400, "invalid_input"),
        ("wrong content type", 415, "unsupported_media_type"),
        ("empty body", 400, "bad_request"),
        ("too large", 413, "request_entity_too_large"),
        ("bad note id", 404, "not_found"),
    ],
)
async def test_rest_errors_are_json_with_the_right_status(
    start_server: StartServer, case: str, status: int, code: str
) -> None:
    """Each kind of bad request gets its status and a JSON error body."""
    server = await start_server(make_settings(max_request_bytes=2048))
    url = f"{server.http}/api/v1/docs/w1/n1/updates"
    binary = {"Content-Type": "application/octet-stream"}
    requests = {
        "no token": (url, _note_update(), binary),
        "viewer posts": (
            url,
            _note_update(),
            {**binary, **_auth(server.token("v", {"w1": "viewer"}))},
        ),
        "other workspace": (
            url,
            _note_update(),
            {**binary, **_auth(server.token("u", {"w9": "owner"}))},
        ),
        "garbage update": (url, b"\x01\x02\x03", {**binary, **_auth(server.token())}),
        "wrong content type": (
            url,
            b"{}",
            {"Content-Type": "application/json", **_auth(server.token())},
        ),
        "empty body": (url, b"", {**binary, **_auth(server.token())}),
        "too large": (url, b"\x00" * 4096, {**binary, **_auth(server.token())}),
        "bad note id": (
            f"{server.http}/api/v1/docs/w1/%24bad/updates",
            _note_update(),
            {**binary, **_auth(server.token())},
        ),
    }
    target, data, headers = requests[case]
    async with aiohttp.ClientSession() as http:
        response = await http.post(target, data=data, headers=headers)
        assert response.status == status
        body = await response.json()
    assert body["error"]["code"] == code
    assert body["error"]["message"]


async def test_health_and_readiness(start_server: StartServer) -> None:
    """/healthz answers while the process runs; /readyz reports a failing store with 503."""
    store = MemoryStore()
    server = await start_server(store=store)
    async with aiohttp.ClientSession() as http:

        async def ready() -> bool:
            return (await http.get(f"{server.http}/readyz")).status == 200

        assert (await http.get(f"{server.http}/healthz")).status == 200
        await eventually(ready, what="ready once the bus has connected")
        store.fail_with = StoreError("database unreachable")
        response = await http.get(f"{server.http}/readyz")
        assert response.status == 503
        assert "database unreachable" in (await response.json())["checks"]["store"]
        store.fail_with = None
        assert await ready()


async def test_unknown_route_is_a_json_404(server: RunningServer) -> None:
    """Unknown URLs get a JSON error, like every other failure."""
    async with aiohttp.ClientSession() as http:
        response = await http.get(f"{server.http}/api/v1/nope")
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "not_found"


async def test_demo_sign_in_exists_only_in_dev_mode(start_server: StartServer) -> None:
    """Without COLLAB_DEV_MODE the token endpoint is a 404; with it, it issues a token the
    server accepts for the requested workspace only."""
    plain = await start_server()
    dev = await start_server(make_settings(dev_mode=True))
    async with aiohttp.ClientSession() as http:
        for path in ("/api/v1/dev/config", "/api/v1/dev/token"):
            response = await http.request(
                "GET" if path.endswith("config") else "POST", f"{plain.http}{path}", json={}
            )
            assert response.status == 404
        assert (await (await http.get(f"{dev.http}/api/v1/dev/config")).json())["dev_mode"]
        response = await http.post(
            f"{dev.http}/api/v1/dev/token", json={"sub": "carol", "name": "Carol"}
        )
        token = (await response.json())["token"]
        ok = await http.get(f"{dev.http}/api/v1/docs/w1/n1", headers=_auth(token))
        assert ok.status == 200
        other = await http.get(f"{dev.http}/api/v1/docs/w2/n1", headers=_auth(token))
        assert other.status == 403
        bad = await http.post(f"{dev.http}/api/v1/dev/token", json={"sub": "no spaces"})
        assert bad.status == 422
