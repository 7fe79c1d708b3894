"""A short cache of computed `/v1/trends` bodies, shared by the requests of one API process.

Fifty dashboards polling the same four queries would otherwise recompute the same answer fifty
times a second while workers keep changing it. An entry is keyed by the query and by the data
revision of the tenants it reads (`service.trends.cube.data_revision`, bumped in the transaction
that writes their counts), so a body is reused only while nothing it counts changed: after a
chunk commits, the next poll recomputes. `max_age` (`SAWT_TRENDS_CACHE_SECONDS`) bounds how long
any body is reused whatever happens. One computation per key at a time: concurrent misses on
the same key wait for the first one instead of repeating it.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

MAX_BYTES = 64 * 1024 * 1024
KEY_LOCKS = 64


@dataclass(frozen=True)
class TaggedBody:
    """A rendered answer and its ETag (a hash of the body: equal bodies, equal ETags)."""

    body: bytes
    etag: str

    @classmethod
    def of(cls, body: bytes) -> TaggedBody:
        return cls(body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')


@dataclass(frozen=True)
class _Entry:
    value: TaggedBody
    revision: Hashable
    stored_at: float


class TrendCache:
    """Bodies by (key, revision), at most `max_age` seconds old and `max_bytes` in all (least
    recently used first out). Thread-safe: sync routes run on a thread pool."""

    def __init__(
        self,
        max_age: float,
        *,
        max_bytes: int = MAX_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_age = max_age
        self.max_bytes = max_bytes
        self.clock = clock
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._key_locks = [threading.Lock() for _ in range(KEY_LOCKS)]

    def get_or_compute(
        self, key: Hashable, revision: Hashable, compute: Callable[[], bytes]
    ) -> TaggedBody:
        """The cached body for `key` at `revision`, else `compute()`'s (then cached)."""
        found = self._fresh(key, revision)
        if found is not None:
            return found
        with self._key_locks[hash(key) % KEY_LOCKS]:
            found = self._fresh(key, revision)  # another request may have just computed it
            if found is not None:
                return found
            value = TaggedBody.of(compute())
            self._store(key, _Entry(value, revision, self.clock()))
            return value

    def _fresh(self, key: Hashable, revision: Hashable) -> TaggedBody | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry.revision != revision or self.clock() - entry.stored_at > self.max_age:
                return None
            self._entries.move_to_end(key)
            return entry.value

    def _store(self, key: Hashable, entry: _Entry) -> None:
        size = len(entry.value.body)
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= len(old.value.body)
            self._entries[key] = entry
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= len(evicted.value.body)
