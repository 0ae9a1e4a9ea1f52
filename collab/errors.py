"""The one error tree of collab.

Every exception class of collab is in it. Those defined elsewhere, beside the code that
raises them, are named with their module (`collab.` left out).

    CollabError
    ├── ConfigError          invalid settings (the CLI exits with status 2)
    ├── ProtocolError        untrusted bytes or JSON that do not parse or validate
    │   ├── UnsupportedMessage   well-formed but of a kind this server does not accept
    │   ├── InvalidUpdate        a Yjs update that is malformed or read differently by yjs
    │   │                        (protocol.updates, with its reader)
    │   ├── MissingDependencies  an update that builds on changes the server does not have
    │   ├── PartlyApplied        the CRDT library refused an update after integrating part
    │   │                        of it (rooms.crdt_errors)
    │   ├── FrameError           a WebSocket frame that breaks RFC 6455, or a message over
    │   │                        the size limit; carries its close code (protocol.websocket)
    │   ├── InflateError         a permessage-deflate message that does not inflate
    │   │                        (protocol.ws_deflate)
    │   ├── LiveMessageError     a live-channel message refused with an error frame; the
    │   │                        connection stays open (web.ws.live)
    │   └── PolicyViolation      valid, but breaks a rule or limit of this server
    │       ├── DocumentTooLarge     an update would grow a document past its size cap
    │       ├── MessageTooLarge      a deflated message inflates past the size limit
    │       │                        (protocol.ws_deflate)
    │       ├── UpdateTooCostly      applying an update took too long on a copy of the
    │       │                        document (rooms.trial)
    │       └── ApplyBudgetExceeded  a user's updates spent their apply-time budget
    │                                (rooms.budget)
    ├── AuthError            missing, invalid or expired token (HTTP 401)
    │   ├── ForbiddenError       valid token without the role the resource needs (HTTP 403)
    │   ├── UnknownKeyId         a token signed with a key id no key has (auth.keys)
    │   ├── MetricsTokenError    /metrics without its token (web.http.observability)
    │   └── RefreshRefused       an in-band token refresh refused; carries the close code,
    │                            4401 or 4403 (web.sockets.sessions)
    ├── StoreError           the document store failed (adapters convert driver errors)
    ├── BusError             the message bus failed
    │   └── _SessionEnded        a Redis pub/sub session is over; never leaves collab.bus
    │                            (bus.redis_session)
    ├── SmtpError            the SMTP server was unreachable, refused the login or a
    │                        message, or was too slow (rooms.smtp)
    ├── RoomUnavailable      a room could not be loaded, so it is refused
    ├── NoteGone             a note in the trash (HTTP 404 `note_trashed`) or purged (HTTP
    │   │                    410 `note_purged`): its document is refused
    │   ├── NoteTrashed
    │   └── NotePurged
    ├── TooManyConnections   a user or client IP holds as many sockets as allowed (HTTP 429)
    │                        (web.http.connections)
    ├── TooManyRequests      a user or client IP is over a request rate (HTTP 429)
    │                        (web.http.request_limits)
    ├── BodyTimeout          a request body that did not arrive in time (HTTP 408); also a
    │                        TimeoutError (web.http.request_limits)
    └── UnsafeUrl            a webhook URL, or an address its host resolves to, that the
                             server does not call (HTTP 422 at registration)
                             (delivery.addresses)

Foreign exceptions are converted into these at the adapter boundary; nothing else is raised
across module boundaries on purpose.
"""

from __future__ import annotations


class CollabError(Exception):
    """Base of every error collab raises on purpose."""


class ConfigError(CollabError):
    """One or more settings are invalid; `problems` holds one message per bad value."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class ProtocolError(CollabError):
    """Untrusted input did not parse or validate."""


class UnsupportedMessage(ProtocolError):
    """A message of a type or kind the server does not accept (e.g. a text frame)."""


class MissingDependencies(ProtocolError):
    """An update that starts after the document's clock for its client, or refers to structs
    or deletes content the document does not have. It is not applied, relayed or stored:
    applied, the server's CRDT library would keep part of it pending and diverge from the
    clients' (a WebSocket peer is answered with sync step 1, HTTP answers 409)."""


class PolicyViolation(ProtocolError):
    """A message that parses but breaks a rule or a limit (e.g. foreign awareness ids)."""


class DocumentTooLarge(PolicyViolation):
    """An update that would grow a document beyond COLLAB_MAX_DOCUMENT_BYTES; it is not
    applied (WebSocket close 1009, HTTP 413)."""


class AuthError(CollabError):
    """The request carries no valid credentials."""

    code = "unauthorized"


class ForbiddenError(AuthError):
    """The credentials are valid but grant no access to this resource."""

    code = "forbidden"


class StoreError(CollabError):
    """The store failed to read or write."""


class BusError(CollabError):
    """The bus failed to publish or subscribe."""


class RoomUnavailable(CollabError):
    """A room could not be loaded; clients are refused rather than served an empty stand-in."""


class NoteGone(CollabError):
    """The note of a room was deleted: its document is refused (WebSocket upgrades and REST
    alike) with `status` and `code`."""

    status = 404
    code = "note_trashed"

    def __init__(self, room_id: str, message: str) -> None:
        self.room_id = room_id
        super().__init__(message)


class NoteTrashed(NoteGone):
    """In the trash: restore it (`POST …/notes/{note_id}/restore`) to open it again."""


class NotePurged(NoteGone):
    """Purged: its content is gone and its id can never be used again."""

    status = 410
    code = "note_purged"
