"""`Few[T]`: a set kept in the form its usual size needs, for registries of connections.

Most of the sets a connection registry keeps (a user's connections, a member's connections,
a connection's workspaces) hold exactly one member, and an empty `set` alone costs 216 bytes
where a reference costs 8. A `Few[T]` is None when empty, the member itself when there is
one, and a `set` only from two members on. The functions return the new value, which the
caller stores back; a set may be changed in place and returned. `T` must never be a `set`.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable
from typing import TypeAlias, TypeVar

T = TypeVar("T", bound=Hashable)

Few: TypeAlias = T | set[T] | None


def with_member(few: Few[T], member: T) -> Few[T]:
    """`few` with `member` added."""
    if few is None or few == member:
        return member
    if isinstance(few, set):
        few.add(member)
        return few
    return {few, member}


def without_member(few: Few[T], member: T) -> Few[T]:
    """`few` without `member` (unchanged if it is not there)."""
    if isinstance(few, set):
        few.discard(member)
        # Back to the lone member, so a set always holds two or more.
        return next(iter(few)) if len(few) == 1 else few
    return None if few == member else few


def members(few: Few[T]) -> Collection[T]:
    """The members of `few` (the set itself, when it is one: copy it before changing `few`
    while iterating)."""
    if few is None:
        return ()
    if isinstance(few, set):
        return few
    return (few,)
