"""`NoteWatch`: the generation moves whenever a change may have reached `meta` or `body`, and
only then for changes of other roots; rooms apply updates as clients send them."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pycrdt import Array, Doc, Map, Text, XmlElement, XmlFragment, XmlText

from collab.rooms.document import DocumentRoom
from collab.rooms.effects import PeerOrigin
from collab.rooms.note_fields import note_fields
from collab.store.base import StoredDocument

ALICE = PeerOrigin("alice", can_write=True)


class Author:
    """A client document whose every transaction is sent to `room` as the update it emits."""

    def __init__(self, room: DocumentRoom, client_id: int = 7) -> None:
        self.doc: Doc[Any] = Doc(client_id=client_id)
        self.room = room
        self._updates: list[bytes] = []
        self.doc.observe(lambda event: self._updates.append(event.update))

    def send(self) -> None:
        updates, self._updates = self._updates, []
        for update in updates:
            self.room.apply_local_update(update, ALICE)


def test_edits_of_other_roots_leave_the_generation_where_it_was() -> None:
    room = DocumentRoom("w1/n1")
    author = Author(room)
    cursor = author.doc.get("lt", type=Map)
    start = room.note_watch.generation
    for index in range(20):
        cursor["k"] = index  # after the first, placed by its origin, not by the root's name
        author.doc.get("other", type=Text).insert(0, "x")
        author.send()
    assert room.note_watch.generation == start
    assert room.doc.get("lt", type=Map)["k"] == 19


def test_creating_meta_then_editing_it_moves_the_generation_each_time() -> None:
    room = DocumentRoom("w1/n1")
    author = Author(room)
    meta = author.doc.get("meta", type=Map)
    seen = [room.note_watch.generation]
    meta["title"] = "First"
    author.send()
    seen.append(room.note_watch.generation)
    meta["title"] = "Second"  # placed next to the first value: no root name in the update
    author.send()
    seen.append(room.note_watch.generation)
    meta["tags"] = Array(["a"])
    author.send()
    seen.append(room.note_watch.generation)
    meta["tags"].append("b")  # nested in meta
    author.send()
    seen.append(room.note_watch.generation)
    assert seen == sorted(set(seen)), seen
    assert note_fields(room.doc).tags == ("a", "b")


def test_typing_in_the_body_moves_the_generation() -> None:
    room = DocumentRoom("w1/n1")
    author = Author(room)
    body = author.doc.get("body", type=XmlFragment)
    paragraph = body.children.append(XmlElement("paragraph"))
    text = paragraph.children.append(XmlText("hello"))
    author.send()
    before = room.note_watch.generation
    text.insert(5, " world")
    author.send()
    after_insert = room.note_watch.generation
    del text[0:1]  # a deletion alone
    author.send()
    assert before < after_insert < room.note_watch.generation
    assert note_fields(room.doc).text == "ello world"


def test_a_room_loaded_with_meta_watches_it_from_the_start() -> None:
    source: Doc[Any] = Doc(client_id=3)
    source.get("meta", type=Map)["title"] = "Stored"
    room = DocumentRoom.from_stored("w1/n1", StoredDocument(source.get_update(), []))
    before = room.note_watch.generation
    author = Author(room)
    author.doc.apply_update(room.encode_state())
    author.doc.get("meta", type=Map)["title"] = "Edited"
    author.send()
    assert room.note_watch.generation > before
    assert note_fields(room.doc).title == "Edited"


def test_a_closed_room_stops_watching() -> None:
    room = DocumentRoom("w1/n1")
    author = Author(room)
    author.doc.get("meta", type=Map)["title"] = "One"
    author.send()
    opened_at = room.note_watch.generation  # reading it attaches the observer
    room.close()
    closed_at = room.note_watch.generation
    room.doc.get("meta", type=Map)["title"] = "Two"
    assert room.note_watch.generation == closed_at
    assert closed_at == opened_at


_ROOTS = ("meta", "body", "lt", "other")


@st.composite
def _edits(draw: st.DrawFn) -> list[tuple[str, int, str]]:
    return draw(
        st.lists(
            st.tuples(
                st.sampled_from(_ROOTS),
                st.integers(min_value=0, max_value=3),
                st.text(alphabet="abmetody ", min_size=1, max_size=6),
            ),
            min_size=1,
            max_size=25,
        )
    )


def _edit(doc: Doc[Any], root: str, kind: int, value: str) -> None:
    if root == "meta":
        meta = doc.get("meta", type=Map)
        if kind == 0:
            meta["title"] = value
        elif kind == 1:
            meta["tags"] = Array([value])
        elif kind == 2 and isinstance(meta.get("tags"), Array):
            meta["tags"].append(value)
        else:
            meta.pop("title", None)
    elif root == "body":
        body = doc.get("body", type=XmlFragment)
        if kind == 0 or len(body.children) == 0:
            body.children.append(XmlElement("paragraph", contents=[XmlText(value)]))
        else:
            paragraph = body.children[len(body.children) - 1]
            if isinstance(paragraph, XmlElement) and len(paragraph.children):
                node = paragraph.children[0]
                if isinstance(node, XmlText):
                    if kind == 3 and len(node):
                        del node[0:1]
                    else:
                        node.insert(0, value)
    elif root == "lt":
        doc.get("lt", type=Map)[str(kind)] = value
    else:
        # Text in another root, spelling the watched roots' names now and then.
        doc.get("other", type=Text).insert(0, value)


@settings(max_examples=60, deadline=None)
@given(edits=_edits(), reload_at=st.integers(min_value=0, max_value=25))
def test_fields_never_change_while_the_generation_stays(
    edits: list[tuple[str, int, str]], reload_at: int
) -> None:
    """What the indexer relies on: at an unchanged generation the fields read the same,
    whatever the edits, including after the room is reloaded from what it stored."""
    room = DocumentRoom("w1/n1")
    author = Author(room)
    generation, fields = room.note_watch.generation, note_fields(room.doc)
    for index, (root, kind, value) in enumerate(edits):
        if index == reload_at:
            room = DocumentRoom.from_stored("w1/n1", StoredDocument(room.encode_state(), []))
            author.room = room
            generation, fields = room.note_watch.generation, note_fields(room.doc)
        _edit(author.doc, root, kind, value)
        author.send()
        now = room.note_watch.generation
        if now == generation:
            assert note_fields(room.doc) == fields, (root, kind, value)
        generation, fields = now, note_fields(room.doc)
