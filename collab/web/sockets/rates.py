"""Per-connection message rates for both WebSocket endpoints (`/ws/docs`, `/ws/live`).

`MessageRate`: per connection, messages and bytes per second, each a token bucket with a
burst, chained to its user's buckets: one `MessageRate` shared by all of the user's
connections on this instance while any is open (handed out by
`collab.web.http.connections.ConnectionCounter`). It sits on the per-message path, so its
common case is two integer subtractions and two comparisons per link; it reads the clock only
when a bucket runs dry. The socket spends from it for every ping and pong it receives too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from collab.settings import Settings

UNLIMITED = float("inf")


@dataclass(frozen=True, slots=True)
class RateScope:
    """Whose buckets a `MessageRate` holds, as its refusals name them."""

    whose: str
    messages_setting: str
    bytes_setting: str


CONNECTION_RATE = RateScope("", "COLLAB_WS_MESSAGES_PER_S", "COLLAB_WS_BYTES_PER_S")
USER_RATE = RateScope(
    " across the user's connections", "COLLAB_USER_MESSAGES_PER_S", "COLLAB_USER_BYTES_PER_S"
)


class MessageRate:
    """Token buckets for one connection's (or one user's) messages and bytes.

    `over(n)` spends one message and `n` bytes, here and then from `user` (the buckets all of
    the user's connections share), and returns None, or the reason the connection went over a
    limit. Buckets start full and refill lazily: the clock is read only when one runs dry, so
    an idle period refills up to the burst and no further, as a token bucket does. The byte
    burst is never below the largest message, so a maximal message fits.
    """

    __slots__ = (
        "_at",
        "_bytes",
        "_bytes_burst",
        "_bytes_per_s",
        "_clock",
        "_message_burst",
        "_messages",
        "_messages_per_s",
        "_scope",
        "_user",
    )

    def __init__(
        self,
        *,
        messages_per_s: int,
        message_burst: int,
        bytes_per_s: int,
        bytes_burst: int,
        clock: Callable[[], float] = time.monotonic,
        user: MessageRate | None = None,
        scope: RateScope = CONNECTION_RATE,
    ) -> None:
        self._messages_per_s = messages_per_s
        self._bytes_per_s = bytes_per_s
        self._message_burst: float = message_burst if messages_per_s else UNLIMITED
        self._bytes_burst: float = bytes_burst if bytes_per_s else UNLIMITED
        self._messages = self._message_burst
        self._bytes = self._bytes_burst
        self._clock = clock
        self._at = clock()
        self._user = user
        self._scope = scope

    @classmethod
    def for_connection(
        cls, settings: Settings, max_message_bytes: int, user: MessageRate | None = None
    ) -> MessageRate:
        return cls(
            messages_per_s=settings.ws_messages_per_s,
            message_burst=settings.ws_message_burst,
            bytes_per_s=settings.ws_bytes_per_s,
            bytes_burst=max(settings.ws_bytes_burst, max_message_bytes),
            user=user,
        )

    @classmethod
    def for_user(cls, settings: Settings) -> MessageRate | None:
        """The buckets one user's connections share; None when no per-user rate is set."""
        if not settings.user_messages_per_s and not settings.user_bytes_per_s:
            return None
        return cls(
            messages_per_s=settings.user_messages_per_s,
            message_burst=settings.user_message_burst,
            bytes_per_s=settings.user_bytes_per_s,
            bytes_burst=max(settings.user_bytes_burst, settings.max_message_bytes),
            scope=USER_RATE,
        )

    def over(self, size: int) -> str | None:
        self._messages -= 1
        self._bytes -= size
        if (self._messages < 0 or self._bytes < 0) and (reason := self._refill(size)):
            return reason
        user = self._user
        return None if user is None else user.over(size)

    def _refill(self, size: int) -> str | None:
        now = self._clock()
        elapsed_s = now - self._at
        self._at = now
        # Refill (capped at the burst) as of now, then take this message out again.
        messages = self._messages + 1 + elapsed_s * self._messages_per_s
        self._messages = min(self._message_burst, messages) - 1
        added_bytes = self._bytes + size + elapsed_s * self._bytes_per_s
        self._bytes = min(self._bytes_burst, added_bytes) - size
        if self._messages >= 0 and self._bytes >= 0:
            return None
        # A refused message takes nothing from the buckets.
        self._messages += 1
        self._bytes += size
        scope = self._scope
        if self._messages < 1:
            return (
                f"more than {self._messages_per_s} messages/s "
                f"(burst {self._message_burst:.0f}){scope.whose}: {scope.messages_setting}"
            )
        return (
            f"more than {self._bytes_per_s} bytes/s "
            f"(burst {self._bytes_burst:.0f}){scope.whose}: {scope.bytes_setting}"
        )
