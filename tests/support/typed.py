"""Updates that type words into a fresh document's text one at a time: the logs storage and
migration tests write."""

from __future__ import annotations

from collections.abc import Iterable

from pycrdt import Doc, Text


def typed_words(words: Iterable[str], root: str = "text") -> tuple[list[bytes], str]:
    """One update per word, each appending it to the text `root`, and the text they make."""
    doc: Doc[Text] = Doc()
    text = doc.get(root, type=Text)
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    for word in words:
        text.insert(len(text), word)
    return updates, str(text)
