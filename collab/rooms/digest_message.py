"""The email of one digest: plain-text and HTML parts, pure (no I/O).

Everything a notification carries is untrusted (its payload is JSON some client wrote): it is
shortened, stripped of control characters and, in the HTML part, escaped; links are built
here, to the server's own notes and workspaces (`{public_url}/#/{workspace}/{note}`, the demo's
routes), never taken from a payload. The subject names a count only.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any
from urllib.parse import quote

from collab.rooms.note_fields import CONTROL_CLASS
from collab.settings.email import is_address
from collab.store.notifications import Notification

MAX_NAME_CHARS = 100
MAX_TITLE_CHARS = 200
MAX_BODY_CHARS = 500
# The catalog's controls and separators, and the bidirectional embeddings, overrides and
# isolates: a name holding U+202E shows the rest of the line reversed in the mail reader
# ("Ann\u202egro.live" reads as "Annevil.org"). The marks U+200E/U+200F stay: RTL text needs
# them, and they reorder nothing but neutral characters.
_CONTROL = re.compile(f"[{CONTROL_CLASS}\u202a-\u202e\u2066-\u2069]+")


@dataclass(frozen=True, slots=True)
class DigestItem:
    """One notification as the digest shows it."""

    text: str
    detail: str | None
    url: str


@dataclass(frozen=True, slots=True)
class Digest:
    """What one digest says: to whom, and the newest of their unread notifications."""

    to_address: str
    to_name: str | None
    items: tuple[DigestItem, ...]
    total: int
    """Unread notifications not emailed yet, `items` and those not shown."""
    public_url: str
    unsubscribe_url: str


def digest_items(notifications: Sequence[Notification], public_url: str) -> tuple[DigestItem, ...]:
    return tuple(_item(notification, public_url) for notification in notifications)


def compose(digest: Digest, *, sender: str, at: datetime | None = None) -> EmailMessage:
    """The digest as an email from `sender` (an address, or `Name <address>`). Raises
    ValueError when the recipient's address is not one digests are sent to."""
    if not is_address(digest.to_address):
        raise ValueError("the recipient's address is not a plain address like ann@example.com")
    message = EmailMessage()
    count = digest.total
    message["Subject"] = f"{count} unread notification{'' if count == 1 else 's'} in collab"
    message["From"] = sender
    local, _, domain = digest.to_address.rpartition("@")
    name = _clean(digest.to_name, MAX_NAME_CHARS) or ""
    message["To"] = Address(display_name=name, username=local, domain=domain)
    message["Date"] = format_datetime(at or datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2].rstrip(">") or None)
    message["Auto-Submitted"] = "auto-generated"
    # RFC 2369 and RFC 8058: mail clients show an unsubscribe button that POSTs to the link.
    message["List-Unsubscribe"] = f"<{digest.unsubscribe_url}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(_plain(digest))
    message.add_alternative(_html(digest), subtype="html")
    return message


def _item(notification: Notification, public_url: str) -> DigestItem:
    payload: Mapping[str, Any] = notification.payload
    workspace_id = notification.workspace_id
    actor = _clean(_text(payload.get("actor_name")) or _text(payload.get("actor")), 100)
    title = _clean(_text(payload.get("title")), MAX_TITLE_CHARS)
    note_id = _text(payload.get("note"))
    url = f"{public_url}/#/{quote(workspace_id, safe='')}"
    if note_id:
        url += f"/{quote(note_id, safe='')}"
    who = actor or "Someone"
    quoted = f"\u201c{title or 'Untitled'}\u201d"
    detail = None
    if notification.kind == "mention":
        text = f"{who} mentioned you in {quoted}"
    elif notification.kind == "assignment":
        text = f"{who} assigned you {quoted}"
    elif notification.kind == "message":
        text = f"{who}: {title or '(no title)'}"
        detail = _clean(_text(payload.get("body")), MAX_BODY_CHARS)
    elif notification.kind == "due_soon":
        text = f"{quoted} is due soon"
        detail = _clean(_text(payload.get("due")), 40)
    elif notification.kind == "overdue":
        text = f"{quoted} is overdue"
        detail = _clean(_text(payload.get("due")), 40)
    else:
        text = f"{_clean(notification.kind, 40) or 'Notification'} in {workspace_id}"
    return DigestItem(text=f"{text} ({_clean(workspace_id, 128)})", detail=detail, url=url)


def _plain(digest: Digest) -> str:
    name = _clean(digest.to_name, MAX_NAME_CHARS)
    lines = [f"Hello {name}," if name else "Hello,", "", _summary(digest), ""]
    for item in digest.items:
        lines.append(f"- {item.text}")
        if item.detail:
            lines.append(f"  {item.detail}")
        lines.append(f"  {item.url}")
    if digest.total > len(digest.items):
        lines.append(f"- and {digest.total - len(digest.items)} more: {digest.public_url}/")
    lines += [
        "",
        "You get this because you were away when they arrived.",
        f"Stop these emails: {digest.unsubscribe_url}",
    ]
    return "\n".join(lines) + "\n"


def _html(digest: Digest) -> str:
    e = html.escape
    items = []
    for item in digest.items:
        detail = f"<br><span>{e(item.detail)}</span>" if item.detail else ""
        items.append(f'<li><a href="{e(item.url)}">{e(item.text)}</a>{detail}</li>')
    if digest.total > len(digest.items):
        more = digest.total - len(digest.items)
        items.append(f'<li><a href="{e(digest.public_url)}/">and {more} more</a></li>')
    name = _clean(digest.to_name, MAX_NAME_CHARS)
    greeting = f"Hello {e(name)}," if name else "Hello,"
    return (
        "<!DOCTYPE html>\n<html><body>\n"
        f"<p>{greeting}</p>\n<p>{e(_summary(digest))}</p>\n"
        f"<ul>\n{chr(10).join(items)}\n</ul>\n"
        "<p>You get this because you were away when they arrived. "
        f'<a href="{e(digest.unsubscribe_url)}">Stop these emails</a>.</p>\n'
        "</body></html>\n"
    )


def _summary(digest: Digest) -> str:
    count = digest.total
    return f"You have {count} unread notification{'' if count == 1 else 's'}:"


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _clean(value: str | None, limit: int) -> str | None:
    """`value` with control and bidirectional-override characters as spaces, trimmed and cut
    to `limit` characters (None when nothing is left)."""
    if value is None:
        return None
    cleaned = " ".join(_CONTROL.sub(" ", value).split())[:limit]
    return cleaned or None
