"""The image bytes, served by the app itself when the storage backend asks for it (the
local folder; a bucket serves its own)."""

from __future__ import annotations

import time
from collections import OrderedDict

from aiohttp import web

from ..db import utcnow
from ..errors import NotFound
from ..storage import LocalStorage
from ..typedefs import ACTIVE_KEYS, ENV
from . import store

IMAGE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cache-Control": "public, max-age=31536000, immutable",
    "Cross-Origin-Resource-Policy": "cross-origin",
}


class ActiveKeys:
    """Which keys are active images, and their verified types: a small per-process cache
    of positive answers, so a hot image costs no database query. Safe because the file
    is served only if it also exists, and a delete removes the row and then the file;
    pending keys are never cached, and an expiring image's answer never outlives it."""

    def __init__(self, size: int = 10_000, ttl: float = 60.0) -> None:
        self.size, self.ttl = size, ttl
        self._items: OrderedDict[str, tuple[store.ServedType, float]] = OrderedDict()

    def get(self, key: str) -> store.ServedType | None:
        item = self._items.get(key)
        if item is None or item[1] <= time.monotonic():
            return None
        return item[0]

    def put(self, key: str, served: store.ServedType) -> None:
        until = time.monotonic() + self.ttl
        if served.expires_at is not None:
            until = min(until, time.monotonic() + (served.expires_at - utcnow()).total_seconds())
        self._items[key] = (served, until)
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)


async def serve_image(request: web.Request) -> web.StreamResponse:
    """GET /i/<key>: an active image's bytes with its verified type, sandboxed, cached
    for a year (keys never change meaning). FileResponse does ETag, ranges and sendfile."""
    env = request.app[ENV]
    storage = env.storage
    assert isinstance(storage, LocalStorage)
    key = request.match_info["key"]
    path = storage.path(key)  # InvalidKey → 404
    cache = request.app[ACTIVE_KEYS]
    served = cache.get(key)
    if served is None:
        async with env.engine.connect() as conn:
            served = await store.served_type(conn, key)
        if served is None:
            raise NotFound("image not found")
        cache.put(key, served)
    headers = {"Content-Type": served.content_type, **IMAGE_HEADERS}
    if served.expires_at is not None:  # no cache may keep it past its expiry
        left = max(0, int((served.expires_at - utcnow()).total_seconds()))
        headers["Cache-Control"] = f"public, max-age={left}"
    return web.FileResponse(path, headers=headers)
