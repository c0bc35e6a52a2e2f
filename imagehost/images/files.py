"""Serving image bytes (local mode), the deletion link, and the local "presigned" PUT."""

from __future__ import annotations

import time
from collections import OrderedDict

from aiohttp import web

from ..errors import AppError, BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, UnsupportedMediaType
from ..storage import LocalStorage, StorageError
from ..typedefs import ACTIVE_KEYS, ENGINE, SETTINGS, STORAGE
from ..web.context import render
from . import store, uploads
from .api import CHUNK, env_of

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
    pending keys are never cached."""

    def __init__(self, size: int = 10_000, ttl: float = 60.0) -> None:
        self.size, self.ttl = size, ttl
        self._items: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def get(self, key: str) -> str | None:
        item = self._items.get(key)
        if item is None or item[1] < time.monotonic():
            return None
        return item[0]

    def put(self, key: str, content_type: str) -> None:
        self._items[key] = (content_type, time.monotonic() + self.ttl)
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)


def setup_routes(app: web.Application) -> None:
    app[ACTIVE_KEYS] = ActiveKeys()
    if app[SETTINGS].storage_backend == "local":
        app.router.add_get("/i/{key}", serve_image)
        app.router.add_put("/api/uploads/pending/{name}", local_put)
    app.router.add_get("/d/{id}/{token}", deletion_page)
    app.router.add_post("/d/{id}/{token}", deletion_post)


# --------------------------------------------------------------------------- /i/<key>


async def serve_image(request: web.Request) -> web.StreamResponse:
    """GET /i/<key>: an active image's bytes with its verified type, sandboxed, cached
    for a year (keys never change meaning). FileResponse does ETag, ranges and sendfile."""
    storage = request.app[STORAGE]
    assert isinstance(storage, LocalStorage)
    key = request.match_info["key"]
    path = storage.path(key)  # InvalidKey → 404
    cache = request.app[ACTIVE_KEYS]
    content_type = cache.get(key)
    if content_type is None:
        async with request.app[ENGINE].connect() as conn:
            content_type = await store.served_type(conn, key)
        if content_type is None:
            raise NotFound("image not found")
        cache.put(key, content_type)
    return web.FileResponse(path, headers={"Content-Type": content_type, **IMAGE_HEADERS})


# --------------------------------------------------------------------------- /d/<id>/<token>


async def deletion_page(request: web.Request) -> web.Response:
    """GET: a confirmation page only, so link previews and prefetchers never delete."""
    env = env_of(request)
    row = await uploads.image_by_token(env, request.match_info["id"], request.match_info["token"])
    ctx = {"image": uploads.image_json(env, row) if row else None, "done": False, "action": request.path}
    resp = await render(request, "delete_confirm.html", ctx, 200 if row else 404)
    resp.headers["Referrer-Policy"] = "no-referrer"  # the URL is a secret
    resp.headers["X-Robots-Tag"] = "noindex"
    return resp


async def deletion_post(request: web.Request) -> web.Response:
    """POST: delete. Works without logging in: the URL carries the image's secret."""
    env = env_of(request)
    deleted = await uploads.delete_image(env, request.match_info["id"], token=request.match_info["token"])
    resp = await render(
        request,
        "delete_confirm.html",
        {"image": None, "done": deleted, "action": request.path},
        200 if deleted else 404,
    )
    resp.headers["Referrer-Policy"] = "no-referrer"
    return resp


# --------------------------------------------------------------------------- local PUT


async def local_put(request: web.Request) -> web.Response:
    """PUT /api/uploads/pending/<name>?ct=&len=&exp=&sig=: the local backend's presigned
    URL. Enforces what S3 would (signature, expiry, signed type and exact length) and
    more: single use, and only while its upload is pending."""
    storage = request.app[STORAGE]
    assert isinstance(storage, LocalStorage)
    key = "pending/" + request.match_info["name"]
    q = request.query
    try:
        ctype, length, expires, sig = q["ct"], int(q["len"]), int(q["exp"]), q["sig"]
    except (KeyError, ValueError):
        raise Forbidden("invalid upload URL") from None
    if not storage.verify_put(key, ctype, length, expires, sig):
        raise Forbidden("invalid upload URL signature")
    if expires < time.time():
        raise Forbidden("upload URL expired")
    if request.headers.get("Content-Type", "").split(";", 1)[0].strip().lower() != ctype:
        raise UnsupportedMediaType("Content-Type differs from the signed type", {"signed": ctype})
    if request.content_length is None:
        raise BadRequest("Content-Length is required", {"signed_length": length})
    if request.content_length != length:
        cls = PayloadTooLarge if request.content_length > length else BadRequest
        raise cls("Content-Length differs from the signed length", {"signed_length": length})
    env = env_of(request)
    if await uploads.find_pending_upload(env, key) is None:
        raise NotFound("no pending upload for this URL")
    if await storage.head(key) is not None:
        raise Conflict("this upload URL was already used")

    async def chunks():
        total = 0
        async for chunk in request.content.iter_chunked(CHUNK):
            total += len(chunk)
            if total > length:
                raise PayloadTooLarge(detail={"signed_length": length})
            yield chunk
        if total != length:
            raise BadRequest("body shorter than the signed length", {"signed_length": length})

    try:
        await storage.put_stream(key, chunks(), ctype)
    except FileExistsError:
        raise Conflict("this upload URL was already used") from None
    except (AppError, StorageError):
        raise
    return web.Response(status=200)
