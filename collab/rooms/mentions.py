"""What a note says about people: `@user-id` mentions in its body and its assignees.

Pure functions over a pycrdt document following the note schema (README: `meta` Y.Map with
`assignees`, `body` Y.XmlFragment). A mention is `@<user-id>` in the body's text, or a
`mention` element with an `id` attribute as editor mention extensions write it.

Clients may write anything in a note. A Yjs update does not say which type a root is, and
pycrdt reads a root as the type asked for (a `meta` written as an array reads as a map of no
entries) without raising; what can raise is converting content, which these functions avoid
(see `assigned_users`). An error here is a bug of ours: it is left to the caller, which logs it.
"""

from __future__ import annotations

import html
import re
from typing import Any

from pycrdt import Array, Doc, Map, XmlFragment

from collab.rooms.note_fields import assignees_of

# User ids are JWT `sub` values; in text we accept the URL-safe characters ids use.
_MENTION = re.compile(r"(?<![\w@])@([A-Za-z0-9][A-Za-z0-9._~-]{0,255})")
_MENTION_ELEMENT_ID = re.compile(r"<mention\b[^>]*?\bid=\"([^\"]{1,256})\"")
_TAG = re.compile(r"<[^>]*>")
MAX_PEOPLE = 1000


def mentioned_users(doc: Doc[Any]) -> set[str]:
    """User ids mentioned in the note's body (at most MAX_PEOPLE). Empty when the note has
    no body; a body written as another type is read as an XML fragment."""
    if "body" not in doc.keys():
        return set()
    xml = str(doc.get("body", type=XmlFragment))
    found = {html.unescape(m) for m in _MENTION_ELEMENT_ID.findall(xml)}
    text = html.unescape(_TAG.sub(" ", xml))
    # A sentence may end right after a mention: "ask @bob." mentions "bob".
    found.update(m.rstrip(".~-") for m in _MENTION.findall(text))
    return set(sorted(found)[:MAX_PEOPLE])


def assigned_users(doc: Doc[Any]) -> set[str]:
    """User ids in the note's `meta.assignees`, as the catalog lists them: the first
    MAX_ASSIGNEES distinct strings or texts (`note_fields.assignees_of`). Read by index: a
    client may put a million entries there, and XML nodes, which `to_py()` refuses."""
    if "meta" not in doc.keys():
        return set()
    assignees = doc.get("meta", type=Map).get("assignees")
    if not isinstance(assignees, Array):
        return set()
    return set(assignees_of(assignees))
