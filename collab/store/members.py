"""The `MemberStore` interface: each workspace's member directory.

Part of `Database`. A member row comes into being two ways:

- **seen**: the user authenticated with a role in the workspace (`record_seen`): their token's
  role and display name, and when they were last seen;
- **managed**: an owner provisioned or changed them (`put_member`): a role that caps the
  token's (`assigned_role`), a name and an email, so someone who never signed in can be
  mentioned and assigned.

An owner's removal (`remove_member`) keeps the row, marked `removed_at`: the user is refused in
the workspace whatever their token says until an owner puts them back, and being seen again
does not bring them back. Times are `format_timestamp` strings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

MAX_MEMBER_PAGE = 200
MAX_MEMBERS_READ = MAX_MEMBER_PAGE + 1
"""The most `list_members` returns: a page and one more, which tells whether another follows."""
MAX_MEMBER_NAME_CHARS = 200
MAX_MEMBER_EMAIL_CHARS = 254
ROLES = ("owner", "editor", "viewer")
"""Roles as stored, strongest first (the names of `collab.auth.tokens.Role`)."""


@dataclass(frozen=True, slots=True)
class SeenMember:
    """A user who authenticated with `role` in `workspace_id` at `at`."""

    workspace_id: str
    user_id: str
    name: str | None
    role: str
    at: str
    email: str | None = None
    """The address the token carried (`token_email`, kept when a later token has none)."""


@dataclass(frozen=True, slots=True)
class Member:
    workspace_id: str
    user_id: str
    assigned_name: str | None
    """The name an owner gave (None: none)."""
    token_name: str | None
    """The last display name the user's token carried (None: none yet)."""
    email: str | None
    token_role: str | None
    """The role the user's token carried when last seen (None: never seen)."""
    assigned_role: str | None
    """The role an owner gave (None: none); the user's role is at most this."""
    last_seen_at: str | None
    removed_at: str | None

    @property
    def name(self) -> str | None:
        """The name the directory lists: the assigned one, else the token's."""
        return self.assigned_name or self.token_name

    @property
    def role(self) -> str:
        """The role the directory lists: the assigned one, else the token's."""
        role = self.assigned_role or self.token_role
        assert role is not None, "a member row has a role of one kind or the other"
        return role

    @property
    def managed(self) -> bool:
        """Whether an owner's decision constrains this member (a role or a removal)."""
        return self.assigned_role is not None or self.removed_at is not None


class MemberStore(Protocol):
    """Every method raises `StoreError` (and nothing else) when the backend fails."""

    async def record_seen(self, seen: Sequence[SeenMember]) -> None:
        """Record users seen with a role (a new member row each, or the row's token role,
        name and email when given, and `last_seen_at` moved forward), in one transaction. A removed
        member's row is left as it is. A user listed twice for a workspace: the last wins."""

    async def put_member(
        self,
        workspace_id: str,
        user_id: str,
        *,
        role: str,
        name: str | None,
        email: str | None,
        at: str,
    ) -> tuple[Member, bool]:
        """Provision or change a member: `role` becomes its assigned role, `name` its
        assigned name and `email` its email (None clears them), a removal is undone. Returns the
        member and whether it was not an active member before (new, or removed)."""

    async def remove_member(self, workspace_id: str, user_id: str, *, at: str) -> Member | None:
        """Mark an active member removed; the member as it now is, or None if the user was
        not an active member of the workspace."""

    async def get_member(self, workspace_id: str, user_id: str) -> Member | None:
        """The member row, removed ones included; None if there is none."""

    async def list_members(
        self, workspace_id: str, *, prefix: str = "", after: str = "", limit: int = 50
    ) -> list[Member]:
        """Active members by user id, after the user id `after`, at most `limit`. `prefix`
        keeps those whose user id starts with it, or whose name (`Member.name`) does, ignoring
        case (Unicode case folding)."""

    async def managed_members(self) -> list[Member]:
        """Every member row an owner's decision constrains (`Member.managed`), of every
        workspace: what each instance keeps in memory to check requests against."""

    async def non_members(self, workspace_id: str, user_ids: Sequence[str]) -> list[str]:
        """Those of `user_ids` who are not active members of `workspace_id` (never seen nor
        provisioned, or removed), in their order, in one query however many there are."""


def latest_seen(seen: Sequence[SeenMember]) -> list[SeenMember]:
    """What `record_seen` writes of `seen`: the last entry of each member, in (workspace,
    user) order, the order every backend writes rows in (two batches writing the same rows at
    once then lock them in one order)."""
    latest = {(entry.workspace_id, entry.user_id): entry for entry in seen}
    return [latest[key] for key in sorted(latest)]


def name_key(assigned_name: str | None, token_name: str | None) -> str:
    """What `list_members` compares a prefix with: `Member.name` case-folded, "" without a
    name. The SQL backends keep it in a column (`name_key`)."""
    return (assigned_name or token_name or "").casefold()


def prefix_end(prefix: str) -> str | None:
    """The least string after every string that starts with `prefix`, in code point order
    (None: there is none, `prefix` being all U+10FFFF): a string starts with `prefix` exactly
    when it is >= `prefix` and < this. A prefix search as a range, which no character of the
    prefix can widen (as `%` or `_` would in a LIKE pattern)."""
    stem = prefix.rstrip("\U0010ffff")
    if not stem:
        return None
    following = ord(stem[-1]) + 1
    # Surrogates are not characters: no text the backends store holds one.
    if 0xD800 <= following <= 0xDFFF:
        following = 0xE000
    return stem[:-1] + chr(following)
