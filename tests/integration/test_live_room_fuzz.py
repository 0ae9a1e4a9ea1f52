"""Random and mutated frames thrown at a live room over real sockets."""

from __future__ import annotations

import contextlib
import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Doc, Text, create_update_message
from websockets.exceptions import ConnectionClosed

from collab.protocol.messages import AwarenessEntry, encode_awareness
from tests.conftest import RunningServer
from tests.support.waiting import eventually
from tests.support.yclient import YClient


def _valid_frames() -> list[bytes]:
    doc = Doc(client_id=7)
    text = doc.get("t", type=Text)
    text.insert(0, "seed text")
    return [
        create_update_message(doc.get_update()),
        b"\x00\x00" + bytes([len(doc.get_state())]) + doc.get_state(),
        encode_awareness([AwarenessEntry(4242, 3, '{"user":{"name":"fuzz"}}')]),
        b"\x03",
    ]


VALID_FRAMES = _valid_frames()
MARKERS = itertools.count()


@st.composite
def hostile_frames(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):
        return draw(st.binary(max_size=64))
    frame = bytearray(draw(st.sampled_from(VALID_FRAMES)))
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip" and frame:
            frame[draw(st.integers(0, len(frame) - 1))] = draw(st.integers(0, 255))
        elif action == "cut" and frame:
            del frame[draw(st.integers(0, len(frame) - 1)) :]
        else:
            frame.insert(draw(st.integers(0, len(frame))), draw(st.integers(0, 255)))
    return bytes(frame)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(frames=st.lists(hostile_frames(), min_size=1, max_size=5))
async def test_hostile_frames_never_break_a_live_room(
    server: RunningServer, frames: list[bytes]
) -> None:
    """Whatever an attacker sends, the room's other clients keep syncing and never receive
    anything a stock client would reject (YClient raises on any such frame)."""
    async with YClient.connect(server.doc_url()) as a, YClient.connect(server.doc_url()) as b:
        await a.wait_synced()
        await b.wait_synced()
        # The attacker is usually closed by the server; only its own socket may fail.
        with contextlib.suppress(ConnectionClosed):
            async with YClient.connect(server.doc_url(sub="attacker")) as attacker:
                await attacker.wait_synced()
                for frame in frames:
                    if attacker.closed:
                        break
                    await attacker.send_raw(frame)
        marker = f"<alive {next(MARKERS)}>"
        text = a.doc.get("t", type=Text)
        text.insert(len(text), marker)
        await b.wait_until(lambda: marker in str(b.doc.get("t", type=Text)))
        await eventually(
            lambda: str(a.doc.get("t", type=Text)) == str(b.doc.get("t", type=Text)),
            what="both clients converge",
        )
