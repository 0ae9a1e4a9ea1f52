"""`RateLimitedLog`: a warning that a failing backend or a rollout would otherwise write for
every message or every delivery, logged at most once per interval with a count of the rest."""

from __future__ import annotations

import logging
import time

LOG_INTERVAL_S = 10.0


class RateLimitedLog:
    """A warning logged to `logger` at most once per interval, with how many were suppressed
    meanwhile."""

    def __init__(self, logger: logging.Logger, interval_s: float = LOG_INTERVAL_S) -> None:
        self._logger = logger
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
        self._logger.warning(message, *args)
        self._suppressed = 0
        self._next_at = now + self._interval_s
