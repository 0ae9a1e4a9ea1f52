"""JSON error responses, `{"error": {"code": ..., "message": ...}}`, for every failure."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from collab.errors import (
    AuthError,
    DocumentTooLarge,
    ForbiddenError,
    ProtocolError,
    RoomUnavailable,
)
from collab.observability.rejections import (
    REJECTION_STATUSES,
    auth_failure_reason,
    note_rejection,
)

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    body = orjson.dumps({"error": {"code": code, "message": message}})
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


def _http_error_code(error: web.HTTPException) -> str:
    return error.reason.lower().replace(" ", "_").replace("-", "_")


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every error of a handler into a JSON error response with the right status."""
    try:
        return await handler(request)
    except ForbiddenError as error:
        note_rejection(request, 403, auth_failure_reason(error), str(error))
        return error_response(403, "forbidden", str(error))
    except AuthError as error:
        note_rejection(request, 401, auth_failure_reason(error), str(error))
        return error_response(
            401, "unauthorized", str(error), {"WWW-Authenticate": 'Bearer realm="collab"'}
        )
    except RoomUnavailable as error:
        note_rejection(request, 503, "room_unavailable", str(error))
        return error_response(503, "room_unavailable", str(error), {"Retry-After": "1"})
    except DocumentTooLarge as error:
        return error_response(413, "document_too_large", str(error))
    except ProtocolError as error:
        return error_response(400, "invalid_input", str(error))
    except web.HTTPException as error:
        if error.status < 400:
            raise
        message = (
            error.text
            if error.text and not error.text.startswith(str(error.status))
            else (error.reason)
        )
        if error.status in REJECTION_STATUSES:
            note_rejection(request, error.status, _http_error_code(error), message)
        # The error's own headers (Allow on a 405, Sec-WebSocket-Version on a 426) stay.
        kept = {
            name: value
            for name, value in error.headers.items()
            if name.lower() not in ("content-type", "content-length")
        }
        return error_response(error.status, _http_error_code(error), message, kept)
