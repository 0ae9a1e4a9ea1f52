"""The digest email, pure: addressing, both parts, links built by the server, and every
untrusted text escaped or cleaned."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest

from collab.rooms.digest_message import MAX_TITLE_CHARS, Digest, compose, digest_items
from collab.store.notifications import Notification

PUBLIC = "https://notes.example.com"
UNSUBSCRIBE = f"{PUBLIC}/api/v1/email/unsubscribe?token=v1.abc.def"
AT = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)


def note(
    kind: str, payload: dict[str, Any], *, number: int = 1, workspace: str = "w1"
) -> Notification:
    return Notification(number, "u2", workspace, kind, payload, "2026-12-06T10:00:00+00:00", None)


def digest(
    notifications: list[Notification], *, total: int | None = None, **changes: Any
) -> Digest:
    fields: dict[str, Any] = {
        "to_address": "bob@example.com",
        "to_name": "Bob",
        "items": digest_items(notifications, PUBLIC),
        "total": len(notifications) if total is None else total,
        "public_url": PUBLIC,
        "unsubscribe_url": UNSUBSCRIBE,
    }
    fields.update(changes)
    return Digest(**fields)


def sent(message: EmailMessage) -> EmailMessage:
    """The message as a mail server receives it, parsed back."""
    parsed = message_from_bytes(message.as_bytes(policy=policy.SMTP), policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def parts(message: EmailMessage) -> tuple[str, str]:
    plain, html = message.get_body(("plain",)), message.get_body(("html",))
    assert plain is not None
    assert html is not None
    # As sent, lines end in CRLF.
    return (
        str(plain.get_content()).replace("\r\n", "\n"),
        str(html.get_content()).replace("\r\n", "\n"),
    )


def test_each_kind_reads_as_a_sentence_with_a_link_to_its_note_or_workspace() -> None:
    """Mentions and assignments link to their note, messages to their workspace; ids in
    links are percent-encoded."""
    notifications = [
        note("mention", {"note": "n 1", "actor": "u1", "title": "Plan"}, number=3),
        note("assignment", {"note": "n2", "actor": "u1", "title": None}, number=2),
        note("message", {"actor": "u1", "actor_name": "Ann", "title": "Hi", "body": "Lunch?"}),
        note("custom", {}, workspace="w/2"),
        note("overdue", {"note": "n3", "title": "Ship", "due": "2026-12-24"}),
    ]
    plain, html = parts(sent(compose(digest(notifications), sender="n@example.com", at=AT)))
    assert (
        "- u1 mentioned you in \u201cPlan\u201d (w1)\n  https://notes.example.com/#/w1/n%201"
        in plain
    )
    assert "u1 assigned you \u201cUntitled\u201d (w1)" in plain
    assert "Ann: Hi (w1)\n  Lunch?\n  https://notes.example.com/#/w1\n" in plain
    assert "https://notes.example.com/#/w%2F2" in plain
    assert (
        "- \u201cShip\u201d is overdue (w1)\n  2026-12-24\n  https://notes.example.com/#/w1/n3"
        in plain
    )
    assert html.count("<li>") == 5
    assert '<a href="https://notes.example.com/#/w1/n%201">' in html


def test_headers_name_the_recipient_and_offer_one_click_unsubscribe() -> None:
    """To carries the display name, From the sender, and the RFC 8058 headers the link."""
    message = sent(
        compose(digest([note("mention", {})], to_name="Bob Lee"), sender="Notes <n@example.com>")
    )
    (to,) = message["To"].addresses
    assert (to.display_name, to.addr_spec) == ("Bob Lee", "bob@example.com")
    assert message["From"] == "Notes <n@example.com>"
    assert message["Subject"] == "1 unread notification in collab"
    # A long header may be folded before the bracket: what follows the colon, unfolded.
    assert message["List-Unsubscribe"].strip() == f"<{UNSUBSCRIBE}>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Message-ID"].endswith("@example.com>")


def test_untrusted_text_is_escaped_in_html_and_cleaned_everywhere() -> None:
    """Markup in titles, bodies, names and kinds is escaped in the HTML part; line breaks and
    controls never reach a header or break a line of the plain part; long titles are cut."""
    hostile = '<script>alert("x")</script>\r\nBcc: eve@example.com'
    notifications = [
        note("message", {"actor_name": hostile, "title": hostile, "body": hostile}),
        note("mention", {"note": "n1", "title": "t" * 1000, "actor": 7}),
        note(hostile, {}),
    ]
    message = sent(compose(digest(notifications, to_name=hostile), sender="n@example.com"))
    plain, html = parts(message)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; Bcc: eve@example.com" in html
    assert message["Bcc"] is None
    assert (message["To"].addresses[0].display_name or "").startswith("<script>")
    assert all(not line.startswith("Bcc:") for line in plain.splitlines())
    assert "Someone mentioned you in \u201c" + "t" * MAX_TITLE_CHARS + "\u201d" in plain
    assert "t" * (MAX_TITLE_CHARS + 1) not in plain


def test_a_digest_counts_what_it_does_not_list() -> None:
    """`total` above the items listed adds an "and N more" line."""
    plain, html = parts(compose(digest([note("mention", {})], total=25), sender="n@example.com"))
    assert "You have 25 unread notifications:" in plain
    assert f"- and 24 more: {PUBLIC}/" in plain
    assert "and 24 more</a>" in html


@pytest.mark.parametrize(
    "address",
    [
        "bob",
        "bob@",
        "<bob@example.com>",
        "b ob@example.com",
        "=?utf-8?q?a=3E=2C_eve=40corp.example=2C_b?=@evil.example",
    ],
)
def test_an_address_digests_are_not_sent_to_is_refused(address: str) -> None:
    """A recipient address that is not plain raises ValueError: never one the `email`
    package would rewrite into other recipients (an encoded word)."""
    with pytest.raises(ValueError, match="not a plain address"):
        compose(digest([note("mention", {})], to_address=address), sender="n@example.com")


def test_bidirectional_overrides_never_reach_the_mail() -> None:
    """A name or title holding an override, embedding or isolate (U+202A..E, U+2066..9) would
    show the rest of its line reversed in the mail reader; they are written as spaces, in
    the headers and both parts. The marks U+200E/F, which RTL text needs, stay."""
    spoof = "Ann\u202egro.live\u202c and \u2067x\u2069"
    notifications = [
        note("message", {"actor_name": spoof, "title": "Plan\u202d!", "body": "\u200f"})
    ]
    message = sent(compose(digest(notifications, to_name=spoof), sender="n@example.com"))
    plain, html = parts(message)
    for text in (plain, html, str(message["To"]), str(message["Subject"])):
        assert not set(text) & set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
    assert "Ann gro.live and x" in plain
