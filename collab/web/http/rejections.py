"""Refused requests and upgrades: one log line each, and auth failures counted by reason.

`json_errors` calls `note_rejection` where a refusal (401, 403, 429, 503) becomes a
response, so every refusal is logged exactly once, before any WebSocket upgrade. The line
names the path (never the query string, which carries tokens) and a reason from a fixed set.
"""

from __future__ import annotations

import logging

from aiohttp import web

from collab.errors import AuthError, ForbiddenError
from collab.web.keys import METRICS

log = logging.getLogger(__name__)

REJECTION_STATUSES = frozenset({401, 403, 429, 503})

# AuthError messages (collab/auth/tokens.py, auth/keys.py, web/http/requests.py) by their
# opening words. Checked in order; tests pin each message the verifier produces to its reason.
_UNAUTHORIZED_REASONS = (
    ("missing token", "missing_token"),
    ("Authorization header", "malformed_header"),
    ("token longer than", "token_too_long"),
    ("token expired", "expired"),
    ("token not valid yet", "not_yet_valid"),
    ("token audience", "wrong_audience"),
    ("token issuer", "wrong_issuer"),
    ("token lacks the required claim", "missing_claim"),
    ("token algorithm", "algorithm_not_allowed"),
    ("token key id", "unknown_key"),
    ("token has no key id", "unknown_key"),
    ("token names ", "unknown_key"),
    ("token signature", "bad_signature"),
    ("token claim", "invalid_claims"),
    ("token grants unknown role", "invalid_claims"),
)
_FORBIDDEN_REASONS = (
    ("origin", "origin_not_allowed"),
    ("access revoked", "revoked"),
    ("the token grants no role", "no_role"),
)


def auth_failure_reason(error: AuthError) -> str:
    """A label from a small fixed set for why `error` refused a request. An error may name
    its own with a `reason` attribute; otherwise its message's opening words decide."""
    explicit = getattr(error, "reason", None)
    if isinstance(explicit, str) and explicit:
        return explicit
    message = str(error)
    forbidden = isinstance(error, ForbiddenError)
    for opening, reason in _FORBIDDEN_REASONS if forbidden else _UNAUTHORIZED_REASONS:
        if message.startswith(opening):
            return reason
    if forbidden:
        return "read_only" if "cannot change documents" in message else "forbidden"
    return "invalid_token"


def note_rejection(request: web.Request, status: int, reason: str, message: str) -> None:
    """Log the refusal of `request` once (and count it, for 401/403, by `reason`)."""
    metrics = request.app.get(METRICS)
    if metrics is not None and status in (401, 403):
        metrics.count_auth_failure(reason)
    upgrade = request.headers.get("Upgrade", "").lower() == "websocket"
    log.log(
        logging.WARNING if status in (401, 403) else logging.INFO,
        "refused %s %s %s: %d %s: %s",
        "upgrade" if upgrade else "request",
        request.method,
        request.path,
        status,
        reason,
        message,
        extra={"status": status, "reason": reason},
    )
