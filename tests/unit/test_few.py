"""`collab.few`: a set stored as None, its lone member, or a `set` from two members on."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from collab.few import Few, members, with_member, without_member


def test_one_member_is_kept_without_a_set() -> None:
    """Adding to an empty `Few` gives the member itself; removing it gives None."""
    few: Few[str] = with_member(None, "a")
    assert few == "a"
    assert with_member(few, "a") == "a"
    assert without_member(few, "b") == "a"
    assert without_member(few, "a") is None
    assert members(None) == ()
    assert members(few) == ("a",)


def test_a_second_member_makes_a_set_and_its_removal_undoes_it() -> None:
    """Two members are a set; back to one, the lone member again."""
    few: Few[str] = with_member("a", "b")
    assert few == {"a", "b"}
    assert without_member(few, "a") == "b"


@given(st.lists(st.tuples(st.booleans(), st.sampled_from("abcd"))))
def test_it_holds_what_a_set_holds(operations: list[tuple[bool, str]]) -> None:
    """Any sequence of adds and removals leaves the members a `set` would have, and never a
    set of fewer than two."""
    few: Few[str] = None
    expected: set[str] = set()
    for add, member in operations:
        if add:
            few = with_member(few, member)
            expected.add(member)
        else:
            few = without_member(few, member)
            expected.discard(member)
        assert set(members(few)) == expected
        assert not isinstance(few, set) or len(few) >= 2
