"""JSON error responses, `{"error": {"code": ..., "message": ...}}`, for every failure."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus

import orjson
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMethod, HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestPayloadError

from collab.auth.tokens import MAX_TOKEN_BYTES
from collab.errors import (
    AuthError,
    BusError,
    DocumentTooLarge,
    ForbiddenError,
    MissingDependencies,
    NoteGone,
    ProtocolError,
    RoomUnavailable,
    StoreError,
)
from collab.rooms.budget import ApplyBudgetExceeded
from collab.rooms.trial import UpdateTooCostly
from collab.web.http.rejections import (
    REJECTION_STATUSES,
    auth_failure_reason,
    note_rejection,
)
from collab.web.http.security_headers import API_CSP, SECURITY_HEADERS

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# aiohttp's parser limits (its default is 8190 for both), raised so that a token of the
# verifier's maximum fits in `?token=` and in `Authorization: Bearer`. They differ so that a
# `LineTooLong` says which one was exceeded (its second argument is the limit).
MAX_REQUEST_LINE_BYTES = MAX_TOKEN_BYTES + 1024
MAX_HEADER_FIELD_BYTES = MAX_TOKEN_BYTES + 512
# nginx's "client closed request": logged and counted, never sent (nobody is listening).
CLIENT_CLOSED_REQUEST = 499
# Spelled out: HTTPStatus phrases (which the codes would otherwise come from) vary by Python.
HEADERS_TOO_LARGE = "request_header_fields_too_large"


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
    except NoteGone as error:
        return error_response(error.status, error.code, str(error))
    except StoreError as error:
        # The database is down or refused: the client may retry; the details stay in the log.
        log.warning("%s %s: store failed: %s", request.method, request.path, error)
        return error_response(
            503,
            "store_unavailable",
            "the database is unavailable; retry later",
            {"Retry-After": "1"},
        )
    except BusError as error:
        # Redis (the bus, presence) is down: as for the database.
        log.warning("%s %s: Redis failed: %s", request.method, request.path, error)
        return error_response(
            503,
            "redis_unavailable",
            "Redis (presence and the bus between instances) is unavailable; retry later",
            {"Retry-After": "1"},
        )
    except DocumentTooLarge as error:
        return error_response(413, "document_too_large", str(error))
    except ApplyBudgetExceeded as error:
        note_rejection(request, 429, "throttled", str(error))
        return error_response(
            429, "throttled", str(error), {"Retry-After": str(error.retry_after_s)}
        )
    except UpdateTooCostly as error:
        return error_response(422, "update_too_costly", str(error))
    except MissingDependencies as error:
        return error_response(409, "missing_dependencies", str(error))
    except ProtocolError as error:
        return error_response(400, "invalid_input", str(error))
    except RequestPayloadError as error:
        # The body did not decode: compressed (Content-Encoding) but not inflatable, or its
        # chunked framing broken. The client's doing.
        note_rejection(request, 400, "invalid_body", str(error))
        return error_response(
            400,
            "invalid_body",
            f"the request body does not decode ({error}): send it as its Content-Encoding says",
        )
    except ConnectionError:
        # A client that hangs up mid-body makes `request.read()` raise ConnectionResetError.
        # That is the client's doing, not a server fault: answered (in the access log and the
        # request metrics) as 499, with no traceback. A connection error while the client is
        # still there is some dependency's, and stays a 500.
        if request.transport is not None and not request.transport.is_closing():
            raise
        return error_response(
            CLIENT_CLOSED_REQUEST,
            "client_closed_request",
            "the client closed the connection before the request was complete",
        )
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


class JsonErrorProtocol(web.RequestHandler):
    """aiohttp's per-connection protocol, answering what never reaches the application (a
    request its parser refuses, a handler's uncaught exception) with the JSON error body.

    aiohttp has no hook for requests its parser refuses (aio-libs/aiohttp#3287): they skip
    the middlewares and `on_response_prepare`, so overriding `handle_error` is the one clean
    place. The default answers in plain text and logs the parser's exception with a traceback
    at ERROR; that exception quotes the offending line, which may carry a token."""

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if isinstance(exc, HttpProcessingError):
            status, code, text = self._refusal(exc)
            # Like aiohttp, a bad method (often TLS sent to this plain-HTTP port) is DEBUG.
            level = logging.DEBUG if isinstance(exc, BadHttpMethod) else logging.INFO
            log.log(
                level, "refused an unparsable request from %s: %d %s", request.remote, status, code
            )
        else:
            # A handler's uncaught exception (500) or timeout (504): a server fault.
            self.log_exception("Error handling request from %s", request.remote, exc_info=exc)
            code = _http_status_code(status)
            text = HTTPStatus(status).description
        if request.writer.output_size > 0:
            # As in aiohttp: part of a response went out, so no other can be sent.
            raise ConnectionError("response already started; cannot send the error response")
        response = error_response(status, code, text)
        # Never through `on_response_prepare`, which adds these to every other response.
        response.headers.update(SECURITY_HEADERS)
        response.headers["Content-Security-Policy"] = API_CSP
        response.force_close()
        return response

    def _refusal(self, error: HttpProcessingError) -> tuple[int, str, str]:
        """Status, code and message for a request the parser refused. The request is never
        quoted (the parser's own message does quote it)."""
        if isinstance(error, LineTooLong):
            limit = error.args[1] if len(error.args) > 1 else None
            if limit == self.max_line_size:
                return (
                    HTTPStatus.REQUEST_URI_TOO_LONG,
                    "request_uri_too_long",
                    f"the request line is longer than {limit} bytes: shorten the URL "
                    f"(a token is at most {MAX_TOKEN_BYTES} bytes)",
                )
            if limit == self.max_field_size:
                return (
                    HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                    HEADERS_TOO_LARGE,
                    f"a request header is longer than {limit} bytes: shorten it "
                    f"(a token is at most {MAX_TOKEN_BYTES} bytes)",
                )
        elif error.message.startswith("Too many headers"):
            return (
                HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                HEADERS_TOO_LARGE,
                f"more than {self.max_headers} request headers: send fewer",
            )
        return (
            HTTPStatus.BAD_REQUEST,
            "malformed_request",
            f"the request is not valid HTTP/1.1 ({type(error).__name__}); nothing was processed",
        )


def _http_status_code(status: int) -> str:
    return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")


class JsonErrorServer(web.Server):
    """`web.Server` whose connections are `JsonErrorProtocol`s.

    aiohttp takes no protocol class: `web.Server.__call__` (the asyncio protocol factory)
    builds `RequestHandler` itself, so a subclass overriding it is how to choose another; the
    alternatives are patching aiohttp or filtering its log records, which would still answer
    in plain text."""

    @classmethod
    def like(cls, server: web.Server) -> JsonErrorServer:
        """A server configured like `server` (the one `AppRunner` makes for the app). Reads
        its `_loop` and `_kwargs`: the application passes its `handler_args` in there."""
        return cls(
            server.request_handler,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            loop=server._loop,
            **server._kwargs,
        )

    def __call__(self) -> web.RequestHandler:
        return JsonErrorProtocol(self, loop=self._loop, **self._kwargs)


class JsonErrorAppRunner(web.AppRunner):
    """`web.AppRunner` serving through `JsonErrorServer`: how `collab serve` runs the app."""

    async def _make_server(self) -> web.Server:
        return JsonErrorServer.like(await super()._make_server())
