"""Whether a change may have reached what the catalog reads of a note (`NoteWatch`), known
without reading the document.

The catalog's row of a note comes from its `meta` map and its `body` fragment only
(`note_fields`). Most edits of a busy room touch neither: a cursor kept in another root, an
application's own maps. Reading the fields again after such an edit finds what the last
reading found, so the indexer keys its last reading on `NoteWatch.generation`, which moves
whenever `meta` or `body` may have changed:

- a root that exists is watched with a deep observer: any change in it, or in a type nested
  in it, moves the generation;
- a root that does not exist yet can only come into being through an item placed in it by
  name, which the update that integrates it writes as the root's name (a lib0 string: its
  length, then its bytes). Each update the document emits is searched for those bytes; a hit
  moves the generation and the root is watched from then on. A hit in other content (a text
  that happens to hold them) only costs one needless reading.

Observers are attached outside transactions (`generation` attaches what a hit asked for),
never from inside the document's own update observer.
"""

from __future__ import annotations

from typing import Any

from pycrdt import Doc, Map, Subscription, XmlFragment

_WATCHED: dict[str, type[Map[Any] | XmlFragment]] = {"meta": Map, "body": XmlFragment}


def _name_bytes(name: str) -> bytes:
    encoded = name.encode()
    assert len(encoded) < 0x80, "a one-byte lib0 length"
    return bytes([len(encoded)]) + encoded


class NoteWatch:
    def __init__(self, doc: Doc[Any]) -> None:
        self._doc = doc
        self._generation = 0
        self._subscriptions: dict[str, tuple[Map[Any] | XmlFragment, Subscription]] = {}
        # Roots not watched yet, by the bytes an update names them with.
        self._unwatched = {_name_bytes(name): name for name in _WATCHED}
        self._to_attach = False
        self._attach(set(doc.keys()))

    @property
    def generation(self) -> int:
        """Moves whenever `meta` or `body` may have changed since it was last read."""
        if self._to_attach:
            self._to_attach = False
            self._attach(set(self._doc.keys()))
        return self._generation

    def saw_update(self, update: bytes) -> None:
        """Told of every update the document emits (from its update observer)."""
        if not self._unwatched:
            return
        for name_bytes in self._unwatched:
            if name_bytes in update:
                self._generation += 1
                self._to_attach = True
                return

    def close(self) -> None:
        """Stop watching (the room is closed): the generation no longer moves."""
        for shared, subscription in self._subscriptions.values():
            shared.unobserve(subscription)
        self._subscriptions.clear()
        self._unwatched.clear()
        self._to_attach = False

    def _attach(self, roots: set[str]) -> None:
        for name_bytes, name in list(self._unwatched.items()):
            if name in roots:
                shared = self._doc.get(name, type=_WATCHED[name])
                self._subscriptions[name] = (shared, shared.observe_deep(self._changed))
                del self._unwatched[name_bytes]

    def _changed(self, events: Any) -> None:
        self._generation += 1
