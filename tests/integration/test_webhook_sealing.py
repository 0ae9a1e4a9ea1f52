"""`WebhookService.reseal` at start, on the reference store: secrets kept as the configured
keys keep new ones, a replaced secret that no longer signs dropped, and every unreadable
secret named."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from collab.delivery.client import WebhookClient
from collab.delivery.retries import RetryPolicy
from collab.delivery.sealing import SEALED_PREFIX, SecretSealer
from collab.delivery.service import WebhookService
from collab.errors import ConfigError
from collab.store.memory import MemoryStore
from collab.store.rows import format_timestamp
from collab.store.webhooks import EVENT_TYPES, Endpoint

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
KEY = "key-" + "k" * 40
OTHER_KEY = "other-" + "o" * 40


def service(store: MemoryStore, *keys: str) -> WebhookService:
    return WebhookService(
        store,
        WebhookClient(allow_private=False),
        RetryPolicy(retry_s=3600),
        clock=lambda: NOW,
        sealer=SecretSealer(keys),
    )


async def registered(store: MemoryStore, endpoint_id: str, secret: str) -> None:
    await store.add_endpoint(
        Endpoint(
            id=endpoint_id,
            url=f"https://hooks.example.com/{endpoint_id}",
            events=EVENT_TYPES,
            workspace_id=None,
            secret=secret,
            created_at=format_timestamp(NOW),
        )
    )


async def test_reseal_seals_what_signs_and_drops_a_replaced_secret_that_no_longer_does() -> None:
    store = MemoryStore()
    await store.open()
    await registered(store, "ep_live", "whsec_old_live")
    await store.rotate_secret(
        "ep_live", "whsec_new_live", previous_until=format_timestamp(NOW + timedelta(hours=1))
    )
    await registered(store, "ep_done", "whsec_old_done")
    await store.rotate_secret(
        "ep_done", "whsec_new_done", previous_until=format_timestamp(NOW - timedelta(hours=1))
    )
    sealer = SecretSealer([KEY])

    assert await service(store, KEY).reseal() == 2
    assert await service(store, KEY).reseal() == 0

    live = await store.get_endpoint("ep_live")
    done = await store.get_endpoint("ep_done")
    assert live is not None
    assert done is not None
    assert live.previous_secret is not None
    assert sealer.unseal(live.secret, "ep_live") == "whsec_new_live"
    assert sealer.unseal(live.previous_secret, "ep_live") == "whsec_old_live"
    assert sealer.unseal(done.secret, "ep_done") == "whsec_new_done"
    assert done.previous_secret is None
    assert live.secret.startswith(SEALED_PREFIX)


async def test_every_secret_the_keys_cannot_read_is_named_and_nothing_is_written() -> None:
    store = MemoryStore()
    await store.open()
    foreign = SecretSealer([OTHER_KEY])
    await registered(store, "ep_a", foreign.seal("whsec_a", "ep_a"))
    await registered(store, "ep_b", foreign.seal("whsec_b", "ep_b"))
    await registered(store, "ep_c", "whsec_c")
    before = await store.list_endpoints()

    with pytest.raises(ConfigError) as refused:
        await service(store, KEY).reseal()

    assert [problem.split(":")[1] for problem in refused.value.problems] == [
        " webhook ep_a",
        " webhook ep_b",
    ]
    assert all("add that key" in problem for problem in refused.value.problems)
    assert await store.list_endpoints() == before
    assert await service(store, OTHER_KEY, KEY).reseal() == 1
    c = await store.get_endpoint("ep_c")
    assert c is not None
    assert foreign.unseal(c.secret, "ep_c") == "whsec_c"
