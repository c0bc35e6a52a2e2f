"""The image bytes, served by the app itself when the storage backend asks for it (the
local folder; a bucket serves its own)."""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime

from aiohttp import hdrs, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.helpers import ETAG_ANY, ETag, parse_http_date, rfc822_formatted_time
from aiohttp.http import SERVER_SOFTWARE, HttpVersion11

from ..db import utcnow
from ..errors import NotFound
from ..http.access import log_request, request_id
from ..storage import LocalStorage
from ..typedefs import ACTIVE_KEYS, ENV, HOT_IMAGES, METRICS, REQUEST_ID, Handler, Middleware
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


@dataclass(frozen=True)
class Hot:
    """One small image's bytes and the headers its 200 carries, as read from `path` when
    the file had the signature `sig` (inode, mtime in ns, size)."""

    path: str
    sig: tuple[int, int, int]
    body: bytes
    etag: str
    mtime: float
    headers: dict[str, str]  # everything but Cache-Control for an expiring image
    expires_at: datetime | None  # the image's expiry (Cache-Control follows it)
    head200: bytes = field(init=False)  # `headers` laid out as a 200's head (see `_head`), once
    head304: bytes = field(init=False)  # and as a 304's (no Content-Length, no Accept-Ranges)

    def __post_init__(self) -> None:
        fixed = {k: v for k, v in self.headers.items() if not (k == "Cache-Control" and self.expires_at)}
        object.__setattr__(self, "head200", _head(200, fixed))
        fixed.pop(hdrs.CONTENT_LENGTH, None)
        fixed.pop(hdrs.ACCEPT_RANGES, None)
        object.__setattr__(self, "head304", _head(304, fixed))


# Set by the hot path on every answer (the full chain's security and access-log middlewares do).
_REFERRER_POLICY = "strict-origin-when-cross-origin"


def _head(status: int, headers: dict[str, str]) -> bytes:
    """The status line and every header line of a hot answer but the per-request ones
    (Date, X-Request-ID, an expiring image's Cache-Control), which `hot_wire` appends."""
    reason = "OK" if status == 200 else "Not Modified"
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines += ["Referrer-Policy: " + _REFERRER_POLICY, "Server: " + SERVER_SOFTWARE, ""]
    return "\r\n".join(lines).encode("latin-1")


class Prebuilt(web.StreamResponse):
    """A hot image's answer with its bytes laid out ahead of time (`wire`): `prepare`
    hands them to the connection in one write, as aiohttp's Response would coalesce
    them, without building and serialising a header multidict per request. Only for
    HTTP/1.1 keep-alive requests (the others take `web.Response`); `headers` stays empty
    (nothing after the first middleware reads it: the access log is ours)."""

    def __init__(self, status: int, data: bytes, body_length: int) -> None:
        super().__init__(status=status)
        self._keep_alive = True
        self._data, self._length = data, body_length

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        if self._eof_sent:
            return None
        self._req = request
        await request._prepare_hook(self)
        await request._payload_writer.write_eof(self._data)
        self._eof_sent = True
        self._body_length = self._length
        self._req = None
        return None


class HotImages:
    """A small, bounded cache of hot small images' bytes and headers (local storage only),
    answered by `hot_image_middleware` without the rest of the middleware chain.

    Never stale: an entry is used only while the image's key is in `ActiveKeys` (the
    database's answer, which never outlives the image's expiry) and only if a `stat` of
    its file still gives the signature it was read with — a deleted file (a delete on any
    process removes it), or one replaced, falls back to the ordinary path at once."""

    def __init__(self, max_bytes: int = 32 * 1024 * 1024, max_item: int = 256 * 1024) -> None:
        self.max_bytes, self.max_item = max_bytes, max_item
        self.used = 0
        self._items: OrderedDict[str, Hot] = OrderedDict()

    def get(self, key: str) -> Hot | None:
        return self._items.get(key)

    def put(self, key: str, hot: Hot) -> None:
        if len(hot.body) > self.max_item or self.max_bytes <= 0:
            return
        self.discard(key)
        self._items[key] = hot
        self.used += len(hot.body)
        while self.used > self.max_bytes:
            _key, old = self._items.popitem(last=False)
            self.used -= len(old.body)

    def discard(self, key: str) -> None:
        old = self._items.pop(key, None)
        if old is not None:
            self.used -= len(old.body)


def _read_small(path: str, limit: int) -> tuple[tuple[int, int, int], bytes, float] | None:
    """(signature, bytes, mtime) of a file of at most `limit` bytes (in an executor)."""
    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            if st.st_size > limit:
                return None
            body = fh.read(limit + 1)
    except OSError:
        return None
    if len(body) != st.st_size:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size), body, st.st_mtime


def _etag_match(value: str, etags: tuple[ETag, ...]) -> bool:
    """If-None-Match's weak comparison, as aiohttp's FileResponse does it."""
    if len(etags) == 1 and etags[0].value == ETAG_ANY:
        return True
    return any(e.value == value for e in etags)


# What the ordinary path answers differently (ranges, the rarer preconditions): those go there.
_SLOW_HEADERS = (hdrs.RANGE, hdrs.IF_RANGE, hdrs.IF_MATCH, hdrs.IF_UNMODIFIED_SINCE, hdrs.COOKIE)


