"""The `collab` command (`python -m collab`): `main` parses `serve`, `token` and `migrate` and
runs them; `admin` holds the operator commands that call a running server (`collab revoke`)."""
