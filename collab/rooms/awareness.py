"""A room's awareness: the clients' states, who may change them, and how changes go out.

`RoomAwareness` is pure, like the room that holds it: it applies awareness entries with
y-protocols' clock rule and returns effects. Two ways out:

- **Immediate** (`batch_s` 0): each accepted message is relayed at once, to every local peer
  but its sender and to the other instances. In a room of n clients every cursor move costs
  n - 1 deliveries.
- **Batched** (`batch_s` > 0): accepted entries wait in the room's batch until the I/O layer
  calls `take_batch` once per tick. Within a tick the latest entry per client wins (the
  clock rule already keeps only the newest, so a removal is never overtaken by an older
  state, and a state set after a removal has the higher clock and wins everywhere alike);
  every peer gets one message per tick with all the changes, written once for all of them
  (the senders' own entries come back to them, and stock clients ignore an entry whose
  clock they already have). What local peers changed goes to the other instances in one
  message per tick too.

With batching, each connection may also set its states at most `max_per_s` times a second
(a token bucket with a burst of as many): a message over that is not refused (a stock
client sends one per cursor move, and a fast drag is not an attack) but held, the latest
entry per client, and applied at a later tick once the connection has a token again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from collab.errors import PolicyViolation
from collab.protocol.messages import AwarenessEntry, AwarenessUpdate, encode_awareness
from collab.rooms.effects import Broadcast, BusOrigin, Effect, Origin, PeerOrigin, Publish, Reply

# A stock client introduces one awareness id per connection; a few more allow for
# reconnections within one socket's life, far fewer than an abuser would need.
MAX_AWARENESS_IDS_PER_PEER = 16


@dataclass(slots=True)
class _State:
    clock: int
    state_json: str | None


class RoomAwareness:
    """The awareness states of one room's clients, local and from other instances."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        batch_s: float = 0.0,
        max_per_s: float = 0.0,
    ) -> None:
        self._clock = clock
        self.batch_s = batch_s
        # The rate cap holds messages for a later tick: it needs batching.
        self._max_per_s = max_per_s if batch_s > 0 else 0.0
        self._states: dict[int, _State] = {}
        self._owner: dict[int, str] = {}
        # When each state from another instance was last renewed (stock clients renew every
        # 15 s); a state not renewed for long belongs to a client of a dead instance.
        self._remote_renewed_at: dict[int, float] = {}
        # The entries accepted since the last tick, latest per client, with whether a local
        # peer made it (those go on the bus too).
        self._batch: dict[int, tuple[AwarenessEntry, bool]] = {}
        # Each connection's rate as a token bucket of `max_per_s` tokens refilled at
        # `max_per_s` a second, kept as one number: when the bucket will be full again
        # (a bucket full since some time is one full now). A float per connection rather
        # than an object with two.
        self._full_at: dict[str, float] = {}
        # The entries held over their rate, newest per client, of the connections holding
        # any: most never do, and hold no dict.
        self._held: dict[str, dict[int, AwarenessEntry]] = {}

    @property
    def due(self) -> bool:
        """Whether `take_batch` has something to send or release."""
        return bool(self._batch or self._held)

    def present_states(self) -> list[AwarenessEntry]:
        return [
            AwarenessEntry(client_id, state.clock, state.state_json)
            for client_id, state in self._states.items()
            if state.state_json is not None
        ]

    def greeting(self, peer_id: str) -> list[Effect]:
        """What a joining peer is sent: every present state, at once (never batched)."""
        states = self.present_states()
        return [Reply(peer_id, encode_awareness(states))] if states else []

    def receive(self, message: AwarenessUpdate, origin: Origin) -> list[Effect]:
        """Apply a message. Raises `PolicyViolation` when a peer introduces too many ids."""
        if isinstance(origin, PeerOrigin):
            self._check_quota(origin.peer_id, message)
            if self._max_per_s and not self._take_token(origin.peer_id, message):
                return []
        accepted = self._accept(message.entries, origin)
        return self._emit(accepted, origin)

    def leave(self, peer_id: str) -> list[Effect]:
        """Remove, for everyone, the states `peer_id` introduced; forget what it held."""
        self._full_at.pop(peer_id, None)
        self._held.pop(peer_id, None)
        removed = []
        for client_id in [c for c, owner in self._owner.items() if owner == peer_id]:
            del self._owner[client_id]
            state = self._states.get(client_id)
            if state is not None and state.state_json is not None:
                state.clock += 1
                state.state_json = None
                removed.append(AwarenessEntry(client_id, state.clock, None))
        return self._emit(removed, None)

    def expire_remote(self, timeout_s: float) -> list[Effect]:
        """Remove states from other instances not renewed within `timeout_s` (their instance
        died without saying goodbye); local peers learn of it, other instances expire them
        the same way."""
        deadline = self._clock() - timeout_s
        expired = []
        for client_id, renewed_at in list(self._remote_renewed_at.items()):
            if renewed_at > deadline:
                continue
            del self._remote_renewed_at[client_id]
            state = self._states.get(client_id)
            if client_id in self._owner or state is None or state.state_json is None:
                continue
            state.clock += 1
            state.state_json = None
            expired.append(AwarenessEntry(client_id, state.clock, None))
        return self._emit(expired, BusOrigin())

    def take_batch(self) -> list[Effect]:
        """The tick: apply what connections held that their rate now allows, then send
        everything accepted since the last tick, one message for all local peers and one
        with the local peers' entries for the other instances."""
        for peer_id in list(self._held):
            if not self._spend(peer_id):
                continue
            held = list(self._held.pop(peer_id).values())
            origin = PeerOrigin(peer_id, can_write=False)
            for entry in self._accept(held, origin):
                self._batch[entry.client_id] = (entry, True)
        if not self._batch:
            return []
        entries = [entry for entry, _ in self._batch.values()]
        local = [entry for entry, is_local in self._batch.values() if is_local]
        self._batch.clear()
        frame = encode_awareness(entries)
        effects: list[Effect] = [Broadcast(frame)]
        if len(local) == len(entries):
            effects.append(Publish(frame))
        elif local:
            effects.append(Publish(encode_awareness(local)))
        return effects

    # -- rules -------------------------------------------------------------------------------

    def _emit(self, accepted: list[AwarenessEntry], origin: Origin | None) -> list[Effect]:
        """Send accepted entries now (no batching) or add them to the tick's batch. `origin`
        None: the server's own removal of a local peer's states (goes to everyone)."""
        if not accepted:
            return []
        local = not isinstance(origin, BusOrigin)
        if self.batch_s > 0:
            for entry in accepted:
                self._batch[entry.client_id] = (entry, local)
            return []
        frame = encode_awareness(accepted)
        if not local:
            return [Broadcast(frame)]
        exclude = origin.peer_id if isinstance(origin, PeerOrigin) else None
        return [Broadcast(frame, exclude), Publish(frame)]

    def _accept(
        self, entries: tuple[AwarenessEntry, ...] | list[AwarenessEntry], origin: Origin
    ) -> list[AwarenessEntry]:
        accepted: list[AwarenessEntry] = []
        for entry in entries:
            owner = self._owner.get(entry.client_id)
            if isinstance(origin, PeerOrigin):
                if owner is not None and owner != origin.peer_id:
                    # Stock clients echo the states they received; those are not theirs.
                    continue
                if owner is None and (
                    entry.state_json is None or self._held_remotely(entry.client_id)
                ):
                    # A removal of an id nobody here owns, or a claim of an id a client of
                    # another instance holds: neither is this connection's to make. The id is
                    # free again once that instance removes it or its state expires.
                    continue
            elif owner is not None:
                continue  # another instance never overrides a local connection's state
            if self._set(entry):
                if owner is None and isinstance(origin, PeerOrigin):
                    self._owner[entry.client_id] = origin.peer_id
                    self._remote_renewed_at.pop(entry.client_id, None)
                elif isinstance(origin, BusOrigin):
                    self._remote_renewed_at[entry.client_id] = self._clock()
                accepted.append(entry)
        return accepted

    def _held_remotely(self, client_id: int) -> bool:
        """Whether a client of another instance holds a state under `client_id` now."""
        if client_id not in self._remote_renewed_at:
            return False
        state = self._states.get(client_id)
        return state is not None and state.state_json is not None

    def _check_quota(self, peer_id: str, message: AwarenessUpdate) -> None:
        """Refuse, before applying any of it, a message that would give the peer too many ids."""
        introduced = {
            e.client_id
            for e in message.entries
            if e.state_json is not None and e.client_id not in self._owner
        }
        if not introduced:
            # The common message, a client moving its own cursor: nothing new to count, and
            # counting what the peer owns walks every state of the room.
            return
        owned = {c for c, owner in self._owner.items() if owner == peer_id}
        held = self._held.get(peer_id)
        if held is not None:
            introduced |= {c for c, e in held.items() if e.state_json is not None}
        if len(owned | introduced) > MAX_AWARENESS_IDS_PER_PEER:
            raise PolicyViolation(
                f"a connection may introduce at most {MAX_AWARENESS_IDS_PER_PEER} awareness ids"
            )

    def _take_token(self, peer_id: str, message: AwarenessUpdate) -> bool:
        """Whether the peer may set states now; if not, hold the message's entries (the
        newest per client) for a later tick."""
        # Held behind earlier held entries too, so a peer's changes keep their order.
        if peer_id not in self._held and self._spend(peer_id):
            return True
        held = self._held.get(peer_id, {})
        for entry in message.entries:
            previous = held.get(entry.client_id)
            if previous is None or _replaces(entry, previous):
                held[entry.client_id] = entry
        if held:
            self._held[peer_id] = held
        return False

    def _spend(self, peer_id: str) -> bool:
        """Take a token from the peer's bucket if it holds one (a bucket not seen yet is
        full)."""
        now = self._clock()
        full_at = max(self._full_at.get(peer_id, now), now)
        # The bucket lacks (full_at - now) * max_per_s of its max_per_s tokens; the slack
        # absorbs the rounding of summed 1 / max_per_s steps.
        if (full_at - now) * self._max_per_s > self._max_per_s - 1 + 1e-9:
            return False
        self._full_at[peer_id] = full_at + 1 / self._max_per_s
        return True

    def _set(self, entry: AwarenessEntry) -> bool:
        """Apply one entry with y-protocols' clock rule; return whether it changed anything."""
        current = self._states.get(entry.client_id)
        if current is None:
            # An unknown client is at clock 0 with no state, as y-protocols has it.
            if entry.clock <= 0:
                return False
            self._states[entry.client_id] = _State(entry.clock, entry.state_json)
            return True
        if not _replaces(entry, AwarenessEntry(entry.client_id, current.clock, current.state_json)):
            return False
        current.clock = entry.clock
        current.state_json = entry.state_json
        return True


def _replaces(entry: AwarenessEntry, current: AwarenessEntry) -> bool:
    """y-protocols' clock rule: a newer clock wins; at the same clock, a removal wins over a
    present state."""
    return current.clock < entry.clock or (
        current.clock == entry.clock and entry.state_json is None and current.state_json is not None
    )
