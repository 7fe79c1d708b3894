"""Per-API-key rate limits: an in-process token bucket per key.

In-process on purpose: one API process per host is the deployment we ship; with several
uvicorn workers each enforces the limit separately (a shared store would be the next step).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import HTTPException, status

from service.core.config import Settings


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass
class TokenBucketLimiter:
    """`per_minute` tokens refill evenly; a key may spend up to `burst` at once."""

    per_minute: int
    burst: int
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[int, _Bucket] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def acquire(self, key: int) -> float:
        """Takes a token for `key`; returns 0.0, or the seconds to wait when none is left."""
        rate = self.per_minute / 60.0
        now = self.clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(tokens=float(self.burst), updated=now)
            bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / rate


def retry_after_header(wait_seconds: float) -> str:
    """Retry-After takes whole seconds; round up so a client that obeys it succeeds."""
    return str(max(1, math.ceil(wait_seconds)))


_limiters: dict[tuple[str, int, int], TokenBucketLimiter] = {}
_limiters_lock = threading.Lock()


def limiter_for(database_url: str, per_minute: int, burst: int) -> TokenBucketLimiter:
    """One limiter per database and setting, shared by every request of this process.

    Key ids are only unique within a database, hence the URL in the registry's key.
    """
    index = (database_url, per_minute, burst)
    with _limiters_lock:
        limiter = _limiters.get(index)
        if limiter is None:
            limiter = _limiters[index] = TokenBucketLimiter(per_minute, burst)
        return limiter


def enforce_rate_limit(settings: Settings, key_id: int) -> None:
    """Raises 429 with Retry-After when the key spent its budget; limits off at 0 per minute."""
    if settings.rate_limit_per_minute == 0:
        return
    limiter = limiter_for(
        settings.database_url, settings.rate_limit_per_minute, settings.rate_limit_burst
    )
    wait = limiter.acquire(key_id)
    if wait > 0:
        retry_after = retry_after_header(wait)
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"rate limit exceeded: {settings.rate_limit_per_minute} requests per minute per "
            f"API key (burst {settings.rate_limit_burst}); retry after {retry_after} s",
            headers={"Retry-After": retry_after},
        )