def hot_lookup(app: web.Application, key: str) -> Hot | None:
    """The hot entry of an active image whose file is still the one it was read from,
    or None (the ordinary path answers)."""
    hot_images = app[HOT_IMAGES]
    hot = hot_images.get(key)
    if hot is None or app[ACTIVE_KEYS].get(key) is None:
        return None
    try:
        st = os.stat(hot.path)  # a few microseconds on a local disk: no executor hop
    except OSError:
        hot_images.discard(key)
        return None
    if (st.st_ino, st.st_mtime_ns, st.st_size) != hot.sig:
        hot_images.discard(key)
        return None
    return hot


def hot_fresh(hot: Hot, if_none_match: str | None, if_modified_since: str | None) -> bool:
    """Whether a conditional GET gets a 304, as FileResponse decides it: If-None-Match
    when present (weak comparison, `*`), else If-Modified-Since."""
    if if_none_match is not None:
        etags = web.BaseRequest._if_match_or_none_impl(if_none_match)
        return etags is not None and _etag_match(hot.etag, etags)
    since = parse_http_date(if_modified_since) if if_modified_since is not None else None
    return since is not None and hot.mtime <= since.timestamp()


def hot_wire(hot: Hot, fresh: bool, head_only: bool, rid: str) -> tuple[int, bytes, int]:
    """(status, every byte of the answer, body length) for an HTTP/1.1 keep-alive
    request: the prebuilt head, then Date, X-Request-ID and an expiring image's
    Cache-Control, then the body (none for a 304 or a HEAD)."""
    tail = b"Date: " + rfc822_formatted_time().encode() + b"\r\nX-Request-ID: " + rid.encode() + b"\r\n"
    if hot.expires_at is not None:
        tail += b"Cache-Control: " + _expiring_cache_control(hot.expires_at).encode() + b"\r\n"
    if fresh:
        return 304, b"".join((hot.head304, tail, b"\r\n")), 0
    body = b"" if head_only else hot.body
    return 200, b"".join((hot.head200, tail, b"\r\n", body)), len(body)


def _hot_response(request: web.Request) -> web.StreamResponse | None:
    """The answer from `HotImages`, or None when the ordinary path must answer."""
    key = request.match_info.get("key")
    if key is None:
        return None
    headers = request.headers
    for h in _SLOW_HEADERS:
        if h in headers:
            return None
    hot = hot_lookup(request.app, key)
    if hot is None:
        return None
    fresh = hot_fresh(hot, headers.get(hdrs.IF_NONE_MATCH), headers.get(hdrs.IF_MODIFIED_SINCE))
    rid = request_id(request)
    if request.version == HttpVersion11 and request.keep_alive:
        status, data, length = hot_wire(hot, fresh, request.method == "HEAD", rid)
        return Prebuilt(status, data, length)
    out = dict(hot.headers)
    if hot.expires_at is not None:
        out["Cache-Control"] = _expiring_cache_control(hot.expires_at)
    out["X-Request-ID"] = rid
    out["Referrer-Policy"] = _REFERRER_POLICY
    if fresh:
        del out[hdrs.CONTENT_LENGTH], out[hdrs.ACCEPT_RANGES]
        return web.Response(status=304, headers=out)
    return web.Response(body=hot.body, headers=out)


def hot_image_middleware() -> Middleware:
    """The first middleware: an anonymous, cookie-less GET/HEAD of a hot small image is
    answered from `HotImages` with exactly the headers the full chain would give it (the
    request id, the security headers), still counted in the metrics and the access log;
    the session, identity, CSRF and error middlewares have nothing to do for it."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method in _GET_HEAD and request.path.startswith("/i/"):
            start = time.perf_counter()
            response = _hot_response(request)
            if response is not None:
                rid = request[REQUEST_ID]
                seconds = time.perf_counter() - start
                request.app[METRICS].observe("image_file", request.method, response.status, seconds, None)
                log_request(request, rid, response.status, seconds)
                return response
        return await handler(request)

    return middleware


_GET_HEAD = frozenset({"GET", "HEAD"})


def _expiring_cache_control(expires_at: datetime) -> str:
    left = max(0, int((expires_at - utcnow()).total_seconds()))
    return f"public, max-age={left}"


async def _remember(
    request: web.Request, key: str, path: str, headers: dict[str, str], served: store.ServedType
) -> None:
    hot_images = request.app[HOT_IMAGES]
    if hot_images.max_bytes <= 0:
        return
    loop = asyncio.get_running_loop()
    read = await loop.run_in_executor(None, _read_small, path, hot_images.max_item)
    if read is None:
        return
    sig, body, mtime = read
    etag = f"{sig[1]:x}-{sig[2]:x}"  # FileResponse's: mtime in ns and size, in hex
    full = {
        **headers,
        "Cache-Control": IMAGE_HEADERS["Cache-Control"],
        hdrs.ETAG: f'"{etag}"',
        hdrs.LAST_MODIFIED: _http_date(mtime),
        hdrs.CONTENT_LENGTH: str(len(body)),
        hdrs.ACCEPT_RANGES: "bytes",
    }
    hot_images.put(key, Hot(path, sig, body, etag, mtime, full, served.expires_at))


def _http_date(ts: float) -> str:
    """Last-Modified as aiohttp writes it (the mtime rounded up to the second)."""
    return time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(math.ceil(ts)))


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
    if request.app[HOT_IMAGES].get(key) is None:
        await _remember(request, key, str(path), headers, served)  # the next request is answered from memory
    if served.expires_at is not None:  # no cache may keep it past its expiry
        headers["Cache-Control"] = _expiring_cache_control(served.expires_at)
    return web.FileResponse(path, headers=headers)
