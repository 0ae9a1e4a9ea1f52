"""Bad input closes only the offending connection, with a close code and a reason."""

from __future__ import annotations

import pytest
from pycrdt import Doc, Text, create_update_message

from collab.protocol.close_codes import CloseCode
from collab.protocol.messages import AwarenessEntry, encode_awareness
from collab.web.keys import CONNECTIONS, PRESENCE, ROOMS
from tests.conftest import RunningServer, StartServer, make_settings
from tests.support.waiting import eventually
from tests.support.yclient import YClient, assert_room_still_syncs


def _valid_update() -> bytes:
    doc = Doc()
    doc.get("t", type=Text).insert(0, "ok")
    return doc.get_update()


BAD_FRAMES: dict[str, tuple[bytes | str, CloseCode]] = {
    "text frame": ("hello", CloseCode.UNSUPPORTED_DATA),
    "unknown message type": (b"\x07\x00", CloseCode.UNSUPPORTED_DATA),
    "auth message from a client": (b"\x02\x00", CloseCode.UNSUPPORTED_DATA),
    "empty frame": (b"", CloseCode.INVALID_PAYLOAD),
    "truncated sync message": (b"\x00\x02\x10\x01", CloseCode.INVALID_PAYLOAD),
    "garbage update": (b"\x00\x02\x05\xff\xff\xff\xff\xff", CloseCode.INVALID_PAYLOAD),
    "truncated valid update": (
        create_update_message(_valid_update())[:-3],
        CloseCode.INVALID_PAYLOAD,
    ),
    "awareness state not json": (
        b"\x01\x06\x01\x05\x01\x02{x",
        CloseCode.INVALID_PAYLOAD,
    ),
    "overlong varint": (b"\xff" * 12, CloseCode.INVALID_PAYLOAD),
}


@pytest.mark.parametrize("case", sorted(BAD_FRAMES))
async def test_bad_frame_closes_only_that_connection(server: RunningServer, case: str) -> None:
    """The sender is closed with a fitting code and a reason; the room keeps syncing."""
    frame, expected_code = BAD_FRAMES[case]
    async with (
        YClient.connect(server.doc_url()) as good_a,
        YClient.connect(server.doc_url()) as good_b,
        YClient.connect(server.doc_url()) as bad,
    ):
        for client in (good_a, good_b, bad):
            await client.wait_synced()
        await bad.send_raw(frame)
        code = await bad.wait_closed()
        assert code == expected_code
        assert bad.close_reason
        good_a.doc.get("t", type=Text).insert(0, "still works")
        await good_b.wait_until(lambda: str(good_b.doc.get("t", type=Text)) == "still works")
        for client in (good_a, good_b):
            assert all(kind in (0, 1) for kind, _ in client.received)


async def test_oversized_message_is_closed_with_1009(start_server: StartServer) -> None:
    """A message above the configured limit closes the connection with 1009 and a reason."""
    server = await start_server(make_settings(max_message_bytes=4096))
    async with YClient.connect(server.doc_url()) as big, YClient.connect(server.doc_url()) as other:
        await big.wait_synced()
        await other.wait_synced()
        doc = Doc()
        doc.get("t", type=Text).insert(0, "x" * 10_000)
        await big.send_raw(create_update_message(doc.get_update()))
        assert await big.wait_closed() == CloseCode.MESSAGE_TOO_BIG
        assert "4096" in (big.close_reason or "")
        await assert_room_still_syncs(other, server.doc_url(), "fine")


async def test_the_size_limit_applies_to_the_decompressed_message(
    start_server: StartServer,
) -> None:
    """With permessage-deflate on, a message that is small on the wire but larger than the
    limit once inflated is closed with 1009 like any other oversized message."""
    server = await start_server(make_settings(max_message_bytes=4096, ws_compression=True))
    async with YClient.connect(server.doc_url(), compression="deflate") as big:
        await big.wait_synced()
        negotiated = big._ws.response.headers.get("Sec-WebSocket-Extensions", "")
        assert "permessage-deflate" in negotiated
        doc = Doc()
        # 10,000 identical characters deflate to well under the 4096-byte limit on the wire.
        doc.get("t", type=Text).insert(0, "x" * 10_000)
        await big.send_raw(create_update_message(doc.get_update()))
        assert await big.wait_closed() == CloseCode.MESSAGE_TOO_BIG
        assert "4096" in (big.close_reason or "")


