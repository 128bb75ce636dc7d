"""A per-process limit on how often one client may count one signed token: no database, no network.

The click-through and beacon views ask `guard.allow(token, request)` before they send an increment.
The guard keeps, in this process's memory only, a bounded LRU of keyed digests of (token, client) and
how many times that pair counted in the current window (TRACKABLE_LINK_REPLAY_WINDOW seconds). A pair
that counted TRACKABLE_LINK_REPLAY_LIMIT times is refused until its window ends. The client is the
request's REMOTE_ADDR and User-Agent; neither is kept: only a digest keyed with a random per-process
secret, which nothing outside this process can recompute.
"""
from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import OrderedDict
from typing import Any

from trackable.conf import settings

__all__ = ["ReplayGuard", "guard", "MAX_ENTRIES"]

#: (token, client) pairs remembered per process; the least recently seen is forgotten first (~100 bytes each).
MAX_ENTRIES = 50_000


class ReplayGuard:
    """Count (token, client) pairs in fixed windows, in a bounded LRU, thread-safe."""

    def __init__(self, max_entries: int = MAX_ENTRIES, clock: Any = time.monotonic) -> None:
        self.max_entries = max_entries
        self.clock = clock
        self.refused = 0  # requests not counted because their pair reached the limit
        self._key = os.urandom(16)
        self._seen: OrderedDict[bytes, list[float]] = OrderedDict()  # digest -> [window start, count]
        self._lock = threading.Lock()

    def _digest(self, token: str, request: Any) -> bytes:
        meta = getattr(request, "META", {})
        client = f"{meta.get('REMOTE_ADDR', '')}\0{meta.get('HTTP_USER_AGENT', '')[:512]}"
        return hashlib.blake2b(f"{token}\0{client}".encode("utf-8", "replace"), key=self._key, digest_size=16).digest()

    def allow(self, token: str, request: Any) -> bool:
        """Return whether this client may count `token` now (and count it); False once it reached the limit."""
        limit = settings.LINK_REPLAY_LIMIT
        if not limit:
            return True
        digest, now = self._digest(token, request), self.clock()
        with self._lock:
            entry = self._seen.get(digest)
            if entry is None or now - entry[0] >= settings.LINK_REPLAY_WINDOW:
                entry = self._seen[digest] = [now, 0]
            self._seen.move_to_end(digest)
            if len(self._seen) > self.max_entries:
                self._seen.popitem(last=False)
            if entry[1] >= limit:
                self.refused += 1
                return False
            entry[1] += 1
            return True

    def reset(self) -> None:
        """Forget every pair (tests; a new process starts empty anyway)."""
        with self._lock:
            self._seen.clear()
            self.refused = 0


guard = ReplayGuard()
