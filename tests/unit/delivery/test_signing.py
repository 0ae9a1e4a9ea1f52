"""Secrets and signatures as Standard Webhooks defines them, checked against the spec's own
example."""

from __future__ import annotations

import base64

import pytest

from collab.delivery.signing import new_secret, secret_key, sign, signed_headers

# The example of the Standard Webhooks specification (its "Signature scheme" section).
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_specs_example_signs_to_its_signature() -> None:
    """Our signature of the specification's example message is the one it gives."""
    assert sign(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE


def test_new_secrets_are_random_whsec_keys_of_32_bytes() -> None:
    """A new secret is whsec_ and the base64 of 32 random bytes, different each time."""
    first, second = new_secret(), new_secret()

    assert first.startswith("whsec_")
    assert len(secret_key(first)) == 32
    assert first != second


@pytest.mark.parametrize("secret", ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_not base64!"])
def test_a_string_that_is_no_secret_is_refused(secret: str) -> None:
    """A secret without the prefix, or not base64 after it, raises ValueError."""
    with pytest.raises(ValueError, match="whsec_"):
        secret_key(secret)


def test_headers_carry_id_timestamp_signature_and_the_json_type() -> None:
    """The attempt's headers name the message, its time in Unix seconds and its signature."""
    headers = signed_headers((SPEC_SECRET,), SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY)

    assert headers == {
        "Content-Type": "application/json",
        "webhook-id": SPEC_ID,
        "webhook-timestamp": "1614265330",
        "webhook-signature": SPEC_SIGNATURE,
    }
    assert len(base64.b64decode(SPEC_SIGNATURE.removeprefix("v1,"))) == 32


def test_an_attempt_signed_with_two_secrets_carries_both_signatures_current_first() -> None:
    """During a rotation's overlap the header holds one signature per secret, space
    separated as the specification's rotation requires, the current secret's first."""
    current = new_secret()

    headers = signed_headers((current, SPEC_SECRET), SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY)

    first, second = headers["webhook-signature"].split(" ")
    assert first == sign(current, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY)
    assert second == SPEC_SIGNATURE


def test_an_attempt_is_never_sent_unsigned() -> None:
    """No secret to sign with is a bug, not an unsigned request."""
    with pytest.raises(ValueError, match="at least one secret"):
        signed_headers((), SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY)
