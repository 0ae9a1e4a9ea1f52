"""The operators' API (`/api/v1/admin/…`): one bearer token, `COLLAB_ADMIN_TOKEN`."""

from __future__ import annotations

import hmac

from aiohttp import web

from collab.errors import AuthError, ForbiddenError
from collab.web.http.requests import offered_token
from collab.web.keys import SETTINGS


def check_admin(request: web.Request) -> None:
    """Refuse a request without the admin token: 404 while the admin API is disabled (no
    token set), 401 without a token, 403 with another one (compared in constant time)."""
    expected = request.app[SETTINGS].admin_token
    if expected is None:
        raise web.HTTPNotFound(
            text="the admin API is disabled; set COLLAB_ADMIN_TOKEN on every instance to enable it"
        )
    offered = offered_token(request, allow_query=False)
    if not offered:
        raise AuthError("the admin API needs Authorization: Bearer <COLLAB_ADMIN_TOKEN>")
    if not hmac.compare_digest(offered.encode(), expected.reveal().encode()):
        raise ForbiddenError("wrong admin token")
