"""The `Database` interface: the one front door to storage, everything a backend provides.

A backend (memory, SQLite, Postgres) keeps all of it in one database, so one object serves
every interface and one `open` opens them all. The composition root (`create_app`) holds the
`Database` and hands each part of the server only the interface it uses: the rooms get
`Store`, the notifier `NotificationStore`, the member directory `MemberStore`, the revocation
service `RevocationStore`, the version history `VersionStore`, the deadline reminders
`ReminderStore` (with `CatalogStore` and `MemberStore`).

Adding an interface: a `Protocol` in a module of its own under `collab/store/`, added to the
bases of `Database`, implemented by every backend (mypy refuses a backend that lacks it where
`create_store` returns one, and the unit test of this module fails), with a contract suite of
its own run over every backend.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from collab.store.base import Store
from collab.store.catalog import CatalogStore
from collab.store.email import EmailStore
from collab.store.members import MemberStore
from collab.store.notifications import NotificationStore
from collab.store.reminders import ReminderStore
from collab.store.revocations import RevocationStore
from collab.store.versions import VersionStore
from collab.store.webhooks import WebhookStore


# Runtime-checkable so a test can check each backend has every method of every interface.
@runtime_checkable
class Database(
    Store,
    NotificationStore,
    MemberStore,
    RevocationStore,
    CatalogStore,
    VersionStore,
    ReminderStore,
    EmailStore,
    WebhookStore,
    Protocol,
):
    """Documents (`Store`), notifications (`NotificationStore`), the workspaces' member
    directories (`MemberStore`), revocations (`RevocationStore`), the notes catalog
    (`CatalogStore`), the notes' version history (`VersionStore`) and their deadline
    reminders (`ReminderStore`) in one database; also who gets email digests and which
    instance sends each (`EmailStore`); and the webhook endpoints with the outbox of their
    deliveries (`WebhookStore`).

    `open`, `close` and `ping` (declared with `Store`) are the database's: they open, close and
    check every interface at once. Every method raises `StoreError` (and nothing else) when
    the backend fails.
    """
