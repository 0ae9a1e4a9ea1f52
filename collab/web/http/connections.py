"""Connection accounting for both WebSocket endpoints (`/ws/docs`, `/ws/live`); REST requests
in flight are counted by the same `ConnectionCounter` (`collab.web.http.request_limits`).

`ConnectionCounter`: open sockets (or requests in flight) per user and per client IP on this
instance, checked before the upgrade (HTTP 429 with `Retry-After`, a JSON body naming the
limit), and the `MessageRate` (`collab.web.sockets.rates`) each user's connections share. The
`connection_slots` middleware gives a counted slot back when its request ends, however it
ends, unless the endpoint took it (`take_slot`) for a socket that outlives the request.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from aiohttp import web

from collab.errors import CollabError
from collab.settings import IPNetwork, Settings
from collab.web.http.errors import Handler, error_response
from collab.web.http.rejections import note_rejection
from collab.web.keys import CONNECTIONS
from collab.web.sockets.rates import MessageRate
from collab.web.sockets.websocket import ServerWebSocket

# Sockets close on their own schedule; a refused client should not hammer the instance.
CONNECTION_RETRY_AFTER_S = 10
MAX_FORWARDED_ADDRESSES = 32


class TooManyConnections(CollabError):
    """A user or a client IP already holds as many sockets (or requests in flight) as allowed
    (HTTP 429)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Counted:
    """What a `ConnectionCounter` counts: its limits per user and per IP (0: none), and how its
    refusals name them (`<code>_per_user`, `<setting>_PER_IP`)."""

    per_user: int
    per_ip: int
    noun: str
    code: str
    setting: str

    @classmethod
    def sockets(cls, settings: Settings) -> Counted:
        return cls(
            settings.max_connections_per_user,
            settings.max_connections_per_ip,
            "open connections",
            "too_many_connections",
            "COLLAB_MAX_CONNECTIONS",
        )

    @classmethod
    def requests(cls, settings: Settings) -> Counted:
        return cls(
            settings.max_requests_per_user,
            settings.max_requests_per_ip,
            "requests in flight",
            "too_many_requests_in_flight",
            "COLLAB_MAX_REQUESTS",
        )


@dataclass(slots=True)
class Slot:
    user_id: str | None  # None: not counted per user (no valid token)
    ip: str | None  # None: not counted per IP (loopback)


SLOT = web.RequestKey("connection_slot", Slot)


