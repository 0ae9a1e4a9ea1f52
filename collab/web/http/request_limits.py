"""Limits on plain HTTP requests: a deadline for request bodies, and under `/api/` requests in
flight and a request rate, per user and per client IP.

- Body deadline (`COLLAB_BODY_TIMEOUT_S`, every request): a body still incomplete that long
  after the request's headers fails the handler's read with `BodyTimeout`; the client gets 408
  and the connection is closed. A trickling body holds a socket for a bounded time.
- In flight (`COLLAB_MAX_REQUESTS_PER_USER`, `_PER_IP`): counted by a `ConnectionCounter`, the
  machinery that counts WebSockets, with its client-IP rules (trusted proxies, loopback
  exempt); over: 429 with `Retry-After: 1`.
- Rates (`COLLAB_USER_REQUESTS_PER_S`, `COLLAB_IP_REQUESTS_PER_S`, with bursts): a token bucket
  per user and per IP; over: 429 with `Retry-After` in whole seconds until the next token.

The user is the `sub` of a valid bearer token, verified here (the handler verifies it again);
a request without one is limited per IP only, and the handler refuses it with 401.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from collections.abc import Callable

from aiohttp import web
from aiohttp.streams import StreamReader

from collab.errors import AuthError, CollabError
from collab.settings import Settings
from collab.web.http.connections import ConnectionCounter, Counted, Slot, TooManyConnections
from collab.web.http.errors import Handler, error_response
from collab.web.http.rejections import note_rejection
from collab.web.http.requests import offered_token
from collab.web.keys import REQUEST_LIMITS, VERIFIER

API_PREFIX = "/api/"
# REST requests end within seconds; a client at its in-flight limit retries soon.
IN_FLIGHT_RETRY_AFTER_S = 1
# Buckets kept per rate, beyond which the least recently used are forgotten (they restart full).
MAX_RATE_KEYS = 100_000


class BodyTimeout(CollabError, TimeoutError):
    """The request body did not arrive within `COLLAB_BODY_TIMEOUT_S` (HTTP 408).

    A `TimeoutError` too: if the handler never read the body, aiohttp's lingering read after
    the response meets it, takes it for a timeout and closes the connection."""


class TooManyRequests(CollabError):
    """A user or a client IP is over a request limit (HTTP 429 with `Retry-After`)."""

    def __init__(self, code: str, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.code = code
        self.retry_after_s = retry_after_s


class RequestRates:
    """A token bucket of requests per key (a user id, a client IP): `burst` at once, then
    `per_s` on average (0: no limit).

    A bucket is forgotten once it would be full again, when it equals a new one, and the least
    recently used beyond `max_keys` are forgotten early, so memory follows recent senders."""

    __slots__ = ("_buckets", "_clock", "_full_after_s", "_max_keys", "burst", "per_s")

    def __init__(
        self,
        per_s: int,
        burst: int,
        *,
        max_keys: int = MAX_RATE_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_s = per_s
        self.burst = burst
        self._full_after_s = burst / per_s if per_s else 0.0
        self._max_keys = max_keys
        self._clock = clock
        # key -> (tokens, when they were counted), least recently used first.
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str) -> float:
        """Spend one request of `key`: 0.0, or the seconds until one is available (then the
        request is refused and takes nothing)."""
        if not self.per_s:
            return 0.0
        now = self._clock()
        buckets = self._buckets
        # Buckets untouched for `burst / per_s` are full again: as good as absent.
        horizon = now - self._full_after_s
        while buckets and next(iter(buckets.values()))[1] <= horizon:
            buckets.popitem(last=False)
        bucket = buckets.pop(key, None)
        tokens = float(self.burst)
        if bucket is not None:
            tokens = min(tokens, bucket[0] + (now - bucket[1]) * self.per_s)
        wait_s = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait_s = (1 - tokens) / self.per_s
        buckets[key] = (tokens, now)
        if len(buckets) > self._max_keys:
            buckets.popitem(last=False)
        return wait_s


class RequestLimits:
    """The limits of one instance's REST requests (see the module docstring)."""

    def __init__(self, settings: Settings) -> None:
        self.body_timeout_s = settings.body_timeout_s
        self.in_flight = ConnectionCounter(settings, Counted.requests(settings))
        self.user_rates = RequestRates(settings.user_requests_per_s, settings.user_request_burst)
        self.ip_rates = RequestRates(settings.ip_requests_per_s, settings.ip_request_burst)

    def admit(self, request: web.Request) -> Slot:
        """Check the rates and count the request in flight; the caller frees the slot with
        `in_flight.release_slot`. Raises `TooManyRequests`."""
        ip = self.in_flight.counted_ip(request)
        if ip is not None:
            _check(self.ip_rates, ip, f"client {ip}", "ip", "COLLAB_IP_REQUESTS_PER_S")
        user_id = _user_of(request)
        if user_id is not None:
            _check(
                self.user_rates,
                user_id,
                f"user {user_id[:64]!r}",
                "user",
                "COLLAB_USER_REQUESTS_PER_S",
            )
        try:
            return self.in_flight.count(ip, user_id)
        except TooManyConnections as error:
            raise TooManyRequests(error.code, str(error), IN_FLIGHT_RETRY_AFTER_S) from None

    def arm_body_deadline(self, request: web.Request) -> asyncio.TimerHandle | None:
        """Fail reads of a body still incomplete after `body_timeout_s` with `BodyTimeout`;
        None for a request without a body still to come. Cancel the timer when the request
        ends."""
        content = request.content
        if not request.body_exists or content.is_eof():
            return None
        timer = asyncio.get_running_loop().call_later(
            self.body_timeout_s, _expire, content, self.body_timeout_s
        )
        content.on_eof(timer.cancel)
        return timer


@web.middleware
async def request_limits(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer a request over a limit with 429 (`Retry-After`), and a body that did not arrive
    in time with 408 (the connection is then closed)."""
    limits = request.app[REQUEST_LIMITS]
    deadline = limits.arm_body_deadline(request)
    try:
        if not request.path.startswith(API_PREFIX):
            return await handler(request)
        slot = limits.admit(request)
        try:
            return await handler(request)
        finally:
            limits.in_flight.release_slot(slot)
    except TooManyRequests as error:
        note_rejection(request, 429, error.code, f"from {request.remote}: {error}")
        return error_response(
            429, error.code, str(error), {"Retry-After": str(error.retry_after_s)}
        )
    except BodyTimeout as error:
        note_rejection(request, 408, "body_timeout", f"from {request.remote}: {error}")
        response = error_response(408, "body_timeout", str(error))
        response.force_close()
        return response
    finally:
        if deadline is not None:
            deadline.cancel()


def _check(rates: RequestRates, key: str, who: str, kind: str, setting: str) -> None:
    wait_s = rates.take(key)
    if wait_s:
        raise TooManyRequests(
            f"too_many_requests_per_{kind}",
            f"{who} sent more than {rates.per_s} requests/s (burst {rates.burst}): {setting}",
            max(1, math.ceil(wait_s)),
        )


def _user_of(request: web.Request) -> str | None:
    """The user of the request's bearer token when it is valid; None otherwise."""
    token = offered_token(request, allow_query=False)
    if not token:
        return None
    try:
        return request.app[VERIFIER].verify_token(token).user_id
    except AuthError:
        return None


def _expire(content: StreamReader, timeout_s: float) -> None:
    if not content.is_eof():
        content.set_exception(
            BodyTimeout(
                f"the request body did not arrive within {timeout_s:g} s "
                "(COLLAB_BODY_TIMEOUT_S): send the whole body at once"
            )
        )
