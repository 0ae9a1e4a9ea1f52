"""The one error tree of collab.

    CollabError
    ├── ConfigError        invalid settings (the CLI exits with status 2)
    ├── ProtocolError      untrusted bytes or JSON that do not parse or validate
    │   ├── UnsupportedMessage  well-formed but of a kind this server does not accept
    │   ├── InvalidUpdate       a Yjs update that is malformed or read differently by yjs
    │   │                       (defined with its reader, collab.protocol.updates)
    │   ├── MissingDependencies an update that builds on changes the server does not have
    │   ├── PartlyApplied       the CRDT library refused an update after integrating part of
    │   │                       it (defined with the room, collab.rooms.document)
    │   └── PolicyViolation     valid, but breaks a rule or limit of this server
    │       └── DocumentTooLarge  an update would grow a document past its size cap
    ├── AuthError          missing, invalid or expired token (HTTP 401)
    │   └── ForbiddenError valid token without the role the resource needs (HTTP 403)
    ├── StoreError         the document store failed (adapters convert driver errors)
    ├── BusError           the message bus failed
    └── RoomUnavailable    a room could not be loaded, so it is refused

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
