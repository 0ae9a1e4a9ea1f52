"""What a room asks its I/O layer to do, and where a message came from.

A room never performs I/O; it returns effects. Who sent a message (its origin) decides the
effects: an edit from a peer is relayed, published and persisted (`Edit`); one from the bus
is only relayed to local peers, because the instance that published it already persisted it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PeerOrigin:
    """A connection of this instance. Viewers (`can_write=False`) never change the document."""

    peer_id: str
    can_write: bool


@dataclass(frozen=True, slots=True)
class BusOrigin:
    """Another instance, through the bus."""


@dataclass(frozen=True, slots=True)
class ServerOrigin:
    """The server itself (e.g. an update posted over REST)."""


Origin = PeerOrigin | BusOrigin | ServerOrigin


@dataclass(frozen=True, slots=True)
class Reply:
    """Send `frame` to one peer."""

    peer_id: str
    frame: bytes


@dataclass(frozen=True, slots=True)
class Broadcast:
    """Send the same `frame` to every local peer of the room except `exclude`."""

    frame: bytes
    exclude: str | None = None


@dataclass(frozen=True, slots=True)
class Publish:
    """Send `frame` to the other instances holding this room."""

    frame: bytes


# Not frozen, unlike the others: one is made on every edit, and a frozen dataclass's
# `__init__` (an `object.__setattr__` per field) costs three times a plain one's.
@dataclass(slots=True)
class Edit:
    """A change made on this instance: send `frame` (`update` as an Update message) to every
    local peer but `exclude` and to the other instances, and append `update` (a Yjs v1
    update) to the room's log. One effect, not three, because every edit needs all of it."""

    frame: bytes
    update: bytes
    exclude: str | None = None


Effect = Reply | Broadcast | Publish | Edit
