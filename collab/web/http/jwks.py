"""With `COLLAB_JWKS_URL` set: the key fetcher (`collab.auth.jwks.JwksFetcher`) started with the
app, and the middleware that fetches again when a token names a `kid` nobody knows."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import jwt
from aiohttp import web

from collab.auth.jwks import JwksFetcher
from collab.web.http.requests import offered_token
from collab.web.keys import JWKS, SETTINGS, VERIFIER

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def fetch_keys_for_unknown_kids(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Before a handler verifies a token synchronously, fetch the JWKS again if the token
    names a `kid` not known yet (rate-limited by the fetcher). Bad tokens are left to the
    handler, which refuses them with the precise reason."""
    verifier = request.app[VERIFIER]
    if verifier.fetch_keys is not None:
        token = offered_token(request, allow_query=True)
        if token:
            try:
                kid = jwt.get_unverified_header(token).get("kid")
            except jwt.PyJWTError:
                kid = None
            if isinstance(kid, str) and kid and not verifier.keys.knows(kid):
                await verifier.fetch_keys(kid)
    return await handler(request)


async def _run_fetcher(app: web.Application) -> AsyncIterator[None]:
    fetcher = app[JWKS]
    await fetcher.start()
    try:
        yield
    finally:
        await fetcher.close()


def setup_jwks(app: web.Application) -> None:
    """With `COLLAB_JWKS_URL` set: add the fetcher (started with the app) and the middleware
    that fetches for unknown kids. Without it: nothing. Call after the verifier is set."""
    settings = app[SETTINGS]
    if settings.jwks_url is None:
        return
    app[JWKS] = JwksFetcher(settings.jwks_url, app[VERIFIER], cache_s=settings.jwks_cache_s)
    app.cleanup_ctx.append(_run_fetcher)
