"""The browser demo (clients/js-demo), built into `collab/web/static/` and served at `/`."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from aiohttp import web

STATIC_PACKAGE = "collab.web"
STATIC_DIR = "static"


def static_root() -> Path | None:
    """The directory holding the built demo, or None when it was not built."""
    root = Path(str(resources.files(STATIC_PACKAGE) / STATIC_DIR))
    return root if (root / "index.html").is_file() else None


def add_routes(app: web.Application) -> None:
    root = static_root()
    if root is None:
        return

    async def index(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(root / "index.html", headers={"Cache-Control": "no-cache"})

    app.router.add_get("/", index)
    if (root / "assets").is_dir():
        app.router.add_static("/assets/", root / "assets", append_version=False)
