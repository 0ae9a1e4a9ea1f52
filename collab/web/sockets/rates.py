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
from functools import lru_cache

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


@dataclass(frozen=True, slots=True)
class RateLimits:
    """What a `MessageRate`'s buckets allow: one instance per setting, which every
    connection's (or user's) buckets share, so a connection holds only its own levels."""

    messages_per_s: int
    message_burst: float
    bytes_per_s: int
    bytes_burst: float
    clock: Callable[[], float]
    scope: RateScope

    @staticmethod
    def of(
        messages_per_s: int,
        message_burst: int,
        bytes_per_s: int,
        bytes_burst: int,
        clock: Callable[[], float] = time.monotonic,
        scope: RateScope = CONNECTION_RATE,
    ) -> RateLimits:
        """These limits: on the real clock, the one shared instance for them."""
        if clock is time.monotonic:
            return _shared_limits(messages_per_s, message_burst, bytes_per_s, bytes_burst, scope)
        return _limits(messages_per_s, message_burst, bytes_per_s, bytes_burst, clock, scope)


def _limits(
    messages_per_s: int,
    message_burst: int,
    bytes_per_s: int,
    bytes_burst: int,
    clock: Callable[[], float],
    scope: RateScope,
) -> RateLimits:
    return RateLimits(
        messages_per_s,
        message_burst if messages_per_s else UNLIMITED,
        bytes_per_s,
        bytes_burst if bytes_per_s else UNLIMITED,
        clock,
        scope,
    )


@lru_cache(maxsize=64)
def _shared_limits(
    messages_per_s: int, message_burst: int, bytes_per_s: int, bytes_burst: int, scope: RateScope
) -> RateLimits:
    return _limits(messages_per_s, message_burst, bytes_per_s, bytes_burst, time.monotonic, scope)


class MessageRate:
    """Token buckets for one connection's (or one user's) messages and bytes.

    `over(n)` spends one message and `n` bytes, here and then from `user` (the buckets all of
    the user's connections share), and returns None, or the reason the connection went over a
    limit. Buckets start full and refill lazily: the clock is read only when one runs dry, so
    an idle period refills up to the burst and no further, as a token bucket does. The byte
    burst is never below the largest message, so a maximal message fits.
    """

    # One per connection: the levels and when they were last refilled; the limits shared.
    __slots__ = ("_at", "_bytes", "_limits", "_messages", "_user")

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
        limits = RateLimits.of(
            messages_per_s, message_burst, bytes_per_s, bytes_burst, clock, scope
        )
        self._limits = limits
        self._messages = limits.message_burst
        self._bytes = limits.bytes_burst
        self._at = clock()
        self._user = user

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
        limits = self._limits
        now = limits.clock()
        elapsed_s = now - self._at
        self._at = now
        # Refill (capped at the burst) as of now, then take this message out again.
        messages = self._messages + 1 + elapsed_s * limits.messages_per_s
        self._messages = min(limits.message_burst, messages) - 1
        added_bytes = self._bytes + size + elapsed_s * limits.bytes_per_s
        self._bytes = min(limits.bytes_burst, added_bytes) - size
        if self._messages >= 0 and self._bytes >= 0:
            return None
        # A refused message takes nothing from the buckets.
        self._messages += 1
        self._bytes += size
        scope = limits.scope
        if self._messages < 1:
            return (
                f"more than {limits.messages_per_s} messages/s "
                f"(burst {limits.message_burst:.0f}){scope.whose}: {scope.messages_setting}"
            )
        return (
            f"more than {limits.bytes_per_s} bytes/s "
            f"(burst {limits.bytes_burst:.0f}){scope.whose}: {scope.bytes_setting}"
        )
