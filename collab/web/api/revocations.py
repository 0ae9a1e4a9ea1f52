"""Revocations: an operator shuts a user out until a time, on every instance at once.

`POST /api/v1/admin/revocations` (Bearer `COLLAB_ADMIN_TOKEN`) stores the revocation
durably, then publishes it on the bus room `admin:revocations`. Every instance (this one
included) puts it in its `RevocationList`, which `TokenVerifier` consults for each new
connection and request (403), and closes the user's open sockets with 4403. The list is
loaded from the store at start and reloaded whenever the bus may have lost messages, so a
revocation holds on instances that start or reconnect later.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import orjson
from aiohttp import web

from collab.auth.revocations import RevocationList
from collab.bus.base import Bus
from collab.errors import StoreError
from collab.protocol.close_codes import CloseCode
from collab.rooms.directory import is_user_id
from collab.store.revocations import RevocationStore
from collab.tasks import cancel_and_wait
from collab.web.http.admin import check_admin
from collab.web.http.requests import require_json
from collab.web.keys import BUS, REVOCATION_SERVICE, SESSIONS, VERIFIER
from collab.web.sockets.sessions import REVOKED_REASON, Sessions

log = logging.getLogger(__name__)

REVOCATIONS_ROOM = "admin:revocations"
MAX_REVOCATION_S = 10 * 366 * 86_400
_NUMBER = re.compile(r"[0-9]+(\.[0-9]+)?")


class RevocationService:
    def __init__(
        self, store: RevocationStore, bus: Bus, revocations: RevocationList, sessions: Sessions
    ) -> None:
        self._store = store
        self._bus = bus
        self._revocations = revocations
        self._sessions = sessions
        self._reload_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Load the active revocations, then follow the bus. Raises `StoreError`."""
        await self._reload()
        await self._bus.subscribe(REVOCATIONS_ROOM, self._on_message, self._on_resync)

    async def close(self) -> None:
        await cancel_and_wait([self._reload_task])
        await self._bus.unsubscribe(REVOCATIONS_ROOM)

    async def revoke(self, user_id: str, until: float) -> int:
        """Store, apply and publish a revocation; return how many local sockets it closed.
        Raises `StoreError` (then nothing is applied)."""
        await self._store.put_revocation(user_id, datetime.fromtimestamp(until, UTC))
        self._bus.publish(REVOCATIONS_ROOM, orjson.dumps({"user": user_id, "until": until}))
        return self._apply(user_id, until)

    def _apply(self, user_id: str, until: float) -> int:
        self._revocations.set(user_id, until)
        if self._revocations.revoked_until(user_id) is None:
            return 0
        closed = self._sessions.close_user(user_id, CloseCode.FORBIDDEN, REVOKED_REASON)
        if closed:
            log.warning("revoked %s until %s: closed %d sockets", user_id, _iso(until), closed)
        return closed

    def _on_message(self, room_id: str, frame: bytes) -> None:
        try:
            message = orjson.loads(frame)
            user_id, until = message["user"], message["until"]
            if not isinstance(user_id, str) or not isinstance(until, int | float):
                raise TypeError
        except (orjson.JSONDecodeError, KeyError, TypeError):
            log.warning("dropped an invalid revocation message from the bus: %r", frame[:100])
            return
        self._apply(user_id, float(until))

    def _on_resync(self, room_id: str) -> None:
        # Messages may have been lost: the store has every revocation.
        if self._reload_task is None or self._reload_task.done():
            self._reload_task = asyncio.create_task(self._reload_logged(), name="revocations")

    async def _reload_logged(self) -> None:
        try:
            await self._reload()
        except StoreError as error:
            log.error("revocations could not be reloaded: %s", error)

    async def _reload(self) -> None:
        active = await self._store.active_revocations(datetime.now(UTC))
        self._revocations.replace_all({user: t.timestamp() for user, t in active.items()})
        for user_id, until in active.items():
            self._apply(user_id, until.timestamp())


def parse_until(raw: object, now: float) -> float:
    """`until` of a request: an ISO-8601 time with a timezone, or a number of seconds from
    now (as a JSON number or string). Raises `ValueError` with what is accepted."""
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        seconds = float(raw)
    elif isinstance(raw, str) and _NUMBER.fullmatch(raw.strip()):
        seconds = float(raw)
    elif isinstance(raw, str):
        try:
            moment = datetime.fromisoformat(raw.strip())
        except ValueError:
            raise ValueError(_UNTIL_FORMS) from None
        if moment.tzinfo is None:
            raise ValueError("'until' needs a timezone, e.g. 2030-01-01T00:00:00Z")
        seconds = moment.timestamp() - now
    else:
        raise ValueError(_UNTIL_FORMS)
    if not math.isfinite(seconds) or not -MAX_REVOCATION_S <= seconds <= MAX_REVOCATION_S:
        raise ValueError("'until' must be within 10 years of now")
    return now + seconds


_UNTIL_FORMS = (
    "'until' must be an ISO-8601 time with a timezone (2030-01-01T00:00:00Z) or a number "
    "of seconds from now (3600); a time not in the future lifts the revocation"
)


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds")


async def post_revocation(request: web.Request) -> web.Response:
    check_admin(request)
    require_json(request)
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        raise web.HTTPBadRequest(text='expected a JSON body {"user": ..., "until": ...}') from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text='expected a JSON object {"user": ..., "until": ...}')
    user_id = body.get("user")
    if not is_user_id(user_id):
        raise web.HTTPBadRequest(
            text="'user' must be a user id (the token's sub): 1-256 characters, no control "
            "characters"
        )
    now = datetime.now(UTC).timestamp()
    try:
        until = parse_until(body.get("until"), now)
    except ValueError as error:
        raise web.HTTPBadRequest(text=str(error)) from None
    try:
        closed = await request.app[REVOCATION_SERVICE].revoke(user_id, until)
    except StoreError as error:
        log.error("revocation of %s not stored: %s", user_id, error)
        raise web.HTTPServiceUnavailable(
            text="the store is unavailable; nothing was revoked"
        ) from None
    active = until > now
    return web.json_response(
        {"user": user_id, "until": _iso(until), "active": active, "closed_here": closed},
        status=201 if active else 200,
    )


async def _run_service(app: web.Application) -> AsyncIterator[None]:
    service = app[REVOCATION_SERVICE]
    await service.start()
    try:
        yield
    finally:
        await service.close()


def setup_revocations(app: web.Application, store: RevocationStore) -> None:
    """Add the revocation service, keeping revocations in `store`, and the admin endpoint.
    Call after the bus, verifier and sessions are set and after the cleanup context that
    opens the store and starts the bus, so the service runs while they do."""
    service = RevocationService(store, app[BUS], app[VERIFIER].revocations, app[SESSIONS])
    app[REVOCATION_SERVICE] = service
    app.router.add_post("/api/v1/admin/revocations", post_revocation)
    app.cleanup_ctx.append(_run_service)
