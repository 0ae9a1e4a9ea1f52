"""Typed keys for the application state, set once by `create_app`: all of them here.

The web layer's own services are named for the type checker only (`TYPE_CHECKING`): their
modules read keys from here, so importing them here at run time would be a cycle."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from collab.auth.jwks import JwksFetcher
from collab.auth.tokens import TokenVerifier
from collab.bus.base import Bus
from collab.delivery.service import WebhookService
from collab.presence.base import PresenceStore
from collab.rooms.catalog import NotesCatalog
from collab.rooms.directory import MemberDirectory
from collab.rooms.email_digests import EmailDigests
from collab.rooms.manager import RoomManager
from collab.rooms.notifier import Notifier
from collab.rooms.reminders import DueReminders
from collab.rooms.versions import NoteHistory
from collab.rooms.workspaces import PresenceHub
from collab.settings import Settings
from collab.store.base import Store
from collab.store.catalog import CatalogStore
from collab.store.database import Database
from collab.store.notifications import NotificationStore

if TYPE_CHECKING:
    from collab.web.api.revocations import RevocationService
    from collab.web.http.connections import ConnectionCounter
    from collab.web.http.metrics import Metrics
    from collab.web.http.request_limits import RequestLimits
    from collab.web.sockets.liveness import Liveness
    from collab.web.sockets.sessions import Sessions

SETTINGS = web.AppKey("settings", Settings)
# One backend object behind several keys: the app opens, closes and pings the DATABASE; the
# parts that read STORE, NOTIFICATIONS and CATALOG_STORE see only the interface they use.
DATABASE = web.AppKey("database", Database)
STORE = web.AppKey("store", Store)
BUS = web.AppKey("bus", Bus)
ROOMS = web.AppKey("rooms", RoomManager)
VERIFIER = web.AppKey("verifier", TokenVerifier)
NOTIFICATIONS = web.AppKey("notifications", NotificationStore)
NOTIFIER = web.AppKey("notifier", Notifier)
CATALOG_STORE = web.AppKey("catalog_store", CatalogStore)
CATALOG = web.AppKey("catalog", NotesCatalog)
HISTORY = web.AppKey("history", NoteHistory)
REMINDERS = web.AppKey("reminders", DueReminders)
DIRECTORY = web.AppKey("directory", MemberDirectory)
# Set only when email digests are configured (COLLAB_SMTP_URL).
EMAIL_DIGESTS = web.AppKey("email_digests", EmailDigests)
PRESENCE = web.AppKey("presence", PresenceHub)
PRESENCE_STORE = web.AppKey("presence_store", PresenceStore)
REQUEST_LIMITS: web.AppKey[RequestLimits] = web.AppKey("request_limits")
SESSIONS: web.AppKey[Sessions] = web.AppKey("sessions")
CONNECTIONS: web.AppKey[ConnectionCounter] = web.AppKey("connections")
JWKS: web.AppKey[JwksFetcher] = web.AppKey("jwks")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
REVOCATION_SERVICE: web.AppKey[RevocationService] = web.AppKey("revocation_service")
LIVENESS: web.AppKey[Liveness] = web.AppKey("liveness")
WEBHOOKS = web.AppKey("webhooks", WebhookService)
