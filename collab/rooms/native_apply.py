"""Applying a Yjs update to a pycrdt document with the least Python around it.

`Doc.apply_update` wraps pycrdt's native document in a Python `Transaction` (object, lock,
origin bookkeeping, observer error collection), which costs as much as the native apply of a
keystroke-sized update itself. A room applies every edit of every client on the event loop,
so `updater` reaches past that wrapper to the native document and runs the same steps pycrdt
runs: create a transaction, apply, commit (observers fire here), drop.

pycrdt keeps this native layer private. `updater` checks for it once per document and falls
back to the public `Doc.apply_update` when it is missing, so a pycrdt that reorganises it
costs speed, not correctness; `tests/unit/rooms/test_native_apply.py` fails loudly if the
pinned pycrdt no longer offers it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pycrdt import Doc

Updater = Callable[[bytes], None]


def has_native_layer(doc: Doc[Any]) -> bool:
    """Whether this pycrdt exposes the native document `updater` needs."""
    native = getattr(doc, "_doc", None)
    return (
        hasattr(native, "create_transaction")
        and hasattr(native, "apply_update")
        and isinstance(getattr(doc, "_exceptions", None), list)
    )


def updater(doc: Doc[Any]) -> Updater:
    """A function applying one Yjs v1 update to `doc` in a transaction of its own; it raises
    what `Doc.apply_update` raises. For documents no one else holds a transaction on (a
    room's, touched only from the event loop)."""
    if not has_native_layer(doc):
        return doc.apply_update
    native = doc._doc
    observer_errors: list[Exception] = doc._exceptions

    def apply_update(update: bytes) -> None:
        transaction = native.create_transaction()
        try:
            native.apply_update(transaction, update)
        finally:
            # As pycrdt's own Transaction does: commit even after a failed apply, then drop.
            try:
                transaction.commit()
            finally:
                transaction.drop()
        if observer_errors:
            # pycrdt collects what observers raise during the commit and raises it here.
            errors = tuple(observer_errors)
            observer_errors.clear()
            raise ExceptionGroup("Observer callback error", errors)

    return apply_update
