"""What the Redis adapters write to the log: URLs without their credentials, and warnings of a
failing backend at most once per interval (a Redis outage would otherwise log per message)."""

from __future__ import annotations

import logging
import time
from urllib.parse import urlsplit

log = logging.getLogger("collab.bus.redis")

LOG_INTERVAL_S = 10.0


def redact_url(url: str) -> str:
    """`url` without credentials or query (which may hold a password), for logs."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}{parts.path}"


class RateLimitedLog:
    """A warning logged at most once per interval, with how many were suppressed meanwhile."""

    def __init__(self, interval_s: float = LOG_INTERVAL_S) -> None:
        self._interval_s = interval_s
        self._next_at = 0.0
        self._suppressed = 0

    def warning(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now < self._next_at:
            self._suppressed += 1
            return
        if self._suppressed:
            message += " (and %d more since the last report)"
            args = (*args, self._suppressed)
        log.warning(message, *args)
        self._suppressed = 0
        self._next_at = now + self._interval_s
