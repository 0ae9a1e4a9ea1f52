"""Token checking: `tokens` verifies JWTs into an `Identity` (and mints them for the CLI and
tests), `keys` holds the verification keys by `kid`, `jwks` keeps an identity provider's key
set fetched, `revocations` the users shut out until a time."""
