"""Typed keys for the application state, set once by `create_app`."""

from __future__ import annotations

from aiohttp import web

from collab.auth import TokenVerifier
from collab.bus.base import Bus
from collab.rooms.manager import RoomManager
from collab.settings import Settings
from collab.store.base import Store

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", Store)
BUS = web.AppKey("bus", Bus)
ROOMS = web.AppKey("rooms", RoomManager)
VERIFIER = web.AppKey("verifier", TokenVerifier)
