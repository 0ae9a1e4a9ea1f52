"""`RoomAwareness`: batching per tick, the per-connection rate, and what stays as it was."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collab.errors import PolicyViolation
from collab.protocol.messages import (
    AwarenessEntry,
    AwarenessUpdate,
    decode_message,
    encode_awareness,
)
from collab.rooms.awareness import MAX_AWARENESS_IDS_PER_PEER, RoomAwareness
from collab.rooms.effects import Broadcast, BusOrigin, Effect, PeerOrigin, Publish, Reply

ALICE = PeerOrigin("alice", can_write=True)
BOB = PeerOrigin("bob", can_write=False)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def message(*entries: tuple[int, int, str | None]) -> AwarenessUpdate:
    return AwarenessUpdate(tuple(AwarenessEntry(c, k, s) for c, k, s in entries))


def entries_of(frame: bytes) -> list[tuple[int, int, str | None]]:
    decoded = decode_message(frame)
    assert isinstance(decoded, AwarenessUpdate)
    return [(e.client_id, e.clock, e.state_json) for e in decoded.entries]


def only(effects: list[Effect], kind: type) -> list[Effect]:
    return [effect for effect in effects if isinstance(effect, kind)]


def batched(clock: Clock | None = None, max_per_s: float = 0.0) -> RoomAwareness:
    return RoomAwareness(clock=clock or Clock(), batch_s=0.05, max_per_s=max_per_s)


def test_without_batching_each_message_goes_out_at_once_to_all_but_its_sender() -> None:
    awareness = RoomAwareness()
    effects = awareness.receive(message((1, 1, '{"a":1}')), ALICE)
    assert effects == [
        Broadcast(encode_awareness([AwarenessEntry(1, 1, '{"a":1}')]), "alice"),
        Publish(encode_awareness([AwarenessEntry(1, 1, '{"a":1}')])),
    ]
    assert not awareness.due


def test_a_tick_sends_the_latest_state_per_client_once_to_every_peer() -> None:
    awareness = batched()
    for clock in (1, 2, 3):
        assert awareness.receive(message((1, clock, f'{{"x":{clock}}}')), ALICE) == []
    assert awareness.receive(message((2, 1, '{"y":1}')), BOB) == []
    assert awareness.due
    effects = awareness.take_batch()
    (broadcast,) = only(effects, Broadcast)
    assert isinstance(broadcast, Broadcast)
    # One frame for everyone, senders included: nobody excluded, built once.
    assert broadcast.exclude is None
    assert entries_of(broadcast.frame) == [(1, 3, '{"x":3}'), (2, 1, '{"y":1}')]
    (publish,) = only(effects, Publish)
    assert isinstance(publish, Publish)
    assert publish.frame is broadcast.frame
    assert not awareness.due
    assert awareness.take_batch() == []


def test_a_removal_after_a_state_in_one_tick_is_what_goes_out() -> None:
    awareness = batched()
    awareness.receive(message((1, 1, "{}")), ALICE)
    awareness.take_batch()
    awareness.receive(message((1, 2, '{"x":1}')), ALICE)
    awareness.receive(message((1, 3, None)), ALICE)
    (broadcast, _) = awareness.take_batch()
    assert isinstance(broadcast, Broadcast)
    assert entries_of(broadcast.frame) == [(1, 3, None)]


def test_a_leave_in_a_tick_removes_the_state_set_earlier_in_it() -> None:
    awareness = batched()
    awareness.receive(message((1, 1, '{"x":1}')), ALICE)
    awareness.leave("alice")
    (broadcast, publish) = awareness.take_batch()
    assert isinstance(broadcast, Broadcast)
    assert isinstance(publish, Publish)
    assert entries_of(broadcast.frame) == [(1, 2, None)]
    assert awareness.present_states() == []


def test_a_state_after_a_removal_wins_with_its_higher_clock() -> None:
    awareness = batched()
    awareness.receive(message((1, 1, "{}")), ALICE)
    awareness.receive(message((1, 2, None)), ALICE)
    awareness.receive(message((1, 3, '{"back":true}')), ALICE)
    (broadcast, _) = awareness.take_batch()
    assert isinstance(broadcast, Broadcast)
    assert entries_of(broadcast.frame) == [(1, 3, '{"back":true}')]


def test_states_from_the_bus_are_relayed_but_not_published_again() -> None:
    awareness = batched()
    awareness.receive(message((7, 1, '{"remote":1}')), BusOrigin())
    effects = awareness.take_batch()
    assert only(effects, Publish) == []
    (broadcast,) = only(effects, Broadcast)
    assert isinstance(broadcast, Broadcast)
    assert entries_of(broadcast.frame) == [(7, 1, '{"remote":1}')]

    awareness.receive(message((7, 2, '{"remote":2}')), BusOrigin())
    awareness.receive(message((1, 1, '{"local":1}')), ALICE)
    effects = awareness.take_batch()
    (broadcast,) = only(effects, Broadcast)
    (publish,) = only(effects, Publish)
    assert isinstance(broadcast, Broadcast)
    assert isinstance(publish, Publish)
    assert entries_of(broadcast.frame) == [(7, 2, '{"remote":2}'), (1, 1, '{"local":1}')]
    assert entries_of(publish.frame) == [(1, 1, '{"local":1}')]


def test_a_newcomer_is_greeted_at_once_with_states_still_in_the_batch() -> None:
    awareness = batched()
    awareness.receive(message((1, 1, '{"x":1}')), ALICE)
    (greeting,) = awareness.greeting("carol")
    assert isinstance(greeting, Reply)
    assert entries_of(greeting.frame) == [(1, 1, '{"x":1}')]


def test_over_its_rate_a_connection_is_held_not_refused_and_its_latest_state_goes_out() -> None:
    clock = Clock()
    awareness = batched(clock, max_per_s=2)
    awareness.receive(message((1, 1, '{"n":1}')), ALICE)
    awareness.receive(message((1, 2, '{"n":2}')), ALICE)
    # Over the rate: held, not applied yet.
    awareness.receive(message((1, 3, '{"n":3}')), ALICE)
    awareness.receive(message((1, 4, '{"n":4}')), ALICE)
    assert awareness.present_states() == [AwarenessEntry(1, 2, '{"n":2}')]
    (broadcast, _) = awareness.take_batch()
    assert isinstance(broadcast, Broadcast)
    assert entries_of(broadcast.frame) == [(1, 2, '{"n":2}')]
    assert awareness.due  # still holding
    assert awareness.take_batch() == []  # no token yet
    clock.now += 0.5
    (broadcast, _) = awareness.take_batch()
    assert isinstance(broadcast, Broadcast)
    assert entries_of(broadcast.frame) == [(1, 4, '{"n":4}')]
    assert not awareness.due


def test_a_held_removal_is_not_lost() -> None:
    clock = Clock()
    awareness = batched(clock, max_per_s=1)
    awareness.receive(message((1, 1, "{}")), ALICE)
    awareness.receive(message((1, 2, None)), ALICE)  # held
    awareness.receive(message((1, 1, '{"stale":1}')), ALICE)  # older: does not replace it
    awareness.take_batch()
    clock.now += 1
    (broadcast, _) = awareness.take_batch()
    assert isinstance(broadcast, Broadcast)
    assert entries_of(broadcast.frame) == [(1, 2, None)]
    assert awareness.present_states() == []


def test_a_connection_that_leaves_forgets_what_it_held() -> None:
    clock = Clock()
    awareness = batched(clock, max_per_s=1)
    awareness.receive(message((1, 1, "{}")), ALICE)
    awareness.receive(message((1, 2, '{"held":1}')), ALICE)
    awareness.leave("alice")
    clock.now += 5
    (broadcast, _) = awareness.take_batch()
    assert isinstance(broadcast, Broadcast)
    assert entries_of(broadcast.frame) == [(1, 2, None)]
    assert not awareness.due


def test_held_ids_count_towards_the_quota() -> None:
    awareness = batched(Clock(), max_per_s=1)
    awareness.receive(message((0, 1, "{}")), ALICE)
    for client_id in range(1, MAX_AWARENESS_IDS_PER_PEER):
        awareness.receive(message((client_id, 1, "{}")), ALICE)  # held
    with pytest.raises(PolicyViolation, match=f"at most {MAX_AWARENESS_IDS_PER_PEER}"):
        awareness.receive(message((99, 1, "{}")), ALICE)


def test_expired_remote_states_go_out_with_the_tick_to_local_peers_only() -> None:
    clock = Clock()
    awareness = batched(clock)
    awareness.receive(message((7, 1, "{}")), BusOrigin())
    awareness.take_batch()
    clock.now += 31
    assert awareness.expire_remote(30) == []
    effects = awareness.take_batch()
    assert only(effects, Publish) == []
    (broadcast,) = only(effects, Broadcast)
    assert isinstance(broadcast, Broadcast)
    assert entries_of(broadcast.frame) == [(7, 2, None)]


class ReferenceBucket:
    """The rate as the module documents it, in exact arithmetic: a token bucket of
    `per_s` tokens refilled at `per_s` a second, full at first."""

    def __init__(self, per_s: int, now: Fraction) -> None:
        self.per_s = per_s
        self.tokens = Fraction(per_s)
        self.at = now

    def take(self, now: Fraction) -> bool:
        self.tokens = min(Fraction(self.per_s), self.tokens + (now - self.at) * self.per_s)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


@settings(max_examples=200, deadline=None)
@given(
    per_s=st.integers(1, 20),
    steps=st.lists(st.tuples(st.integers(0, 40), st.booleans()), max_size=60),
)
def test_the_rate_is_the_token_bucket_it_documents(
    per_s: int, steps: list[tuple[int, bool]]
) -> None:
    """Each step advances the clock by 0-2 s in 50 ms units (so buckets land exactly on
    whole tokens), sends a state, and maybe ticks; a state goes out at once exactly when the
    reference bucket has a token and nothing is held, and a tick releases what is held
    exactly when it has one."""
    clock = Clock()
    awareness = batched(clock, max_per_s=per_s)
    now = Fraction(100)
    bucket = ReferenceBucket(per_s, now)
    held = False
    for sent, (advance, tick) in enumerate(steps, start=1):
        now += Fraction(advance, 20)
        clock.now = float(now)
        awareness.receive(message((1, sent, "{}")), ALICE)
        applied = awareness.present_states() == [AwarenessEntry(1, sent, "{}")]
        expected = not held and bucket.take(now)
        assert applied == expected
        held = held or not applied
        if tick:
            awareness.take_batch()
            if held and bucket.take(now):
                held = False
                assert awareness.present_states() == [AwarenessEntry(1, sent, "{}")]
        assert awareness.due == held or not tick


def test_the_rate_needs_batching_and_is_off_without_it() -> None:
    awareness = RoomAwareness(clock=Clock(), batch_s=0, max_per_s=1)
    for clock in range(1, 5):
        assert awareness.receive(message((1, clock, "{}")), ALICE) != []


# -- a peer that applies what it receives with y-protocols' rule sees the same states -----


def apply_as_client(seen: dict[int, tuple[int, str | None]], frame: bytes) -> None:
    for client_id, clock, state in entries_of(frame):
        current_clock, current_state = seen.get(client_id, (0, None))
        if current_clock < clock or (
            current_clock == clock and state is None and current_state is not None
        ):
            seen[client_id] = (clock, state)


steps = st.lists(
    st.tuples(
        st.sampled_from(["alice", "bob", "bus", "tick", "leave-alice"]),
        st.integers(1, 3),  # client id
        st.integers(1, 6),  # clock
        st.sampled_from([None, '{"a":1}', '{"b":2}']),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(steps)
def test_batched_and_immediate_rooms_leave_a_client_with_the_same_states(
    script: list[tuple[str, int, int, str | None]],
) -> None:
    """Whatever arrives, a stock client of a batched room ends, after the last tick, with the
    states it would have had from a room relaying each message as it came."""
    immediate, batching = RoomAwareness(), batched()
    seen_immediate: dict[int, tuple[int, str | None]] = {}
    seen_batched: dict[int, tuple[int, str | None]] = {}

    def deliver(effects: list[Effect], seen: dict[int, tuple[int, str | None]]) -> None:
        for effect in effects:
            if isinstance(effect, Broadcast):
                apply_as_client(seen, effect.frame)

    for actor, client_id, clock, state in script:
        if actor == "tick":
            deliver(batching.take_batch(), seen_batched)
            continue
        for room, seen in ((immediate, seen_immediate), (batching, seen_batched)):
            if actor == "leave-alice":
                deliver(room.leave("alice"), seen)
                continue
            origin = BusOrigin() if actor == "bus" else PeerOrigin(actor, can_write=True)
            # A client of each instance owns its own id: the bus never speaks for id 1.
            if actor == "bus" and client_id == 1:
                continue
            deliver(room.receive(message((client_id, clock, state)), origin), seen)
    deliver(batching.take_batch(), seen_batched)
    assert seen_batched == seen_immediate
    assert batching.present_states() == immediate.present_states()


def test_a_connection_cannot_take_over_an_id_another_instance_holds() -> None:
    """Bob read a remote client's id from the relay; a later clock does not make it his."""
    clock = Clock()
    awareness = batched(clock)
    awareness.receive(message((7, 1, '{"name":"alice"}')), BusOrigin())
    awareness.take_batch()

    assert awareness.receive(message((7, 1000, '{"name":"forged"}')), BOB) == []
    assert awareness.take_batch() == []
    assert [(e.client_id, e.state_json) for e in awareness.present_states()] == [
        (7, '{"name":"alice"}')
    ]
    # Still the remote client's: its next state is taken, and Bob's leave removes nothing.
    awareness.receive(message((7, 2, '{"name":"alice2"}')), BusOrigin())
    assert awareness.leave("bob") == []
    assert [(e.client_id, e.state_json) for e in awareness.present_states()] == [
        (7, '{"name":"alice2"}')
    ]


def test_an_id_another_instance_removed_or_let_expire_may_be_introduced_here() -> None:
    """A client moving here from a drained or dead instance gets its id back."""
    clock = Clock()
    awareness = batched(clock)
    awareness.receive(message((7, 1, "{}"), (8, 1, "{}")), BusOrigin())
    awareness.receive(message((7, 2, None)), BusOrigin())  # drained: its instance removed it
    awareness.receive(message((7, 3, '{"here":1}')), ALICE)
    clock.now += 31
    awareness.expire_remote(30)  # 8's instance died: expired at clock 2
    awareness.receive(message((8, 3, '{"here":2}')), BOB)
    assert sorted((e.client_id, e.state_json) for e in awareness.present_states()) == [
        (7, '{"here":1}'),
        (8, '{"here":2}'),
    ]
