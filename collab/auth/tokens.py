"""JWT verification and minting.

Algorithms are pinned by configuration, never taken from the token; `exp` is required, and
`exp`, `nbf` and `iat` must be JSON numbers (PyJWT alone also takes numeric strings); `aud`
and `iss` are checked when configured. Claims: `sub` (user id), `name` (optional display
name), `workspaces` (workspace id -> role) and `email` (optional address for email digests;
ignored when `email_verified` is false, as OpenID Connect providers mark an address they did
not verify).
"""

from __future__ import annotations

import math
import re
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

import jwt

from collab.auth.keys import KeyRing, UnknownKeyId, static_keys
from collab.auth.revocations import RevocationList
from collab.errors import AuthError, ConfigError, ForbiddenError
from collab.settings import HMAC_ALGORITHMS, Settings
from collab.settings.email import MAX_ADDRESS_CHARS, is_address

MAX_TOKEN_BYTES = 8 * 1024
MAX_WORKSPACES_PER_TOKEN = 1000
# Grants of at most this many workspaces are shared between the tokens that grant the same,
# up to this many distinct grants (see `SharedGrants`).
MAX_SHARED_GRANT_WORKSPACES = 8
MAX_SHARED_GRANTS = 1024
_JSON_KINDS: dict[type, str] = {
    str: "a string",
    bool: "a boolean",
    type(None): "null",
    list: "an array",
    dict: "an object",
}


class Role(StrEnum):
    OWNER = "owner"
    EDITOR = "editor"
    VIEWER = "viewer"

    @property
    def can_write(self) -> bool:
        return self is not Role.VIEWER

    @property
    def rank(self) -> int:
        """Strength: a viewer 1, an editor 2, an owner 3."""
        return _RANKS[self]

    def capped(self, limit: Role | None) -> Role:
        """The lesser of this role and `limit` (this role when there is no limit)."""
        return self if limit is None or self.rank <= limit.rank else limit


_RANKS = {Role.VIEWER: 1, Role.EDITOR: 2, Role.OWNER: 3}


@dataclass(frozen=True, slots=True)
class Identity:
    user_id: str
    name: str | None
    workspaces: Mapping[str, Role]
    expires_at: float | None = field(default=None, compare=False)
    """The token's `exp` (Unix seconds); open sockets are closed once it passes."""
    email: str | None = None
    """The token's `email`, unless `email_verified` is false."""

    def role_in(self, workspace_id: str) -> Role:
        """The role in a workspace. Raises `ForbiddenError` when there is none."""
        role = self.workspaces.get(workspace_id)
        if role is None:
            raise ForbiddenError(f"the token grants no role in workspace {workspace_id!r}")
        return role


class SharedGrants:
    """One `workspaces` mapping for all the tokens that grant the same small set of roles.

    Every open connection keeps its token's identity, and most tokens repeat a few grants
    (one workspace, one role): shared, they cost one dict instead of one per connection. The
    mappings are never changed (`Identity.workspaces` is read-only); the oldest grant is
    forgotten first, so this holds at most `MAX_SHARED_GRANTS` small dicts.
    """

    def __init__(self) -> None:
        self._grants: dict[tuple[tuple[str, Role], ...], Mapping[str, Role]] = {}

    def share(self, workspaces: dict[str, Role]) -> Mapping[str, Role]:
        """The mapping equal to `workspaces` that earlier tokens got, or `workspaces`."""
        if len(workspaces) > MAX_SHARED_GRANT_WORKSPACES:
            return workspaces
        grant = tuple(workspaces.items())
        shared = self._grants.get(grant)
        if shared is not None:
            return shared
        if len(self._grants) >= MAX_SHARED_GRANTS:
            del self._grants[next(iter(self._grants))]
        self._grants[grant] = workspaces
        return workspaces


KeyFetcher = Callable[[str], Awaitable[bool]]
"""Called with an unknown `kid`: fetches the key set again (rate-limited); returns whether
the set changed."""


