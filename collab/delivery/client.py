"""`WebhookClient`: one webhook POST, made safely.

- **Addresses checked after resolution, and connected to as checked.** Each scheme has its
  own aiohttp connector whose resolver (`GuardedResolver`) refuses a name that resolves to
  any address `addresses.refusal` refuses; the connector connects to the addresses the
  resolver returned, so a name that resolves elsewhere a moment later (DNS rebinding) changes
  nothing. IP literals, which aiohttp does not resolve, are checked before the request. No
  DNS cache, no keep-alive: each attempt resolves and connects anew.
- **Bounded.** The whole attempt (resolution, connection, request, response head, body)
  within `timeout_s`; at most `MAX_RESPONSE_BYTES` of the response body read, then the
  connection closed.
- **Never redirected.** A 3xx answer is a failed attempt; proxies from the environment are
  ignored.
- **What the receiver asks for is reported.** A failed answer's `Retry-After`, and whether
  it was 410 Gone, for the service to wait or disable the endpoint (Standard Webhooks).

Every failure is an `AttemptResult` with a reason, never an exception (bar cancellation).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from collab.delivery.addresses import UnsafeUrl, WebhookUrl, parse_url, refusal

TIMEOUT_S = 10.0
MAX_RESPONSE_BYTES = 1024
MAX_EXCERPT_CHARS = 200
USER_AGENT = "collab-webhooks/1"
GONE = 410


@dataclass(frozen=True, slots=True)
class AttemptResult:
    status: int | None
    error: str | None
    """None exactly when the attempt succeeded (a 2xx answer)."""
    retry_after: str | None = None
    """The `Retry-After` header of a failed answer (`retries.retry_after_s` reads it)."""

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def gone(self) -> bool:
        """The receiver answered 410 Gone: it wants no more deliveries (Standard Webhooks:
        the endpoint is disabled)."""
        return self.status == GONE


class RefusedAddress(OSError):
    """A name resolved to an address the server does not call (raised inside aiohttp's
    connector, which wraps resolver errors that are `OSError`s)."""


class GuardedResolver(AbstractResolver):
    """Resolves through the client's resolver and refuses names that resolve to any address
    refused for `scheme`."""

    def __init__(self, client: WebhookClient, scheme: str) -> None:
        self._client = client
        self._scheme = scheme

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._client.resolver.resolve(host, port, family)
        self._client.check_addresses(host, [r["host"] for r in results], self._scheme)
        return results

    async def close(self) -> None:
        pass


class WebhookClient:
    """Sends webhook requests. `resolver` resolves host names (aiohttp's threaded resolver
    by default; tests give one of their own); `allow_private` is
    `COLLAB_WEBHOOK_ALLOW_PRIVATE`."""

    def __init__(
        self,
        *,
        allow_private: bool,
        timeout_s: float = TIMEOUT_S,
        resolver: AbstractResolver | None = None,
    ) -> None:
        self.allow_private = allow_private
        self.timeout_s = timeout_s
        self._resolver = resolver
        self._sessions: dict[str, aiohttp.ClientSession] = {}

    @property
    def resolver(self) -> AbstractResolver:
        # Made in `start`: aiohttp's resolvers bind the running loop, and the client is built
        # before the server's loop runs (`create_app`).
        if self._resolver is None:
            raise RuntimeError("WebhookClient used before start()")
        return self._resolver

    @resolver.setter
    def resolver(self, resolver: AbstractResolver) -> None:
        self._resolver = resolver

    async def start(self) -> None:
        if self._resolver is None:
            self._resolver = aiohttp.ThreadedResolver()
        for scheme in ("https", "http"):
            connector = aiohttp.TCPConnector(
                resolver=GuardedResolver(self, scheme),
                use_dns_cache=False,
                force_close=True,
                family=socket.AF_UNSPEC,
            )
            self._sessions[scheme] = aiohttp.ClientSession(
                connector=connector,
                trust_env=False,
                headers={"User-Agent": USER_AGENT},
                auto_decompress=False,
            )

    async def close(self) -> None:
        sessions, self._sessions = self._sessions, {}
        for session in sessions.values():
            await session.close()
        if self._resolver is not None:
            await self._resolver.close()

    async def check(self, raw_url: object) -> WebhookUrl:
        """`raw_url` as a URL this client calls: well-formed, and its host (resolved now)
        at addresses it may call. Raises `UnsafeUrl` saying why not."""
        target = parse_url(raw_url)
        if target.address is not None:
            addresses = [target.host]
        else:
            try:
                async with asyncio.timeout(self.timeout_s):
                    results = await self.resolver.resolve(
                        target.host, target.port, socket.AF_UNSPEC
                    )
            except (OSError, TimeoutError, UnicodeError) as exc:
                raise UnsafeUrl(f"the url's host {target.host!r} does not resolve: {exc}") from None
            addresses = [r["host"] for r in results]
        try:
            self.check_addresses(target.host, addresses, target.scheme)
        except RefusedAddress as exc:
            raise UnsafeUrl(str(exc)) from None
        return target

    def check_addresses(self, host: str, addresses: list[str], scheme: str) -> None:
        """Raise `RefusedAddress` unless every one of `addresses` (what `host` resolved to)
        may be called over `scheme`."""
        if not addresses:
            raise RefusedAddress(f"{host!r} resolved to no address")
        for address in addresses:
            reason = refusal(address, scheme=scheme, allow_private=self.allow_private)
            if reason is not None:
                named = reason if address == host else f"{host!r} resolves to {reason}"
                raise RefusedAddress(named)

    async def post(self, url: str, headers: Mapping[str, str], body: bytes) -> AttemptResult:
        """POST `body` to `url`; what came of it."""
        try:
            target = parse_url(url)
            if target.address is not None:
                self.check_addresses(target.host, [target.host], target.scheme)
        except (UnsafeUrl, RefusedAddress) as exc:
            return AttemptResult(None, f"refused: {exc}")
        session = self._sessions.get(target.scheme)
        if session is None:
            return AttemptResult(None, "the webhook client is closed")
        try:
            async with asyncio.timeout(self.timeout_s):
                return await _send(session, url, headers, body)
        except TimeoutError:
            return AttemptResult(None, f"no answer within {self.timeout_s:g} s")
        except aiohttp.ClientConnectorError as exc:
            cause = exc.os_error
            if isinstance(cause, RefusedAddress):
                return AttemptResult(None, f"refused: {cause}")
            return AttemptResult(None, f"cannot connect: {cause}")
        except aiohttp.ClientError as exc:
            return AttemptResult(None, f"the request failed: {type(exc).__name__}: {exc}")


async def _send(
    session: aiohttp.ClientSession, url: str, headers: Mapping[str, str], body: bytes
) -> AttemptResult:
    async with session.post(url, data=body, headers=dict(headers), allow_redirects=False) as answer:
        status = answer.status
        if 200 <= status < 300:
            # Delivered, whatever the body does next (stalls, is cut short): it is not read.
            answer.close()
            return AttemptResult(status, None)
        try:
            excerpt = await _read_at_most(answer.content, MAX_RESPONSE_BYTES)
        except aiohttp.ClientError:
            excerpt = b""  # the status says what matters; the body only illustrates it
        # Whatever is left unread stays so: the connection is closed, not drained.
        answer.close()
        if 300 <= status < 400:
            location = answer.headers.get("Location", "")[:MAX_EXCERPT_CHARS]
            return AttemptResult(status, f"HTTP {status}: redirects are not followed ({location})")
        text = _printable(excerpt.decode("utf-8", "replace")[:MAX_EXCERPT_CHARS])
        retry_after = answer.headers.get("Retry-After")
        return AttemptResult(
            status,
            f"HTTP {status}: {text}" if text else f"HTTP {status}",
            None if retry_after is None else retry_after[:MAX_EXCERPT_CHARS],
        )


async def _read_at_most(content: aiohttp.StreamReader, limit: int) -> bytes:
    read = bytearray()
    while len(read) < limit:
        chunk = await content.read(limit - len(read))
        if not chunk:
            break
        read += chunk
    return bytes(read)


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else " " for c in text).strip()
