"""`create_app`: the one place that chooses implementations and wires the application."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from collab.auth import TokenVerifier
from collab.bus.base import Bus
from collab.bus.memory import MemoryBus
from collab.protocol.close_codes import CloseCode
from collab.rooms.manager import RoomLimits, RoomManager
from collab.settings import Settings
from collab.store import create_store
from collab.store.base import Store
from collab.web import rest
from collab.web.errors import json_errors
from collab.web.keys import BUS, ROOMS, SETTINGS, STORE, VERIFIER
from collab.web.ws_docs import ws_docs


def create_app(
    settings: Settings, *, store: Store | None = None, bus: Bus | None = None
) -> web.Application:
    """Build the application. `store` and `bus` default to what `settings` name; tests
    inject their own. Raises `ConfigError` for settings that cannot be served."""
    app = web.Application(middlewares=[json_errors], client_max_size=settings.max_request_bytes)
    app[SETTINGS] = settings
    app[VERIFIER] = TokenVerifier(settings)
    app[STORE] = store if store is not None else create_store(settings.database_url)
    app[BUS] = bus if bus is not None else _create_bus(settings)
    app[ROOMS] = RoomManager(
        app[STORE],
        app[BUS],
        RoomLimits(
            flush_interval_s=settings.flush_interval_ms / 1000,
            flush_max_batch=settings.flush_max_batch,
            compact_after_updates=settings.compact_after_updates,
            grace_s=settings.room_grace_s,
            max_awareness_state_bytes=settings.max_awareness_state_bytes,
            max_pending_per_room=settings.store_backlog_per_room,
            awareness_timeout_s=settings.awareness_timeout_s,
        ),
    )
    app.cleanup_ctx.append(_services)
    app.on_shutdown.append(_close_connections)
    app.router.add_get("/ws/docs/{workspace_id}/{note_id}", ws_docs)
    rest.add_routes(app)
    return app


def _create_bus(settings: Settings) -> Bus:
    if settings.redis_url is None:
        return MemoryBus(instance_id=settings.instance_id)
    from collab.bus.redis import RedisBus

    return RedisBus(settings.redis_url, instance_id=settings.instance_id)


async def _services(app: web.Application) -> AsyncIterator[None]:
    store, bus, rooms = app[STORE], app[BUS], app[ROOMS]
    await store.open()
    try:
        await bus.start()
        try:
            await rooms.start()
            yield
            await rooms.close()
        finally:
            await bus.close()
    finally:
        await store.close()


async def _close_connections(app: web.Application) -> None:
    """On shutdown: tell every client to reconnect elsewhere (1012), then flush rooms."""
    await app[ROOMS].close(close_code=CloseCode.SERVICE_RESTART)
