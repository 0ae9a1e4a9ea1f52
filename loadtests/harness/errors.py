"""The one error a run raises when it cannot be carried out."""

from __future__ import annotations


class RunError(Exception):
    """The run could not be carried out; the message says why (and what to do, if anything)."""
