"""The image API (JSON): streamed upload, presigned upload + confirm, list, read, delete,
and the local backend's signed PUT (what a presigned URL is when there is no bucket)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import orjson
from aiohttp import BodyPartReader, MultipartReader, hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.multipart import content_disposition_filename, parse_content_disposition

from ..accounts.identity import require_user
from ..albums import service as albums_service
from ..db import utcnow
from ..errors import BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, UnsupportedMediaType
from ..http.bodies import read_json
from ..storage import LocalStorage
from ..typedefs import ENV
from . import export, service
from .service import CHUNK

FORM_OVERHEAD = 64 * 1024  # multipart boundaries and part headers around the file
FIELD_LIMIT = 64 * 1024  # other (ignored) form fields
PART_HEADER_LIMIT = 32 * 1024  # one part header line (a long filename is clipped, not refused)
_MALFORMED = "malformed multipart body: send multipart/form-data with the image in a field named 'file'"


def _malformed() -> BadRequest:
    return BadRequest(_MALFORMED, code="malformed_multipart")


# --------------------------------------------------------------------------- streamed upload


@dataclass(frozen=True, slots=True)
class _Part:
    """A form part with its field name and filename, read from one parse of its
    Content-Disposition (aiohttp's `name` and `filename` parse the header once each,
    by the same rules)."""

    reader: BodyPartReader
    name: str | None
    filename: str | None

    @property
    def is_file(self) -> bool:
        return self.filename is not None or self.name == "file"


async def _next_part(reader: MultipartReader) -> _Part | None:
    try:
        part = await reader.next()
    except (ValueError, AssertionError, KeyError, HttpProcessingError):
        raise _malformed() from None
    if part is None:
        return None
    if not isinstance(part, BodyPartReader):
        raise BadRequest("nested multipart bodies are not supported", code="malformed_multipart")
    _, params = parse_content_disposition(part.headers.get(hdrs.CONTENT_DISPOSITION))
    return _Part(part, content_disposition_filename(params, "name"), content_disposition_filename(params, "filename"))


async def _drain(part: _Part) -> bytes:
    """Read a small non-file field (its value, for the few we use)."""
    seen = bytearray()
    while True:
        try:
            chunk = await part.reader.read_chunk(CHUNK)
        except (ValueError, AssertionError, HttpProcessingError):
            raise _malformed() from None
        if not chunk:
            return bytes(seen)
        seen += chunk
        if len(seen) > FIELD_LIMIT:
            raise BadRequest("form field too large", {"field": part.name}, code="malformed_multipart")


def wants_text(request: web.Request) -> bool:
    if request.query.get("format") == "text":
        return True
    accept = request.headers.get("Accept", "")
    return "text/plain" in accept and "json" not in accept


async def upload(request: web.Request) -> web.StreamResponse:
    """POST /api/upload: multipart, field `file`; read as a stream, never buffered. An
    expiry may come as `?expires_in=`, the `X-Expires-In` header (a ShareX config can set
    it) or an `expires_in` form field before the file."""
    user = require_user(request)
    env = request.app[ENV]
    asked = request.query.get("expires_in") or request.headers.get("X-Expires-In")
    lifetime = service.parse_expiry(env, asked)  # before the body: a bad value stores nothing
    cap = env.settings.max_upload_bytes
    if request.content_length is not None and request.content_length > cap + FORM_OVERHEAD:
        raise PayloadTooLarge(detail={"max_bytes": cap})
    try:
        # Not request.multipart(): its part-header limit (8 KB) would refuse a long filename
        # that we would rather clip. Bodies are read with read_chunk and our own caps.
        reader = MultipartReader(request.headers, request.content, max_field_size=PART_HEADER_LIMIT, max_headers=32)
    except (ValueError, AssertionError, KeyError):
        raise _malformed() from None

    part = await _next_part(reader)
    while part is not None and not part.is_file:
        value = await _drain(part)
        if part.name == "expires_in" and asked is None:
            lifetime = service.parse_expiry(env, value.decode("utf-8", "replace"))
        part = await _next_part(reader)
    if part is None:
        raise BadRequest("no file: send the image in a multipart field named 'file'", code="no_file")
    if part.name != "file":
        raise BadRequest("the file must be sent in the field named 'file'", {"field": part.name}, code="no_file")
    file_part = part.reader

    async def read() -> bytes:
        try:
            return await file_part.read_chunk(CHUNK)
        except (ValueError, AssertionError, HttpProcessingError):
            raise _malformed() from None

    async def rest_of_form() -> None:
        nxt = await _next_part(reader)
        while nxt is not None:
            if nxt.is_file:
                raise BadRequest("send exactly one file per request", code="no_file")
            await _drain(nxt)
            nxt = await _next_part(reader)

    row = await service.upload_stream(
        env, user.id, part.filename, read, request.content_length, rest_of_form, lifetime=lifetime
    )
    body = service.image_json(env, row)
    headers = {"Location": str(request.app.router["api.image"].url_for(id=row.id))}
    if wants_text(request):
        return web.Response(text=body["public_url"] + "\n", status=201, content_type="text/plain", headers=headers)
    return web.json_response(body, status=201, headers=headers)


# --------------------------------------------------------------------------- presigned


async def upload_url(request: web.Request) -> web.Response:
    """POST /api/images/upload-url {filename, content_type, size_bytes}."""
    user = require_user(request)
    data = await read_json(request)
    body = await service.create_upload_url(
        request.app[ENV],
        user.id,
        data.get("filename"),
        data.get("content_type"),
        data.get("size_bytes"),
        data.get("expires_in"),
    )
    return web.json_response(body, status=201)


async def confirm(request: web.Request) -> web.Response:
    """POST /api/images/confirm {r2_key}: 201 the first time, 200 with the same image after."""
    user = require_user(request)
    data = await read_json(request)
    env = request.app[ENV]
    row, created = await service.confirm(env, user.id, data.get("r2_key"))
    return web.json_response(service.image_json(env, row), status=201 if created else 200)


async def local_put(request: web.Request) -> web.Response:
    """PUT /api/uploads/pending/<name>?ct=&len=&exp=&sig=: the local backend's presigned
    URL. Enforces what S3 would (signature, expiry, signed type and exact length) and
    more: single use, and only while its upload is pending."""
    env = request.app[ENV]
    storage = env.storage
    assert isinstance(storage, LocalStorage)
    key = "pending/" + request.match_info["name"]
    q = request.query
    try:
        ctype, length, expires, sig = q["ct"], int(q["len"]), int(q["exp"]), q["sig"]
    except (KeyError, ValueError):
        raise Forbidden("invalid upload URL", code="upload_url_invalid") from None
    if not storage.verify_put(key, ctype, length, expires, sig):
        raise Forbidden("invalid upload URL signature", code="upload_url_invalid")
    if expires < time.time():
        raise Forbidden("upload URL expired", code="upload_url_invalid")
    if request.headers.get("Content-Type", "").split(";", 1)[0].strip().lower() != ctype:
        raise UnsupportedMediaType("Content-Type differs from the signed type", {"signed": ctype}, code="type_mismatch")
    if request.content_length is None:
        raise BadRequest("Content-Length is required", {"signed_length": length}, code="length_required")
    if request.content_length > length:
        raise PayloadTooLarge("Content-Length differs from the signed length", {"signed_length": length})
    if request.content_length < length:
        raise BadRequest(
            "Content-Length differs from the signed length", {"signed_length": length}, code="length_mismatch"
        )
    if await service.find_pending_upload(env, key) is None:
        raise NotFound("no pending upload for this URL")
    if await storage.head(key) is not None:
        raise Conflict("this upload URL was already used", code="upload_url_used")

    async def chunks() -> AsyncIterator[bytes]:
        total = 0
        async for chunk in request.content.iter_chunked(CHUNK):
            total += len(chunk)
            if total > length:
                raise PayloadTooLarge(detail={"signed_length": length})
            yield chunk
        if total != length:
            raise BadRequest("body shorter than the signed length", {"signed_length": length}, code="length_mismatch")

    try:
        await storage.put_stream(key, chunks(), ctype)
    except FileExistsError:
        raise Conflict("this upload URL was already used", code="upload_url_used") from None
    return web.Response(status=200)


# --------------------------------------------------------------------------- list, read, delete


async def list_images(request: web.Request) -> web.Response:
    """GET /api/images/?limit=&cursor=&q=&album=: the caller's images, newest first;
    `q` searches the filenames, `album` keeps one of the caller's albums (another's: 404)."""
    user = require_user(request)
    env = request.app[ENV]
    limit = service.page_limit(request.query.get("limit"))
    album_id = request.query.get("album") or None
    if album_id is not None:
        await albums_service.owned(env, user.id, album_id)
    rows, nxt, total = await service.listing(
        env, user.id, request.query.get("cursor"), limit, q=request.query.get("q"), album_id=album_id
    )
    body = {
        "images": [service.image_json(env, r) for r in rows],
        "total": total,
        "next_cursor": nxt.encode() if nxt else None,
    }
    return web.Response(body=orjson.dumps(body), content_type="application/json")


async def get_image(request: web.Request) -> web.Response:
    user = require_user(request)
    env = request.app[ENV]
    row = await service.owned_image(env, user.id, request.match_info["id"])
    return web.json_response(service.image_json(env, row))


async def delete_image(request: web.Request) -> web.Response:
    """DELETE /api/images/{id}: the owner's only; anyone else gets 404 and the image stays."""
    user = require_user(request)
    await service.delete_by_owner(request.app[ENV], user.id, request.match_info["id"])
    return web.Response(status=204)


# --------------------------------------------------------------------------- export


async def export_all(request: web.Request) -> web.StreamResponse:
    """GET /api/export: every live image of the caller, originals and metadata, as one
    streamed ZIP with its length known in advance."""
    user = require_user(request)
    env = request.app[ENV]
    rows = await service.everything_of(env, user.id)
    name = f"imagehost-export-{user.username}-{utcnow():%Y-%m-%d}.zip"
    return await export.zip_response(request, env, user, rows, name)


async def delete_images(request: web.Request) -> web.Response:
    """POST /api/images/delete {image_ids}: the caller's images, all of them or (404) none."""
    user = require_user(request)
    data = await read_json(request)
    deleted = await service.delete_many(request.app[ENV], user.id, data.get("image_ids"))
    return web.json_response({"deleted": deleted})
