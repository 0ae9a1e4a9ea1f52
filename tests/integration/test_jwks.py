"""COLLAB_JWKS_URL against a real local identity provider: keys by kid, rotation, forged
kids that must not make the server hammer the provider, and the provider going down."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from collab.settings import Settings
from collab.web.keys import JWKS
from tests.conftest import RunningServer, StartServer, make_settings
from tests.unit.test_auth import claims


@dataclass
class IdentityProvider:
    """A JWKS endpoint whose keys, availability and request count the test controls."""

    keys: dict[str, Any] = field(default_factory=dict)
    down: bool = False
    requests: int = 0
    server: TestServer | None = None

    def add_rsa(self, kid: str) -> rsa.RSAPrivateKey:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.keys[kid] = private
        return private

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.down:
            return web.Response(status=503, text="down for maintenance")
        jwks = []
        for kid, private in self.keys.items():
            algorithm = (
                jwt.algorithms.RSAAlgorithm
                if isinstance(private, rsa.RSAPrivateKey)
                else jwt.algorithms.ECAlgorithm
            )
            jwk = json.loads(algorithm.to_jwk(private.public_key()))
            jwks.append({**jwk, "kid": kid, "use": "sig"})
        return web.json_response({"keys": jwks})

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.port}/.well-known/jwks.json"


@pytest.fixture
async def idp() -> Any:
    provider = IdentityProvider()
    provider.add_rsa("k1")
    app = web.Application()
    app.router.add_get("/.well-known/jwks.json", provider.handle)
    provider.server = TestServer(app, host="127.0.0.1", port=0)
    await provider.server.start_server()
    yield provider
    await provider.server.close()


def jwks_settings(idp: IdentityProvider) -> Settings:
    return make_settings(jwt_algorithms=("RS256",), jwt_secret=None, jwks_url=idp.url)


def signed(private: Any, kid: str, algorithm: str = "RS256") -> str:
    return jwt.encode(claims(), private, algorithm=algorithm, headers={"kid": kid})


async def status_of(server: RunningServer, token: str) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{server.http}/api/v1/docs/w1/n1", headers={"Authorization": f"Bearer {token}"}
        ) as response,
    ):
        body = await response.json()
        return response.status, (body.get("error") or {}).get("message", "")


async def test_a_token_signed_with_a_jwks_key_is_accepted(
    start_server: StartServer, idp: IdentityProvider
) -> None:
    """The JWKS is fetched at start; a token whose kid is in it is accepted."""
    server = await start_server(jwks_settings(idp))
    assert idp.requests == 1
    assert (await status_of(server, signed(idp.keys["k1"], "k1")))[0] == 200


async def test_a_rotated_key_is_fetched_on_first_use(
    start_server: StartServer, idp: IdentityProvider
) -> None:
    """A token naming a kid that appeared in the JWKS after start makes the server fetch
    it again once, then it is accepted; the old key keeps working."""
    server = await start_server(jwks_settings(idp))
    new_key = idp.add_rsa("k2")
    assert (await status_of(server, signed(new_key, "k2")))[0] == 200
    assert idp.requests == 2
    assert (await status_of(server, signed(idp.keys["k1"], "k1")))[0] == 200
    assert idp.requests == 2


async def test_forged_kids_do_not_hammer_the_identity_provider(
    start_server: StartServer, idp: IdentityProvider
) -> None:
    """Tokens with unknown kids are refused with 401 naming the kid; however many arrive,
    the JWKS is fetched again at most once within the refetch interval."""
    server = await start_server(jwks_settings(idp))
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for number in range(10):
        status, message = await status_of(server, signed(forger, f"forged-{number}"))
        assert status == 401
        assert message == f"token key id (kid) 'forged-{number}' is unknown"
    assert idp.requests == 2


async def test_last_good_keys_are_kept_while_the_provider_is_down(
    start_server: StartServer, idp: IdentityProvider
) -> None:
    """When the provider fails, tokens of the keys fetched before are still accepted."""
    server = await start_server(jwks_settings(idp))
    idp.down = True
    assert await server.app[JWKS].fetch() is False
    assert server.app[JWKS].failures == 1
    assert (await status_of(server, signed(idp.keys["k1"], "k1")))[0] == 200
    idp.down = False
    assert await server.app[JWKS].fetch() is True


async def test_a_kid_of_the_wrong_key_type_is_refused(
    start_server: StartServer, idp: IdentityProvider
) -> None:
    """A JWKS kid holding an EC key cannot verify an RS256 token (nor can an ES256 token
    pass, the algorithms being pinned to RS256)."""
    ec_key = ec.generate_private_key(ec.SECP256R1())
    idp.keys["ec1"] = ec_key
    server = await start_server(jwks_settings(idp))
    status, message = await status_of(server, signed(idp.keys["k1"], "ec1"))
    assert (status, message) == (401, "token names key 'ec1', an EC key, which cannot verify RS256")
    status, message = await status_of(server, signed(ec_key, "ec1", "ES256"))
    assert status == 401
    assert message.startswith("token algorithm is not allowed: 'ES256'")
