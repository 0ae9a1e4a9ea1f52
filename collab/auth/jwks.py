"""`JwksFetcher`: keeps the identity provider's JWKS (`COLLAB_JWKS_URL`) in the key ring.

The set is fetched at start, again every `COLLAB_JWKS_CACHE_S`, and on demand when a token
names a `kid` nobody knows (a key rotation), but on demand at most once per
`min_refetch_s`, so tokens with forged kids cannot make the server hammer the provider;
concurrent misses share one fetch. A failed fetch keeps the last good set (the provider may
be down for a while without locking anyone out) and is logged once per failure streak.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import orjson

from collab.auth.keys import parse_jwks
from collab.auth.tokens import TokenVerifier
from collab.tasks import cancel_and_wait

log = logging.getLogger(__name__)

FETCH_TIMEOUT_S = 5.0
MAX_JWKS_BYTES = 1024 * 1024
MIN_REFETCH_S = 30.0
RETRY_AFTER_FAILURE_S = 30.0


class JwksFetcher:
    def __init__(
        self,
        url: str,
        verifier: TokenVerifier,
        *,
        cache_s: float,
        min_refetch_s: float = MIN_REFETCH_S,
    ) -> None:
        self.url = url
        self._verifier = verifier
        self._cache_s = cache_s
        self._min_refetch_s = min_refetch_s
        self._session: aiohttp.ClientSession | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._inflight: asyncio.Future[bool] | None = None
        self._last_on_demand = float("-inf")
        self._failing = False
        self.kids: frozenset[str] = frozenset()
        self.fetches = 0
        self.failures = 0

    async def start(self) -> None:
        """Fetch once (a failure is logged, not raised: static keys keep working), then
        refresh in the background."""
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT_S))
        self._verifier.fetch_keys = self.fetch_for_unknown_kid
        await self.fetch()
        self._refresher = asyncio.create_task(self._refresh_loop(), name="jwks-refresh")

    async def close(self) -> None:
        self._verifier.fetch_keys = None
        await cancel_and_wait([self._refresher])
        if self._session is not None:
            await self._session.close()

    async def fetch_for_unknown_kid(self, kid: str) -> bool:
        """Fetch the set again because a token names `kid`, unless such a fetch started less
        than `min_refetch_s` ago; return whether `kid` is known afterwards. Scheduled
        fetches do not count: the first rotation after one is seen at once."""
        loop = asyncio.get_running_loop()
        if self._inflight is not None:
            await asyncio.shield(self._inflight)
        elif loop.time() - self._last_on_demand >= self._min_refetch_s:
            self._last_on_demand = loop.time()
            self._inflight = asyncio.ensure_future(self.fetch())
            try:
                await asyncio.shield(self._inflight)
            finally:
                self._inflight = None
        return self._verifier.keys.knows(kid)

    async def fetch(self) -> bool:
        """Fetch and install the set; return whether it succeeded."""
        self.fetches += 1
        try:
            keys, skipped = parse_jwks(await self._download(), self._verifier.algorithms)
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            self.failures += 1
            if not self._failing:
                log.warning(
                    "JWKS %s: fetch failed, keeping the %d keys fetched before: %s",
                    self.url,
                    len(self.kids),
                    error,
                )
            self._failing = True
            return False
        if self._failing:
            log.info("JWKS %s: fetched again after failures", self.url)
        self._failing = False
        for note in skipped:
            log.warning("JWKS %s: %s", self.url, note)
        self._verifier.keys.replace_fetched(keys)
        if frozenset(keys) != self.kids:
            log.info("JWKS %s: key ids now %s", self.url, ", ".join(sorted(keys)) or "none")
        self.kids = frozenset(keys)
        return True

    async def _download(self) -> object:
        if self._session is None:
            raise ValueError("the fetcher is not started")
        async with self._session.get(self.url, allow_redirects=False) as response:
            if response.status != 200:
                raise ValueError(f"HTTP {response.status}")
            body = await response.content.read(MAX_JWKS_BYTES + 1)
        if len(body) > MAX_JWKS_BYTES:
            raise ValueError(f"the JWKS is larger than {MAX_JWKS_BYTES} bytes")
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as error:
            raise ValueError(f"not JSON: {error}") from None

    async def _refresh_loop(self) -> None:
        while True:
            delay_s = RETRY_AFTER_FAILURE_S if self._failing else self._cache_s
            await asyncio.sleep(min(delay_s, self._cache_s))
            await self.fetch()