class ConnectionCounter:
    """Open WebSockets (by default; or what `counted` says) per user and per client IP on this
    instance, and the message rate each user's connections share."""

    def __init__(self, settings: Settings, counted: Counted | None = None) -> None:
        self._settings = settings
        self._counted = counted if counted is not None else Counted.sockets(settings)
        self._per_user = self._counted.per_user
        self._per_ip = self._counted.per_ip
        self._trusted = settings.trusted_proxies
        self._users: dict[str, int] = {}
        self._ips: dict[str, int] = {}
        # Kept while the user has a counted slot, so every connection of the user shares it.
        self._user_rates: dict[str, MessageRate] = {}
        self.refused = 0

    def count_of_user(self, user_id: str) -> int:
        return self._users.get(user_id, 0)

    def count_of_ip(self, ip: str) -> int:
        return self._ips.get(ip, 0)

    def client_ip(self, request: web.Request) -> str:
        """The socket peer, or the client an `X-Forwarded-For` names when the peer is a
        trusted proxy: the rightmost address not itself a trusted proxy (the ones further
        left were written by the client and prove nothing)."""
        peer = request.remote or ""
        forwarded = request.headers.get("X-Forwarded-For")
        if not forwarded or not _in_networks(peer, self._trusted):
            return peer
        hops = [hop.strip() for hop in forwarded.split(",")][-MAX_FORWARDED_ADDRESSES:]
        for hop in reversed(hops):
            if hop and not _in_networks(hop, self._trusted):
                return hop[:64]
        return hops[0][:64] if hops and hops[0] else peer

    def counted_ip(self, request: web.Request) -> str | None:
        """`client_ip`, or None on loopback, which per-IP limits exempt: there the peer is a
        local proxy or a load test, not one client."""
        ip = self.client_ip(request)
        return None if _is_loopback(ip) else ip

    def admit(self, request: web.Request, user_id: str) -> None:
        """Count a connection about to be upgraded; raises `TooManyConnections` (before
        anything is counted) when the user or the IP is at its limit. The slot is freed by
        `connection_slots` when the request ends."""
        request[SLOT] = self.count(self.counted_ip(request), user_id)

    def count(self, ip: str | None, user_id: str | None) -> Slot:
        """Count one more for `user_id` and `ip` (None: not counted that way) and return the
        slot that `release_slot` frees; raises `TooManyConnections` (before anything is
        counted) when the user or the IP is at its limit."""
        counted = self._counted
        if user_id is not None and self._per_user and self.count_of_user(user_id) >= self._per_user:
            self._refuse(
                f"{counted.code}_per_user",
                f"user {user_id[:64]!r} already has {self._per_user} {counted.noun} "
                f"({counted.setting}_PER_USER)",
            )
        if ip is not None and self._per_ip and self.count_of_ip(ip) >= self._per_ip:
            self._refuse(
                f"{counted.code}_per_ip",
                f"client {ip} already has {self._per_ip} {counted.noun} ({counted.setting}_PER_IP)",
            )
        if user_id is not None:
            self._users[user_id] = self.count_of_user(user_id) + 1
        if ip is not None:
            self._ips[ip] = self.count_of_ip(ip) + 1
        return Slot(user_id, ip)

    def message_rate(
        self, socket: ServerWebSocket, user_id: str, max_message_bytes: int
    ) -> MessageRate:
        """The `MessageRate` of a new connection of `user_id` (admitted): its own buckets, then
        the user's, shared by all of the user's connections on this instance. `socket` spends
        from it for each control frame it receives (ping, pong) too."""
        user = self._user_rates.get(user_id)
        if user is None and user_id in self._users:
            user = MessageRate.for_user(self._settings)
            if user is not None:
                self._user_rates[user_id] = user
        rate = MessageRate.for_connection(self._settings, max_message_bytes, user)
        socket.rate = rate
        return rate

    def _refuse(self, code: str, message: str) -> None:
        self.refused += 1
        raise TooManyConnections(code, message)

    def release(self, request: web.Request) -> None:
        self.release_slot(self.take_slot(request))

    def take_slot(self, request: web.Request) -> Slot | None:
        """The request's counted slot, which its caller now frees with `release_slot` (a
        WebSocket outlives the request that upgraded it)."""
        slot: Slot | None = request.pop(SLOT, None)
        return slot

    def release_slot(self, slot: Slot | None) -> None:
        if slot is None:
            return
        if slot.user_id is not None and not _decrement(self._users, slot.user_id):
            # The user's last connection: the next one starts with full shared buckets.
            self._user_rates.pop(slot.user_id, None)
        if slot.ip is not None:
            _decrement(self._ips, slot.ip)


@web.middleware
async def connection_slots(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer a refused connection with 429 and `Retry-After`; free a counted slot when its
    request (the whole life of its WebSocket) ends."""
    try:
        return await handler(request)
    except TooManyConnections as error:
        # One line per refused connection, in the same form as 401/403/503 refusals.
        note_rejection(request, 429, error.code, f"from {request.remote}: {error}")
        return error_response(
            429, error.code, str(error), {"Retry-After": str(CONNECTION_RETRY_AFTER_S)}
        )
    finally:
        request.app[CONNECTIONS].release(request)


def _decrement(counts: dict[str, int], key: str) -> int:
    """Count one less for `key` and return how many are left."""
    left = counts.get(key, 0) - 1
    if left > 0:
        counts[key] = left
        return left
    # Keys go with their last connection: the maps hold only who is connected.
    counts.pop(key, None)
    return 0


def _in_networks(address: str, networks: tuple[IPNetwork, ...]) -> bool:
    if not networks:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False