async def test_too_many_awareness_ids_is_a_policy_violation(server: RunningServer) -> None:
    """A connection introducing more awareness ids than allowed is closed with 1008."""
    entries = [AwarenessEntry(1000 + i, 1, '{"n":1}') for i in range(40)]
    async with YClient.connect(server.doc_url()) as client:
        await client.wait_synced()
        await client.send_raw(encode_awareness(entries))
        assert await client.wait_closed() == CloseCode.POLICY_VIOLATION


async def test_slow_consumer_is_disconnected_and_others_are_unaffected(
    start_server: StartServer,
) -> None:
    """A client that stops reading is closed with 1013 once over its outbox bound; the rest
    of its room keeps receiving."""
    # The writer sends hundreds of 16 kB edits a second on purpose: no apply-time budget.
    server = await start_server(
        make_settings(outbox_max_frames=50, outbox_max_bytes=256 * 1024, apply_ms_per_s=0)
    )
    async with (
        YClient.connect(server.doc_url()) as writer,
        YClient.connect(server.doc_url()) as reader,
        YClient.connect(server.doc_url(), recv_buffer_bytes=4096) as stalled,
    ):
        for client in (writer, reader, stalled):
            await client.wait_synced()
        stalled.pause_reading()
        manager = server.app[ROOMS]
        text = writer.doc.get("t", type=Text)
        # Large chunks fill the kernel's socket buffers (up to tcp_wmem's 4 MiB) in a few
        # hundred edits.
        chunk = "y" * 16_000
        for _ in range(2000):
            text.insert(len(text), chunk)
            await writer.flush()
            if manager.slow_consumer_disconnects:
                break
        assert manager.slow_consumer_disconnects == 1
        # Reading again right away lets the stalled client answer the server's close frame
        # within the server's close timeout.
        stalled.resume_reading()
        assert await stalled.wait_closed() == CloseCode.TRY_AGAIN_LATER
        await reader.wait_until(lambda: str(reader.doc.get("t", type=Text)) == str(text))


async def test_an_internal_error_closes_only_that_connection_with_1011(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug while handling one frame closes that connection with 1011; the room goes on."""
    async with (
        YClient.connect(server.doc_url()) as victim,
        YClient.connect(server.doc_url()) as other,
    ):
        await victim.wait_synced()
        await other.wait_synced()
        live = server.app[ROOMS].get("w1/n1")
        assert live is not None
        original = live.room.receive

        def explode_once(message, origin):  # type: ignore[no-untyped-def]
            monkeypatch.setattr(live.room, "receive", original)
            raise RuntimeError("simulated bug")

        monkeypatch.setattr(live.room, "receive", explode_once)
        await victim.send_raw(b"\x03")
        assert await victim.wait_closed() == CloseCode.INTERNAL_ERROR
        await assert_room_still_syncs(other, server.doc_url(), "room still alive")


async def test_an_internal_error_while_joining_closes_that_connection_with_1011(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug after the upgrade but before the first message closes that connection with 1011
    and undoes its join: the room, its holders and the user's connection count are as if it
    had never come; the room goes on."""
    connections = server.app[CONNECTIONS]
    presence = server.app[PRESENCE]
    async with YClient.connect(server.doc_url(sub="u2")) as other:
        await other.wait_synced()
        live = server.app[ROOMS].get("w1/n1")
        assert live is not None
        original = presence.open_note

        def explode_once(*args, **kwargs):  # type: ignore[no-untyped-def]
            monkeypatch.setattr(presence, "open_note", original)
            raise RuntimeError("simulated bug")

        monkeypatch.setattr(presence, "open_note", explode_once)
        async with YClient.connect(server.doc_url(sub="u1")) as victim:
            assert await victim.wait_closed() == CloseCode.INTERNAL_ERROR
            assert victim.close_reason == "internal error"
        await eventually(
            lambda: connections.count_of_user("u1") == 0 and live.holders == 1,
            what="the failed connection's slot and room hold released",
        )
        assert len(live.peers) == 1
        await assert_room_still_syncs(other, server.doc_url(sub="u1"), "room still alive")
        assert connections.count_of_user("u1") == 0
