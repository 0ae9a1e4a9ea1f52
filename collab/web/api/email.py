"""Email digests (`rooms.email_digests`) wired into the app, and their one-click unsubscribe.

`/api/v1/email/unsubscribe?token=…` needs no login: the token, signed by the server, names the
user (`auth.unsubscribe`). `POST` records the opt-out (what RFC 8058 mail clients send, with
the body `List-Unsubscribe=One-Click`, and what the confirmation page's button sends); `GET`
only shows that page, since mail scanners fetch links. A token the server did not sign
answers 400. Without `COLLAB_SMTP_URL` none of this exists (404).
"""

from __future__ import annotations

import html
from collections.abc import AsyncIterator, Sequence

from aiohttp import web

from collab.auth.unsubscribe import UnsubscribeSigner
from collab.errors import ConfigError
from collab.rooms.email_digests import UNSUBSCRIBE_PATH, EmailDigests
from collab.rooms.smtp import SmtpSender
from collab.settings.email import smtp_credentials
from collab.store.email import EmailStore
from collab.store.rows import format_timestamp
from collab.web.keys import (
    BUS,
    EMAIL_DIGESTS,
    NOTIFIER,
    PRESENCE,
    PRESENCE_STORE,
    SETTINGS,
    VERIFIER,
)


def setup_email(app: web.Application, store: EmailStore) -> None:
    """Add email digests, kept in `store`, when `COLLAB_SMTP_URL` is set. Call after the
    notifier, presence and bus are set and after the cleanup context that opens the store.
    Raises `ConfigError` when the settings lack what digests need."""
    settings = app[SETTINGS]
    if settings.smtp_url is None:
        return
    problems = [
        f"{variable}: required when COLLAB_SMTP_URL is set"
        for variable, value in (
            ("COLLAB_EMAIL_FROM", settings.email_from),
            ("COLLAB_PUBLIC_URL", settings.public_url),
            ("COLLAB_JWT_SECRET", settings.jwt_secret),
        )
        if value is None
    ]
    if problems or not (settings.email_from and settings.public_url and settings.jwt_secret):
        raise ConfigError(problems)
    username, password = smtp_credentials(settings)
    hub, presence_store = app[PRESENCE], app[PRESENCE_STORE]
    revocations = app[VERIFIER].revocations

    async def is_online(user_id: str, workspace_ids: Sequence[str]) -> bool:
        if hub.local.is_connected(user_id):
            return True
        return await presence_store.is_present(user_id, workspace_ids)

    digests = EmailDigests(
        store,
        SmtpSender(settings.smtp_url, username=username, password=password),
        is_online=is_online,
        signer=UnsubscribeSigner.from_secret(settings.jwt_secret),
        email_from=settings.email_from,
        public_url=settings.public_url,
        interval_s=settings.email_digest_s,
        instance_id=app[BUS].instance_id,
        is_shut_out=lambda user_id: revocations.revoked_until(user_id) is not None,
    )
    app[EMAIL_DIGESTS] = digests
    app[NOTIFIER].on_created.append(digests.notification_created)
    app.router.add_get(UNSUBSCRIBE_PATH, confirm_unsubscribe)
    app.router.add_post(UNSUBSCRIBE_PATH, unsubscribe)
    app.cleanup_ctx.append(_run_digests)


async def _run_digests(app: web.Application) -> AsyncIterator[None]:
    digests = app[EMAIL_DIGESTS]
    await digests.start()
    yield
    await digests.close()


async def confirm_unsubscribe(request: web.Request) -> web.StreamResponse:
    token = request.query.get("token", "")
    if request.app[EMAIL_DIGESTS].token_user(token) is None:
        return _invalid_link()
    action = html.escape(f"{UNSUBSCRIBE_PATH}?token={token}")
    return _page(
        "Unsubscribe from email digests",
        "<p>Stop the emails that list your unread notifications while you are away?</p>"
        f'<form method="post" action="{action}">'
        '<button type="submit">Unsubscribe</button></form>',
    )


async def unsubscribe(request: web.Request) -> web.StreamResponse:
    token = request.query.get("token", "")
    if not await request.app[EMAIL_DIGESTS].unsubscribe(token, at=format_timestamp()):
        return _invalid_link()
    return _page("Unsubscribed", "<p>You will get no more email digests.</p>")


def _invalid_link() -> web.Response:
    return _page(
        "Invalid link",
        "<p>This unsubscribe link is not valid. Use the link of a digest as it was sent.</p>",
        status=400,
    )


def _page(title: str, body: str, *, status: int = 200) -> web.Response:
    text = (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head>\n"
        f"<body><h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n"
    )
    return web.Response(text=text, status=status, content_type="text/html")
