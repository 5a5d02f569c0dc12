"""Search result pages cached in Redis.

A page is stored under ``{prefix}search:page:{generation}:{data_version}:{digest}``,
where ``digest`` hashes the normalised query (filters, sort, cursor, limit,
facets). ``generation`` is the index generation (a full rebuild bumps it) and
``data_version`` a counter every per-listing reindex increments after it
commits, so a page computed before any index change is never served after it:
its key is simply never asked for again, and the TTL clears it away. One
counter for all listings keeps invalidation O(1) at the price of emptying the
cache on every change; with a short TTL that costs little.

Everything here can be rebuilt from PostgreSQL: a missing generation is read
from ``search_state`` again, a missing data version starts over at 0.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable

import msgspec
import redis as redis_lib

log = logging.getLogger("hearth.search")
REDIS_ERRORS = (redis_lib.ConnectionError, redis_lib.TimeoutError)


class SearchCache:
    def __init__(self, redis: redis_lib.Redis, prefix: str, ttl: int = 30) -> None:
        self.redis = redis
        self.ttl = ttl
        self.generation_key = f"{prefix}search:generation"
        self.version_key = f"{prefix}search:data_version"
        self.page_prefix = f"{prefix}search:page:"

    @staticmethod
    def digest(normalised: object) -> str:
        return hashlib.blake2b(msgspec.json.encode(normalised), digest_size=16).hexdigest()

    def versions(self) -> tuple[int | None, int]:
        """(generation or None when Redis has none, data version)."""
        generation, version = self.redis.mget(self.generation_key, self.version_key)
        return (int(generation) if generation is not None else None), int(version or 0)

    def remember_generation(self, generation: int) -> None:
        """Record the generation read from PostgreSQL, unless a newer one was set meanwhile."""
        self.redis.set(self.generation_key, generation, nx=True)

    def page_key(self, generation: int, version: int, digest: str) -> str:
        return f"{self.page_prefix}{generation}:{version}:{digest}"

    def get(self, key: str) -> bytes | None:
        if self.ttl <= 0:
            return None
        page = self.redis.get(key)
        # Pages are stored as bytes; a client made with decode_responses answers them as text.
        return page.encode() if isinstance(page, str) else page

    def put(self, key: str, body: bytes) -> None:
        if self.ttl > 0:
            self.redis.set(key, body, ex=self.ttl)

    # --- writers (workers) ------------------------------------------------------------------

    def listing_changed(self) -> None:
        """After a per-listing reindex committed: every cached page may be stale now."""
        self._quietly(lambda: self.redis.incr(self.version_key))

    def generation_changed(self, generation: int) -> None:
        """After a full rebuild swapped in ``generation``."""

        def write() -> None:
            pipe = self.redis.pipeline()
            pipe.set(self.generation_key, generation)
            pipe.incr(self.version_key)
            pipe.execute()

        self._quietly(write)

    def _quietly(self, write: Callable[[], object]) -> None:
        # The index is already right; a cached page at worst lives out its short TTL.
        try:
            write()
        except REDIS_ERRORS:
            log.warning("could not invalidate cached search pages", exc_info=True)


__all__ = ["SearchCache"]
