"""`UnsubscribeSigner`: a token names its user under the key that signed it, and any other
string, tampered tokens included, names nobody."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from collab.auth.unsubscribe import MAX_TOKEN_CHARS, UnsubscribeSigner
from collab.settings import Secret

SIGNER = UnsubscribeSigner.from_secret(Secret("an-unsubscribe-test-secret-0123456789"))
OTHER = UnsubscribeSigner.from_secret(Secret("another-secret-of-another-server-0123"))
USER_IDS = st.text(min_size=1, max_size=256)


@given(USER_IDS)
def test_a_token_names_its_user_under_its_key_only(user_id: str) -> None:
    """Any user id round-trips; another server's key refuses the token."""
    token = SIGNER.token_for(user_id)
    assert len(token) <= MAX_TOKEN_CHARS
    assert token.isascii()
    assert SIGNER.user_of(token) == user_id
    assert OTHER.user_of(token) is None


@given(st.text(max_size=2000))
def test_any_string_names_nobody_or_is_a_genuine_token(text: str) -> None:
    """Arbitrary input never raises and names a user only if it is that user's token."""
    user_id = SIGNER.user_of(text)
    assert user_id is None or SIGNER.token_for(user_id) == text


@given(USER_IDS, st.data())
def test_every_one_character_change_is_refused(user_id: str, data: st.DataObject) -> None:
    """Changing, dropping or adding any one character of a token makes it name nobody."""
    token = SIGNER.token_for(user_id)
    index = data.draw(st.integers(0, len(token) - 1))
    replacement = data.draw(st.sampled_from("AQgw_-.0xyz"))
    changed = token[:index] + replacement + token[index + 1 :]
    if changed != token:
        assert SIGNER.user_of(changed) is None
    assert SIGNER.user_of(token[:index] + token[index + 1 :]) is None
    assert SIGNER.user_of(token[:index] + replacement + token[index:]) is None


def test_another_users_id_with_a_valid_signature_is_refused() -> None:
    """The signature covers the user id: swapping it in from another token fails."""
    ann, bob = SIGNER.token_for("ann"), SIGNER.token_for("bob")
    swapped = bob.rpartition(".")[0] + "." + ann.rpartition(".")[2]
    assert SIGNER.user_of(swapped) is None


def test_the_signer_never_shows_its_key() -> None:
    """Its repr hides the key."""
    assert "secret" not in repr(SIGNER)
