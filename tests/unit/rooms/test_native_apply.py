"""`updater` applies updates through pycrdt's native document exactly as `Doc.apply_update`."""

from __future__ import annotations

from typing import Any

import pytest
from pycrdt import Doc, Map, Text, TransactionEvent

from collab.rooms.native_apply import has_native_layer, updater


def edits() -> list[bytes]:
    """A writer's updates: text typed and deleted, a map key set and overwritten."""
    author: Doc[Any] = Doc(client_id=7)
    updates: list[bytes] = []

    def capture(event: TransactionEvent) -> None:
        updates.append(event.update)

    author.observe(capture)
    text = author.get("text", type=Text)
    meta = author.get("meta", type=Map)
    for i in range(20):
        text.insert(len(text), f"w{i} ")
        meta["title"] = f"draft {i}"
    del text[0:5]
    return updates


def observed(doc: Doc[Any]) -> list[bytes]:
    changes: list[bytes] = []

    def capture(event: TransactionEvent) -> None:
        changes.append(event.update)

    doc.observe(capture)
    return changes


def test_the_pinned_pycrdt_has_the_native_layer() -> None:
    """Fails when a pycrdt upgrade removes what the fast path uses: the server would still
    work (it falls back to `Doc.apply_update`), only slower, and this says so."""
    assert has_native_layer(Doc())


def test_native_apply_matches_the_public_api() -> None:
    """Same document, same observed changes, in the same order, also for replays and for an
    update that waits for a missing one."""
    updates = edits()
    order = [updates[1], updates[0], *updates[2:], updates[3]]
    public: Doc[Any] = Doc()
    native: Doc[Any] = Doc()
    public_changes, native_changes = observed(public), observed(native)
    apply_native = updater(native)
    for update in order:
        public.apply_update(update)
        apply_native(update)
    assert native_changes == public_changes
    assert native.get_update() == public.get_update()
    assert str(native.get("text", type=Text)) == str(public.get("text", type=Text))


def test_native_apply_refuses_what_the_public_api_refuses() -> None:
    """An invalid update raises the same error, and the document stays usable."""
    doc: Doc[Any] = Doc()
    apply = updater(doc)
    with pytest.raises(ValueError, match="decode") as public_error:
        Doc().apply_update(b"\x01\x02\x03")
    with pytest.raises(ValueError, match="decode") as native_error:
        apply(b"\x01\x02\x03")
    assert str(native_error.value) == str(public_error.value)
    apply(edits()[0])
    with doc.transaction():
        doc.get("text", type=Text).insert(0, ">")
    assert str(doc.get("text", type=Text)).startswith(">w0")


def test_an_observer_error_is_raised_once_as_pycrdt_raises_it() -> None:
    doc: Doc[Any] = Doc()
    failures = iter([RuntimeError("observer failed")])

    def failing(event: TransactionEvent) -> None:
        failure = next(failures, None)
        if failure is not None:
            raise failure

    doc.observe(failing)
    apply = updater(doc)
    first, second = edits()[:2]
    with pytest.raises(ExceptionGroup, match="Observer callback error"):
        apply(first)
    apply(second)  # nothing left over from the first failure
    with doc.transaction():
        doc.get("text", type=Text).insert(0, "!")


def test_without_the_native_layer_the_public_api_is_used() -> None:
    class OtherDoc:
        def apply_update(self, update: bytes) -> None:
            self.applied = update

    doc = OtherDoc()
    assert not has_native_layer(doc)  # type: ignore[arg-type]
    updater(doc)(b"u")  # type: ignore[arg-type]
    assert doc.applied == b"u"