class TokenVerifier:
    """Verifies bearer tokens against the configured keys and claim checks, and refuses
    users with an active revocation (`ForbiddenError`)."""

    def __init__(self, settings: Settings, *, revocations: RevocationList | None = None) -> None:
        default, by_kid = static_keys(settings)
        if default is None and not by_kid and settings.jwks_url is None:
            raise ConfigError(
                [
                    "COLLAB_JWT_SECRET, COLLAB_JWT_PUBLIC_KEY, COLLAB_JWT_KEYS or "
                    "COLLAB_JWKS_URL: no verification key"
                ]
            )
        self.keys = KeyRing(settings.jwt_algorithms, default, by_kid)
        self.revocations = revocations if revocations is not None else RevocationList()
        self.fetch_keys: KeyFetcher | None = None
        self.algorithms = tuple(settings.jwt_algorithms)
        self._algorithms = list(settings.jwt_algorithms)
        self._audience = settings.jwt_audience
        self._issuer = settings.jwt_issuer
        self._leeway_s = settings.jwt_leeway_s
        self._grants = SharedGrants()

    async def verify_fresh(self, token: str) -> Identity:
        """`verify`, but a token naming a `kid` not known yet first makes the key set be
        fetched again (when a JWKS URL is configured; rate-limited). Raises `AuthError`."""
        try:
            return self.verify(token)
        except UnknownKeyId as error:
            if self.fetch_keys is None or not await self.fetch_keys(error.kid):
                raise
        return self.verify(token)

    def verify(self, token: str) -> Identity:
        """Return the token's identity. Raises `AuthError` saying what is wrong with it, and
        `ForbiddenError` when the user's access is revoked."""
        identity = self.verify_token(token)
        until = self.revocations.revoked_until(identity.user_id)
        if until is not None:
            moment = datetime.fromtimestamp(until, UTC).isoformat(timespec="seconds")
            raise ForbiddenError(f"access revoked until {moment}")
        return identity

    def verify_token(self, token: str) -> Identity:
        """The token's identity, without the revocation check. Raises `AuthError`."""
        if not token:
            # The web layer says where each endpoint takes its token (web/http/requests.py).
            raise AuthError("missing token: the token is empty")
        if len(token) > MAX_TOKEN_BYTES:
            raise AuthError(f"token longer than {MAX_TOKEN_BYTES} bytes")
        if not token.isascii():
            # PyJWT encodes it as UTF-8 first: a lone surrogate would raise past its errors.
            raise AuthError("token is invalid: a JWT is ASCII")
        try:
            key = self.keys.key_for(jwt.get_unverified_header(token))
            claims = jwt.decode(
                token,
                key,
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway_s,
                options={
                    "require": ["exp", "sub"],
                    "verify_aud": self._audience is not None,
                    "verify_iss": self._issuer is not None,
                },
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("token expired") from None
        except jwt.ImmatureSignatureError:
            raise AuthError("token not valid yet (nbf/iat in the future)") from None
        except jwt.InvalidAudienceError:
            raise AuthError("token audience (aud) does not match") from None
        except jwt.InvalidIssuerError:
            raise AuthError("token issuer (iss) does not match") from None
        except jwt.MissingRequiredClaimError as error:
            raise AuthError(f"token lacks the required claim {error.claim!r}") from None
        except jwt.InvalidAlgorithmError:
            raise AuthError("token algorithm is not allowed") from None
        except jwt.InvalidSignatureError:
            raise AuthError("token signature is invalid") from None
        except jwt.PyJWTError as error:
            raise AuthError(f"token is invalid: {error}") from None
        return _identity_from_claims(claims, self._grants)


def _numeric_date(claims: Mapping[str, object], claim: str) -> float | None:
    """The claim as Unix seconds, None when absent. Raises `AuthError` unless it is a JSON
    number: PyJWT checks times with `int(value)`, which also takes `"1999999999"` and `true`."""
    if claim not in claims:
        return None
    value = claims[claim]
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            seconds = float(value)
        except OverflowError:
            seconds = math.inf
        if math.isfinite(seconds):
            return seconds
    # The value is not quoted: refusals are logged, and claims are the token's content.
    kind = _JSON_KINDS.get(type(value), "a number out of range")
    raise AuthError(
        f"token claim {claim!r} must be a JSON number of seconds since 1970 (RFC 7519 "
        f"NumericDate), not {kind}; issue tokens with numeric exp, nbf and iat"
    )


# A user or workspace id is stored, logged and compared: no database takes every character
# (PostgreSQL text holds no NUL; no store, JSON encoder or UTF-8 codec takes half of a UTF-16
# surrogate pair, which JSON can spell), and none of these belongs in an id.
_NOT_IN_IDS = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")
# A display name cut in the middle of an emoji by a UTF-16 slice keeps half of it: shown as
# U+FFFD rather than refused.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _identity_from_claims(claims: Mapping[str, object], grants: SharedGrants) -> Identity:
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub or len(sub) > 256 or _NOT_IN_IDS.search(sub):
        raise AuthError(
            "token claim 'sub' must be a non-empty string of at most 256 characters, "
            "no control characters"
        )
    name = claims.get("name")
    if name is not None and (not isinstance(name, str) or len(name) > 256):
        raise AuthError("token claim 'name' must be a string of at most 256 characters")
    if name is not None:
        name = _SURROGATE.sub("\ufffd", name)
    raw_workspaces = claims.get("workspaces", {})
    if not isinstance(raw_workspaces, dict) or len(raw_workspaces) > MAX_WORKSPACES_PER_TOKEN:
        raise AuthError("token claim 'workspaces' must be an object of workspace id -> role")
    workspaces: dict[str, Role] = {}
    for workspace_id, role in raw_workspaces.items():
        if _NOT_IN_IDS.search(str(workspace_id)):
            raise AuthError(
                f"token claim 'workspaces' names {str(workspace_id)[:40]!r}, which holds a "
                "control character or half of a UTF-16 surrogate pair: no workspace id does"
            )
        try:
            # Interned: every open connection keeps its token's workspaces, and thousands of
            # tokens name the same few.
            workspaces[sys.intern(str(workspace_id))] = Role(role)
        except ValueError:
            raise AuthError(
                f"token grants unknown role {role!r} in workspace {workspace_id!r}; "
                "use owner, editor or viewer"
            ) from None
    expires_at = _numeric_date(claims, "exp")
    _numeric_date(claims, "nbf")
    _numeric_date(claims, "iat")
    return Identity(
        user_id=sub,
        name=name,
        workspaces=grants.share(workspaces),
        expires_at=expires_at,
        email=_email(claims),
    )


def _email(claims: Mapping[str, object]) -> str | None:
    """The `email` claim (None when absent, null, or not verified by the provider). Raises
    `AuthError` for one that is not an address."""
    email = claims.get("email")
    if email is None:
        return None
    if not isinstance(email, str) or not is_address(email):
        raise AuthError(
            f"token claim 'email' must be an address like ann@example.com of at most "
            f"{MAX_ADDRESS_CHARS} characters"
        )
    return None if claims.get("email_verified") is False else email


def mint_token(
    settings: Settings,
    *,
    sub: str,
    workspaces: Mapping[str, Role],
    name: str | None = None,
    ttl_s: int = 3600,
    private_key: str | None = None,
    kid: str | None = None,
    email: str | None = None,
) -> str:
    """Sign a token the server configured by `settings` accepts.

    HMAC algorithms sign with the configured secret (with `kid`: the secret of that id in
    `COLLAB_JWT_KEYS`, named in the token's header); public-key algorithms need `private_key`
    (PEM). Raises `ConfigError` when no signing key is available.
    """
    algorithm = settings.jwt_algorithms[0]
    if algorithm in HMAC_ALGORITHMS and kid is not None:
        secret = dict(settings.jwt_keys).get(kid)
        if secret is None:
            raise ConfigError([f"--kid: COLLAB_JWT_KEYS has no key {kid!r}"])
        key = secret.reveal()
    elif algorithm in HMAC_ALGORITHMS:
        if settings.jwt_secret is None:
            raise ConfigError(["COLLAB_JWT_SECRET: no secret to sign tokens with"])
        key = settings.jwt_secret.reveal()
    else:
        if private_key is None:
            raise ConfigError(
                [f"--private-key (or COLLAB_JWT_PRIVATE_KEY): {algorithm} tokens need a PEM key"]
            )
        key = private_key
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": sub,
        "iat": now,
        "exp": now + ttl_s,
        "workspaces": {workspace: str(role) for workspace, role in workspaces.items()},
    }
    if name is not None:
        claims["name"] = name
    if email is not None:
        claims["email"] = email
    if settings.jwt_audience is not None:
        claims["aud"] = settings.jwt_audience
    if settings.jwt_issuer is not None:
        claims["iss"] = settings.jwt_issuer
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(claims, key, algorithm=algorithm, headers=headers)
