"""Webhook secrets sealed with the configured keys: they unseal to what was sealed, for the
endpoint they were sealed for, with any configured key; anything else is refused saying
why."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collab.delivery.sealing import SEALED_PREFIX, SealError, SecretSealer
from collab.delivery.signing import new_secret

OLD_KEY = "old-key-" + "o" * 40
NEW_KEY = "new-key-" + "n" * 40


@given(secret=st.text(min_size=16, max_size=200), endpoint_id=st.text(max_size=70))
def test_what_is_sealed_unseals_to_itself(secret: str, endpoint_id: str) -> None:
    sealer = SecretSealer([NEW_KEY])

    stored = sealer.seal(secret, endpoint_id)

    assert stored.startswith(SEALED_PREFIX)
    assert secret not in stored.removeprefix(SEALED_PREFIX)
    assert sealer.unseal(stored, endpoint_id) == secret
    assert sealer.is_current(stored)


def test_each_sealing_differs_and_none_reveals_the_key() -> None:
    sealer = SecretSealer([NEW_KEY])
    secret = new_secret()

    first, second = sealer.seal(secret, "ep_a"), sealer.seal(secret, "ep_a")

    assert first != second
    assert NEW_KEY not in first


def test_a_sealed_secret_does_not_unseal_for_another_endpoint_or_once_altered() -> None:
    sealer = SecretSealer([NEW_KEY])
    stored = sealer.seal(new_secret(), "ep_a")
    head, _, payload = stored.rpartition(":")
    flipped = head + ":" + ("A" if payload[0] != "A" else "B") + payload[1:]

    for bad, endpoint_id in ((stored, "ep_b"), (flipped, "ep_a"), (head + ":!!", "ep_a")):
        with pytest.raises(SealError, match="does not unseal: it was altered or belongs to"):
            sealer.unseal(bad, endpoint_id)


def test_any_configured_key_unseals_and_the_first_seals() -> None:
    """Keys are replaced by putting the new one first: what the old one sealed still
    unseals, and is no longer current (so it is sealed again with the new one)."""
    sealed_before = SecretSealer([OLD_KEY]).seal("whsec_AAAA", "ep_a")
    both = SecretSealer([NEW_KEY, OLD_KEY])

    assert both.unseal(sealed_before, "ep_a") == "whsec_AAAA"
    assert not both.is_current(sealed_before)
    assert both.is_current(both.seal("whsec_AAAA", "ep_a"))
    assert SecretSealer([OLD_KEY, NEW_KEY]).is_current(sealed_before)


def test_a_secret_sealed_with_a_key_not_configured_is_refused_naming_its_key_id() -> None:
    sealed = SecretSealer([OLD_KEY]).seal("whsec_AAAA", "ep_a")
    key_id = sealed.removeprefix(SEALED_PREFIX).split(":")[0]

    with pytest.raises(SealError, match=f"not in COLLAB_WEBHOOK_SECRET_KEYS .*{key_id}"):
        SecretSealer([NEW_KEY]).unseal(sealed, "ep_a")
    with pytest.raises(SealError, match="COLLAB_WEBHOOK_SECRET_KEYS is not set"):
        SecretSealer().unseal(sealed, "ep_a")


def test_without_keys_secrets_are_kept_as_they_are_and_plain_ones_always_read() -> None:
    plain = new_secret()

    assert SecretSealer().seal(plain, "ep_a") == plain
    assert SecretSealer().unseal(plain, "ep_a") == plain
    assert SecretSealer().is_current(plain)
    assert SecretSealer([NEW_KEY]).unseal(plain, "ep_a") == plain
    assert not SecretSealer([NEW_KEY]).is_current(plain)
    assert not SecretSealer().is_current(SecretSealer([NEW_KEY]).seal(plain, "ep_a"))
