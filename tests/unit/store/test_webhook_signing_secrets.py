"""Which secrets sign an attempt: the endpoint's, and the one a rotation replaced until its
time (exclusive)."""

from __future__ import annotations

from collab.store.webhooks import Endpoint, signing_secrets

NEW = "whsec_" + "B" * 44
OLD = "whsec_" + "A" * 44
UNTIL = "2026-12-07T10:00:00.000000+00:00"


def test_the_replaced_secret_signs_second_until_its_time_and_not_at_it() -> None:
    before = "2026-12-07T09:59:59.999999+00:00"

    assert signing_secrets(NEW, OLD, UNTIL, before) == (NEW, OLD)
    assert signing_secrets(NEW, OLD, UNTIL, UNTIL) == (NEW,)
    assert signing_secrets(NEW, OLD, UNTIL, "2026-12-08T00:00:00.000000+00:00") == (NEW,)


def test_without_a_replaced_secret_or_its_time_only_the_secret_signs() -> None:
    at = "2026-12-07T09:00:00.000000+00:00"

    assert signing_secrets(NEW, None, None, at) == (NEW,)
    assert signing_secrets(NEW, OLD, None, at) == (NEW,)
    assert signing_secrets(NEW, None, UNTIL, at) == (NEW,)


def test_an_endpoint_signs_with_what_it_holds() -> None:
    endpoint = Endpoint(
        id="ep_a",
        url="https://hooks.example.com/a",
        events=("note.created",),
        workspace_id=None,
        secret=NEW,
        created_at="2026-12-01T00:00:00.000000+00:00",
        previous_secret=OLD,
        previous_secret_until=UNTIL,
    )

    assert endpoint.signing_secrets("2026-12-07T09:00:00.000000+00:00") == (NEW, OLD)
    assert OLD not in repr(endpoint)
    assert NEW not in repr(endpoint)
