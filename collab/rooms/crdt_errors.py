"""How pycrdt's errors on untrusted input become ours (`ProtocolError`), panics included, and
the one error that carries a change with it (`PartlyApplied`)."""

from __future__ import annotations

from types import TracebackType

from collab.errors import ProtocolError
from collab.protocol.messages import encode_update
from collab.rooms.effects import Edit

__all__ = ["INVALID_UPDATE", "PartlyApplied", "contained_pycrdt_errors", "is_rust_panic"]


def is_rust_panic(error: BaseException) -> bool:
    """pyo3 turns a Rust panic into `PanicException`, a BaseException that is not importable."""
    return type(error).__name__ == "PanicException"


class contained_pycrdt_errors:
    """Turn pycrdt's errors on untrusted input, panics included, into `ProtocolError`.

    A class rather than a generator-based context manager: it wraps every applied edit, and
    an instance holds no state between uses, so one instance serves them all."""

    __slots__ = ("_what",)

    def __init__(self, what: str) -> None:
        self._what = what

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        error_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # Returns None: never swallows; an error leaves as ProtocolError or as itself.
        if error is None:
            return
        if isinstance(error, Exception):
            raise ProtocolError(f"{self._what}: {error}") from error
        if is_rust_panic(error):
            raise ProtocolError(f"{self._what} (decoder panic: {error})") from None


INVALID_UPDATE = contained_pycrdt_errors("invalid Yjs update")


class PartlyApplied(ProtocolError):
    """The CRDT library integrated part of an update before refusing the rest (an item whose
    parent is not a shared type, say: yjs would turn it into a GC struct, yrs raises). The
    part it integrated is in the document: `edit` carries it out like any edit, so editors,
    other instances and the store get what the room has; the sender is still refused."""

    def __init__(self, message: str, change: bytes) -> None:
        super().__init__(message)
        self.change = change
        self.edit = Edit(encode_update(change), change)
