"""`create_app`: the one place that chooses implementations and wires the application."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from collab.auth.revocations import RevocationList
from collab.auth.tokens import TokenVerifier
from collab.bus.base import Bus
from collab.bus.memory import MemoryBus
from collab.delivery.client import WebhookClient
from collab.delivery.retries import RetryPolicy
from collab.delivery.sealing import SecretSealer
from collab.delivery.service import WebhookService
from collab.presence.base import PresenceStore
from collab.presence.memory import MemoryPresenceStore
from collab.presence.registry import LocalPresence
from collab.presence.service import PresenceService
from collab.protocol.close_codes import CloseCode
from collab.rooms.catalog import NotesCatalog
from collab.rooms.manager import RoomLimits, RoomManager
from collab.rooms.notifier import Notifier
from collab.rooms.reminders import Clock, DueReminders
from collab.rooms.version_retention import RetentionPolicy
from collab.rooms.versions import NoteHistory
from collab.rooms.workspaces import PresenceHub
from collab.settings import Settings
from collab.store import Database, create_store
from collab.tasks import cancel_and_wait
from collab.web import static
from collab.web.api import (
    dev,
    documents,
    health,
    note_access,
    notes,
    notifications,
    presence,
    versions,
    webhooks,
)
from collab.web.api.email import setup_email
from collab.web.api.members import setup_members
from collab.web.api.revocations import setup_revocations
from collab.web.http.connections import ConnectionCounter, connection_slots
from collab.web.http.errors import MAX_HEADER_FIELD_BYTES, MAX_REQUEST_LINE_BYTES, json_errors
from collab.web.http.jwks import fetch_keys_for_unknown_kids, setup_jwks
from collab.web.http.observability import setup_observability
from collab.web.http.request_limits import RequestLimits, request_limits
from collab.web.http.security import add_security_headers, cors_and_gzip
from collab.web.keys import (
    BUS,
    CATALOG,
    CATALOG_STORE,
    CONNECTIONS,
    DATABASE,
    HISTORY,
    LIVENESS,
    NOTIFICATIONS,
    NOTIFIER,
    PRESENCE,
    PRESENCE_STORE,
    REMINDERS,
    REQUEST_LIMITS,
    ROOMS,
    SESSIONS,
    SETTINGS,
    STORE,
    VERIFIER,
    WEBHOOKS,
)
from collab.web.sockets.liveness import Liveness
from collab.web.sockets.recheck import recheck_connections
from collab.web.sockets.sessions import Sessions
from collab.web.ws.docs import ws_docs
from collab.web.ws.live import ws_live

# A dead instance's presence entries expire after this many missed renewals.
PRESENCE_TTL_HEARTBEATS = 3


def create_app(
    settings: Settings,
    *,
    store: Database | None = None,
    bus: Bus | None = None,
    presence_store: PresenceStore | None = None,
    clock: Clock | None = None,
) -> web.Application:
    """Build the application. `store` (the `Database`), `bus` and `presence_store` default
    to what `settings` name; tests inject their own, and a `clock` for the deadline
    reminders (default: the system's). Raises `ConfigError` for settings that cannot be
    served."""
    app = web.Application(
        # cors_and_gzip outside json_errors sees (and can compress) error bodies too;
        # connection_slots innermost turns a refused upgrade into 429 and frees slots.
        # fetch_keys_for_unknown_kids before anything that verifies a token; request_limits
        # before it, so a client over its REST limits costs no key fetch.
        middlewares=[
            cors_and_gzip,
            json_errors,
            request_limits,
            fetch_keys_for_unknown_kids,
            connection_slots,
        ],
        client_max_size=settings.max_request_bytes,
        # aiohttp's keep-alive timer also runs from accept until a request's headers are
        # complete, so it is the handshake deadline (slowloris) as well as the idle bound.
        handler_args={
            "keepalive_timeout": settings.handshake_timeout_s,
            "max_line_size": MAX_REQUEST_LINE_BYTES,
            "max_field_size": MAX_HEADER_FIELD_BYTES,
            # A request answered before its body was read (401, 413, 429…) ends its
            # connection at once. By default aiohttp keeps reading the unread body for 10 s
            # to keep the connection alive, so a client refused at once with a trickling body
            # still held a file handle: handles are what a flood of such requests exhausts.
            "lingering_time": 0,
        },
    )
    app.on_response_prepare.append(add_security_headers)
    app[CONNECTIONS] = ConnectionCounter(settings)
    app[REQUEST_LIMITS] = RequestLimits(settings)
    app[SETTINGS] = settings
    app[VERIFIER] = TokenVerifier(settings, revocations=RevocationList())
    app[SESSIONS] = Sessions(app[VERIFIER], leeway_s=settings.jwt_leeway_s)
    app[LIVENESS] = Liveness(settings.heartbeat_s)
    database = (
        store
        if store is not None
        else create_store(settings.database_url, pool_size=settings.database_pool_size)
    )
    app[DATABASE] = database
    app[BUS] = bus if bus is not None else _create_bus(settings)
    # Each part gets the one interface of the database it uses.
    app[STORE] = database
    app[NOTIFICATIONS] = database
    app[CATALOG_STORE] = database
    notifier = Notifier(
        app[NOTIFICATIONS],
        database,
        app[BUS],
        # The catalog is made below: looked up when a mention is checked.
        can_read=lambda room_id, user_id: app[CATALOG].can_read(room_id, user_id),
    )
    app[NOTIFIER] = notifier
    app[PRESENCE_STORE] = (
        presence_store if presence_store is not None else _create_presence_store(settings)
    )
    hub = PresenceHub(LocalPresence())
    app[PRESENCE] = hub
    catalog = NotesCatalog(
        app[CATALOG_STORE],
        app[STORE],
        app[BUS],
        interval_s=settings.catalog_interval_ms / 1000,
        trash_retention_s=settings.trash_retention_days * 86400,
        deliver=lambda workspace_id, event, audience: hub.deliver(workspace_id, [event], audience),
        # On every instance, after a note's access changed: its connections re-decided.
        on_access=lambda room_id, access: recheck_connections(app, [room_id]),
    )
    app[CATALOG] = catalog
    history = NoteHistory(
        database,
        catalog,
        interval_s=settings.version_interval_s,
        policy=RetentionPolicy(
            keep_all_s=settings.version_keep_all_hours * 3600,
            hourly_s=settings.version_hourly_days * 86400,
            daily_s=settings.version_daily_days * 86400,
        ),
    )
    app[HISTORY] = history
    app[WEBHOOKS] = WebhookService(
        database,
        WebhookClient(
            allow_private=settings.webhook_allow_private, timeout_s=settings.webhook_timeout_s
        ),
        RetryPolicy(retry_s=settings.webhook_retry_s, first_delay_s=settings.webhook_first_retry_s),
        sealer=SecretSealer([key.reveal() for key in settings.webhook_secret_keys]),
    )
    app[REMINDERS] = DueReminders(
        database,
        app[CATALOG_STORE],
        catalog,
        notifier,
        due_soon_s=settings.due_soon_s,
        clock=clock,
    )
    # The change listeners, in the order they are told of each change.
    app[ROOMS] = RoomManager(
        app[STORE],
        app[BUS],
        room_limits(settings),
        listeners=[
            notifier.document_changed,
            catalog.indexer.document_changed,
            history.document_changed,
        ],
        unload_listeners=[
            notifier.room_unloaded,
            catalog.indexer.room_unloaded,
            history.room_unloaded,
        ],
    )
    catalog.bind(app[ROOMS])
    history.bind(app[ROOMS])
    app.cleanup_ctx.append(_services)
    # These run inside _services: the key fetcher, revocations, the member directory and the
    # email digests need the store and bus.
    setup_jwks(app)
    setup_revocations(app, database)
    setup_members(app, database)
    setup_email(app, database)
    app.on_shutdown.append(_close_connections)
    app.router.add_get("/ws/docs/{workspace_id}/{note_id}", ws_docs)
    app.router.add_get("/ws/live", ws_live)
    documents.add_routes(app)
    health.add_routes(app)
    # /metrics, request ids, and the outermost middleware (it counts final statuses).
    setup_observability(app)
    presence.add_routes(app)
    notifications.add_routes(app)
    notes.add_routes(app)
    note_access.add_routes(app)
    versions.add_routes(app)
    webhooks.add_routes(app)
    dev.add_routes(app)
    static.add_routes(app)
    return app


def room_limits(settings: Settings) -> RoomLimits:
    return RoomLimits(
        flush_interval_s=settings.flush_interval_ms / 1000,
        flush_max_batch=settings.flush_max_batch,
        compact_after_updates=settings.compact_after_updates,
        grace_s=settings.room_grace_s,
        max_awareness_state_bytes=settings.max_awareness_state_bytes,
        max_document_bytes=settings.max_document_bytes,
        max_pending_per_room=settings.store_backlog_per_room,
        awareness_timeout_s=settings.awareness_timeout_s,
        awareness_batch_s=settings.awareness_batch_ms / 1000,
        awareness_max_per_s=settings.awareness_max_per_s,
        max_initial_syncs=settings.max_initial_syncs,
        max_apply_s=settings.max_apply_ms / 1000,
        apply_s_per_s=settings.apply_ms_per_s / 1000,
        apply_burst_s=settings.apply_burst_ms / 1000,
        throttle_s=settings.throttle_s,
    )


def _create_presence_store(settings: Settings) -> PresenceStore:
    ttl_s = PRESENCE_TTL_HEARTBEATS * settings.presence_heartbeat_s
    if settings.redis_url is None:
        return MemoryPresenceStore(ttl_s)
    from collab.presence.redis import RedisPresenceStore

    return RedisPresenceStore(settings.redis_url, ttl_s=ttl_s)


def _create_bus(settings: Settings) -> Bus:
    if settings.redis_url is None:
        return MemoryBus(instance_id=settings.instance_id)
    from collab.bus.redis import RedisBus

    return RedisBus(settings.redis_url, instance_id=settings.instance_id)


async def _services(app: web.Application) -> AsyncIterator[None]:
    database, bus, rooms, settings = app[DATABASE], app[BUS], app[ROOMS], app[SETTINGS]
    await database.open()
    try:
        # Before anything runs: secrets the configured keys cannot read stop the start here.
        await app[WEBHOOKS].reseal()
        await bus.start()
        try:
            presence = PresenceService(
                app[PRESENCE].local,
                app[PRESENCE_STORE],
                bus,
                instance_id=bus.instance_id,
                heartbeat_s=settings.presence_heartbeat_s,
                on_events=app[PRESENCE].deliver,
            )
            app[PRESENCE].bind(presence)
            await rooms.start()
            await app[CATALOG].start()
            await app[HISTORY].start()
            await app[REMINDERS].start()
            await app[WEBHOOKS].start()
            await presence.start()
            sweeper = asyncio.create_task(app[LIVENESS].run(), name="liveness")
            yield
            await cancel_and_wait([sweeper])
            await rooms.close()
            await app[HISTORY].close()
            await app[REMINDERS].close()
            await app[CATALOG].close()
            await presence.close()
            await app[NOTIFIER].close()
            await app[PRESENCE_STORE].close()
            await app[WEBHOOKS].close()
        finally:
            await bus.close()
    finally:
        await database.close()


async def _close_connections(app: web.Application) -> None:
    """On shutdown (the listening socket is closed already): tell every client to reconnect
    elsewhere (1012), in waves over `COLLAB_DRAIN_S`, then flush rooms. The sockets left
    after the rooms closed theirs (the live channel's) close the same way, at once."""
    settings = app[SETTINGS]
    await app[ROOMS].close(
        close_code=CloseCode.SERVICE_RESTART,
        drain_s=settings.drain_s,
        shutdown_timeout_s=settings.shutdown_timeout_s,
    )
    await app[LIVENESS].close_all(CloseCode.SERVICE_RESTART, "server shutting down; reconnect")
