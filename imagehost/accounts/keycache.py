"""A short-lived, per-process cache of API-key authentications, so a client sending many
requests with one key does not cost a database query each.

What an entry holds: whatever `service.user_for_key` answered for the key (the owner as
loaded with the key, and the key id) — a check added to that lookup (a disabled user, an
auth version) is cached with it and so takes effect within the same bound. Only positive
answers are kept; an unknown or revoked key always reaches the database.

Revocation reaches every process within `TTL` (1 s): an entry is used only for `TTL`
seconds after the database said the key was valid, whatever happens elsewhere; the
process that revokes a key (or anything else that could invalidate one) calls `clear()`
after its commit, so there the very next request is refused. The entries are keyed by the
SHA-256 of the secret (never the secret itself), are bounded in number (least recently
filled out first), and expire on the monotonic clock.

Fields of the cached user that change often (`storage_used_bytes`) may be up to `TTL`
old: a handler that shows or enforces them reads them itself (quota is enforced in the
upload's own transaction, not from this object).
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from .store import User

T = TypeVar("T")

TTL = 1.0  # seconds: the longest a revoked key may still be accepted by another process
SIZE = 4096


class KeyCache(Generic[T]):
    def __init__(self, ttl: float = TTL, size: int = SIZE) -> None:
        self.ttl, self.size = ttl, size
        self._items: OrderedDict[bytes, tuple[float, T]] = OrderedDict()

    @staticmethod
    def _key(secret: str) -> bytes:
        return hashlib.sha256(secret.encode()).digest()

    def get(self, secret: str) -> T | None:
        item = self._items.get(self._key(secret))
        if item is None:
            return None
        if item[0] <= time.monotonic():
            self._items.pop(self._key(secret), None)
            return None
        return item[1]

    def put(self, secret: str, value: T, since: float) -> None:
        """Keep `value` until `since + ttl` (`since`: time.monotonic() before the query
        that found it, so a revocation committed during the query is covered too)."""
        key = self._key(secret)
        self._items[key] = (since + self.ttl, value)
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()


# One per process: every app in the process shares it, so a revocation through any of
# them clears it for all (keys are random secrets: two databases never share one).
api_keys: KeyCache[tuple[User, str]] = KeyCache()


def clear() -> None:
    """Forget every cached key in this process (call after committing a revocation)."""
    api_keys.clear()
