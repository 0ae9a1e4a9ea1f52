"""The catalog's query string and page cursors, read strictly."""

from __future__ import annotations

import base64
import hashlib

import orjson
import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st
from multidict import MultiDict

from collab.store.catalog import CatalogQuery, Priority, SortKey
from collab.web.api.note_queries import catalog_query, fingerprint, make_cursor


def query(**params: str | list[str]) -> CatalogQuery:
    pairs = MultiDict[str]()
    for name, value in params.items():
        for one in value if isinstance(value, list) else [value]:
            pairs.add(name, one)
    return catalog_query("w1", pairs)


def refusal(**params: str | list[str]) -> str:
    """The message of the 400 a query string gets."""
    with pytest.raises(web.HTTPBadRequest) as refused:
        query(**params)
    return refused.value.text or ""


def test_no_parameters_is_the_default_listing() -> None:
    assert query() == CatalogQuery(sort=SortKey.DEFAULT, descending=True, limit=50)


def test_a_text_query_sorts_by_relevance_unless_a_sort_is_given() -> None:
    assert query(q="plan").sort is SortKey.RELEVANCE
    assert query(q="plan", sort="title").sort is SortKey.TITLE
    assert query(q="   ").text is None


def test_each_sort_has_a_useful_default_order() -> None:
    assert query(sort="updated").descending
    assert query(sort="priority").descending
    assert not query(sort="title").descending
    assert not query(sort="due").descending
    assert query(sort="title", order="desc").descending


def test_filters_are_read_into_the_query() -> None:
    read = query(
        tag=["a", "b", "a"],
        assignee="u2",
        pinned="false",
        priority="urgent",
        due_before="2026-12-24",
        due_after="2026-12-01T12:00:00+02:00",
        trashed="true",
        limit="200",
    )

    assert read.tags == ("a", "b")
    assert read.assignee == "u2"
    assert read.pinned is False
    assert read.priority is Priority.URGENT
    assert read.trashed
    assert read.limit == 200
    assert read.due_before == "2026-12-24T00:00:00.000000+00:00"
    assert read.due_after == "2026-12-01T10:00:00.000000+00:00"


def test_a_cursor_resumes_the_query_it_was_made_for() -> None:
    first = query(sort="title")
    cursor = make_cursor(("plan", "n1"), fingerprint("w1", first))

    assert query(sort="title", cursor=cursor).after == ("plan", "n1")
    assert query(sort="title", cursor=cursor, limit="5").after == ("plan", "n1")


@pytest.mark.parametrize(
    "other", [{"sort": "title", "order": "desc"}, {"sort": "title", "tag": "a"}, {"sort": "due"}]
)
def test_a_cursor_of_another_query_is_refused(other: dict[str, str]) -> None:
    cursor = make_cursor(("plan", "n1"), fingerprint("w1", query(sort="title")))

    assert "'cursor'" in refusal(**other, cursor=cursor)


def _forged(payload: object) -> str:
    raw = orjson.dumps(payload)
    return base64.urlsafe_b64encode(hashlib.sha256(raw).digest()[:12] + raw).decode()


@pytest.mark.parametrize(
    "key",
    [["plan"], ["plan", "n1", "x"], [1, "n1"], ["plan", None], [{"a": 1}, "n1"], "plan"],
)
def test_a_forged_cursor_of_the_wrong_shape_is_refused(key: object) -> None:
    """The checksum is no secret: a cursor built by hand still has its key checked."""
    cursor = _forged({"k": key, "f": fingerprint("w1", query(sort="title"))})

    assert "'cursor'" in refusal(sort="title", cursor=cursor)


def test_the_default_listing_key_holds_a_pinned_flag_not_a_boolean() -> None:
    cursor = _forged({"k": [True, "2026", "n1"], "f": fingerprint("w1", query())})

    assert "'cursor'" in refusal(cursor=cursor)


@pytest.mark.parametrize(
    ("params", "key"),
    [
        ({"sort": "priority"}, [5, "n1"]),  # priority is 0-4
        ({"sort": "priority"}, [40000, "n1"]),  # past PostgreSQL's SMALLINT
        ({"sort": "priority"}, [-1, "n1"]),
        ({}, [2, "2026", "n1"]),  # pinned is 0 or 1
        ({}, [2**63, "2026", "n1"]),  # past a 64-bit integer
        ({"q": "x"}, [4, 1]),  # no such search rank
        ({"q": "x"}, [3, 2**63]),  # past the BIGINT sequence
        ({"sort": "title"}, ["a\x00", "n1"]),  # PostgreSQL text holds no NUL
        ({"sort": "title"}, ["plan", "n\x1f1"]),
    ],
)
def test_a_forged_cursor_with_values_no_note_has_is_refused(
    params: dict[str, str], key: list[object]
) -> None:
    """Numbers outside their column's range and strings with control characters never come
    from a note; a database would refuse some of them (a 500 or a 503, before)."""
    cursor = _forged({"k": key, "f": fingerprint("w1", query(**params))})

    assert "'cursor'" in refusal(**params, cursor=cursor)


@pytest.mark.parametrize(
    ("params", "key"),
    [({"sort": "priority"}, [4, "n1"]), ({}, [1, "2026", "n1"]), ({"q": "x"}, [3, 2**63 - 1])],
)
def test_a_cursor_at_the_ends_of_its_ranges_is_read(
    params: dict[str, str], key: list[object]
) -> None:
    cursor = _forged({"k": key, "f": fingerprint("w1", query(**params))})

    assert query(**params, cursor=cursor).after == tuple(key)


@pytest.mark.parametrize("name", ["tag", "assignee"])
def test_a_filter_with_a_control_character_is_refused(name: str) -> None:
    assert f"'{name}'" in refusal(**{name: "a\x00"})


@given(st.text(max_size=300))
def test_any_cursor_text_is_refused_naming_it(text: str) -> None:
    """Text that is not a cursor this server made (all random text, as good as surely)."""
    assert "'cursor'" in refusal(sort="title", cursor=text)


@given(st.integers(min_value=0, max_value=10_000), st.integers(min_value=0, max_value=7))
def test_any_single_altered_character_is_detected(position: int, bit: int) -> None:
    cursor = make_cursor(("a title", "note-1"), fingerprint("w1", query(sort="title")))
    index = position % len(cursor)
    replacement = "A" if cursor[index] != "A" else "B"
    altered = cursor[:index] + replacement + cursor[index + 1 :]

    assert "'cursor'" in refusal(sort="title", cursor=altered)
