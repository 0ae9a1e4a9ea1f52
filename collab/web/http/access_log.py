"""Access log lines without query strings, because a WebSocket URL carries the token there."""

from __future__ import annotations

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from collab.web.http.observability import REQUEST_ID


class AccessLogger(AbstractAccessLogger):
    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            "%s %s %d %.1fms remote=%s",
            request.method,
            request.path,
            response.status,
            time * 1000,
            request.remote,
            # Written after the request's middlewares finished, so named here explicitly.
            extra={"request_id": request.get(REQUEST_ID)},
        )
