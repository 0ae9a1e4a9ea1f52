"""Liveness and readiness for load balancers: `GET /healthz`, `GET /readyz` (503 when the store
or the bus fails, and while the instance drains its connections on shutdown)."""

from __future__ import annotations

from aiohttp import web

from collab.errors import BusError, StoreError
from collab.web.api.responses import dumps
from collab.web.keys import BUS, DATABASE, ROOMS


async def healthz(request: web.Request) -> web.StreamResponse:
    return web.json_response({"status": "ok"}, dumps=dumps)


async def readyz(request: web.Request) -> web.StreamResponse:
    checks: dict[str, str] = {}
    for name, ping in (("store", request.app[DATABASE].ping), ("bus", request.app[BUS].ping)):
        try:
            await ping()
            checks[name] = "ok"
        except (StoreError, BusError) as error:
            checks[name] = f"failed: {error}"
    rooms = request.app[ROOMS]
    if not rooms.store_healthy and checks["store"] == "ok":
        checks["store"] = "failed: recent writes failed; retrying"
    if rooms.shutting_down:
        checks["instance"] = "failed: shutting down, draining connections"
    ready = all(value == "ok" for value in checks.values())
    return web.json_response(
        {"status": "ready" if ready else "unavailable", "checks": checks},
        status=200 if ready else 503,
        dumps=dumps,
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
