"""Typed keys for the application state, set once by `create_app`."""

from __future__ import annotations

from aiohttp import web

from collab.auth import TokenVerifier
from collab.bus.base import Bus
from collab.presence.base import PresenceStore
from collab.rooms.manager import RoomManager
from collab.rooms.notifier import Notifier
from collab.rooms.workspaces import PresenceHub
from collab.settings import Settings
from collab.store.base import Store
from collab.store.notifications import NotificationStore

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", Store)
BUS = web.AppKey("bus", Bus)
ROOMS = web.AppKey("rooms", RoomManager)
VERIFIER = web.AppKey("verifier", TokenVerifier)
NOTIFICATIONS = web.AppKey("notifications", NotificationStore)
NOTIFIER = web.AppKey("notifier", Notifier)
PRESENCE = web.AppKey("presence", PresenceHub)
PRESENCE_STORE = web.AppKey("presence_store", PresenceStore)
