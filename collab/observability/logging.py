"""Log setup: the plain text format, or one JSON object per line (`COLLAB_LOG_FORMAT=json`).

Every line logged while a request or a WebSocket connection is handled carries its ids:
`request_id` (set by the request middleware) and `conn_id` (the connection's peer id, set by
the WebSocket handlers). They live in context variables, so tasks a handler starts (a peer's
writer) inherit them and no call has to pass them along.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

request_id_var: ContextVar[str | None] = ContextVar("collab_request_id", default=None)
conn_id_var: ContextVar[str | None] = ContextVar("collab_conn_id", default=None)

# What every LogRecord has; anything else on a record came from `extra=` and is a field.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "request_id",
    "conn_id",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, and when known request_id,
    conn_id, the fields given with `extra=`, and exception (the formatted traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        # An explicit `extra=` wins: the access log is written after the handler returned.
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        if request_id is not None:
            entry["request_id"] = request_id
        conn_id = getattr(record, "conn_id", None) or conn_id_var.get()
        if conn_id is not None:
            entry["conn_id"] = conn_id
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES:
                plain = isinstance(value, str | int | float | bool)
                entry.setdefault(key, value if plain else str(value))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(entry).decode()


def configure_logging(level: str, log_format: str) -> None:
    """Send every log record to stderr, as text (the default) or JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
