"""`collab revoke`: ask a running server to revoke a user (`POST /api/v1/admin/revocations`).

The server stores the revocation and spreads it over the bus, so any one instance will do.
The admin token comes from `COLLAB_ADMIN_TOKEN` (never a flag: flags show in `ps`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Mapping
from typing import Any

import aiohttp

EXIT_FAILURE = 1
EXIT_USAGE = 2
REQUEST_TIMEOUT_S = 10.0


def add_revoke_parser(commands: Any) -> None:
    revoke = commands.add_parser(
        "revoke",
        help="close a user's sockets and refuse the user until a time (needs COLLAB_ADMIN_TOKEN)",
    )
    revoke.add_argument("--user", required=True, help="user id (the tokens' `sub`)")
    revoke.add_argument(
        "--until",
        required=True,
        help="ISO-8601 time with a timezone (2030-01-01T00:00:00Z) or seconds from now; "
        "0 lifts the user's revocation",
    )
    revoke.add_argument(
        "--url",
        help="base URL of any instance (default: http://COLLAB_HOST:COLLAB_PORT)",
    )


def run_revoke(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Send the revocation; print the server's answer. Returns the exit status."""
    token = environ.get("COLLAB_ADMIN_TOKEN", "").strip()
    if not token:
        print("collab revoke: set COLLAB_ADMIN_TOKEN to the servers' admin token", file=sys.stderr)
        return EXIT_USAGE
    url = args.url
    if url is None:
        host = environ.get("COLLAB_HOST", "").strip() or "127.0.0.1"
        port = environ.get("COLLAB_PORT", "").strip() or environ.get("PORT", "").strip() or "8000"
        url = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
    until: object = args.until
    try:
        until = float(args.until)
    except ValueError:
        pass  # an ISO time: the server parses and validates it
    body = {"user": args.user, "until": until}
    try:
        status, answer = asyncio.run(
            _post(url.rstrip("/") + "/api/v1/admin/revocations", token, body)
        )
    except (aiohttp.ClientError, TimeoutError, ValueError) as error:
        print(
            f"collab revoke: cannot reach {url}: {error or type(error).__name__}", file=sys.stderr
        )
        return EXIT_FAILURE
    if status >= 400:
        message = (
            answer.get("error", {}).get("message", answer) if isinstance(answer, dict) else answer
        )
        print(f"collab revoke: HTTP {status}: {message}", file=sys.stderr)
        return EXIT_FAILURE
    if answer.get("active"):
        print(f"revoked {answer['user']} until {answer['until']}")
    else:
        print(f"{answer['user']} is not revoked (any revocation was lifted)")
    return 0


async def _post(url: str, token: str, body: dict[str, object]) -> tuple[int, Any]:
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.post(url, json=body, headers={"Authorization": f"Bearer {token}"}) as response,
    ):
        try:
            answer = await response.json(content_type=None)
        except ValueError:
            answer = await response.text()
        return response.status, answer
