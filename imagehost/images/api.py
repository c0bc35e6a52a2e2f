"""The image API: streamed upload, presigned upload + confirm, list, read, delete."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from ..accounts.identity import require_user
from ..errors import BadRequest, NotFound, PayloadTooLarge
from ..integrations import sharex
from ..typedefs import ENGINE, SETTINGS, STORAGE
from . import store, uploads
from .uploads import Env

CHUNK = 1024 * 1024  # per read_chunk; fewer, larger reads cost less per byte
FORM_OVERHEAD = 64 * 1024  # multipart boundaries and part headers around the file
FIELD_LIMIT = 64 * 1024  # other (ignored) form fields
PART_HEADER_LIMIT = 32 * 1024  # one part header line (a long filename is clipped, not refused)
DEFAULT_LIMIT, MAX_LIMIT = 50, 100
_MALFORMED = "malformed multipart body: send multipart/form-data with the image in a field named 'file'"


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/api/upload", upload)
    app.router.add_post("/api/images/upload-url", upload_url)
    app.router.add_post("/api/images/confirm", confirm)
    app.router.add_get("/api/images/", list_images)
    app.router.add_get("/api/images", list_images)
    app.router.add_get("/api/images/{id}", get_image)
    app.router.add_delete("/api/images/{id}", delete_image)
    app.router.add_get("/api/sharex.sxcu", sharex.download)


def env_of(request: web.Request) -> Env:
    app = request.app
    return Env(app[ENGINE], app[STORAGE], app[SETTINGS])


# --------------------------------------------------------------------------- streamed upload


async def _next_part(reader: MultipartReader) -> BodyPartReader | None:
    try:
        part = await reader.next()
    except (ValueError, AssertionError, KeyError, HttpProcessingError):
        raise BadRequest(_MALFORMED) from None
    if part is not None and not isinstance(part, BodyPartReader):
        raise BadRequest("nested multipart bodies are not supported")
    return part


async def _drain(part: BodyPartReader) -> None:
    """Read and drop a small non-file field."""
    seen = 0
    while True:
        try:
            chunk = await part.read_chunk(CHUNK)
        except (ValueError, AssertionError, HttpProcessingError):
            raise BadRequest(_MALFORMED) from None
        if not chunk:
            return
        seen += len(chunk)
        if seen > FIELD_LIMIT:
            raise BadRequest("form field too large", {"field": part.name})


def _is_file(part: BodyPartReader) -> bool:
    return part.filename is not None or part.name == "file"


def wants_text(request: web.Request) -> bool:
    if request.query.get("format") == "text":
        return True
    accept = request.headers.get("Accept", "")
    return "text/plain" in accept and "json" not in accept


async def upload(request: web.Request) -> web.StreamResponse:
    """POST /api/upload: multipart, field `file`; read as a stream, never buffered."""
    user = require_user(request)
    env = env_of(request)
    cap = env.settings.max_upload_bytes
    if request.content_length is not None and request.content_length > cap + FORM_OVERHEAD:
        raise PayloadTooLarge(detail={"max_bytes": cap})
    try:
        # Not request.multipart(): its part-header limit (8 KB) would refuse a long filename
        # that we would rather clip. Bodies are read with read_chunk and our own caps.
        reader = MultipartReader(request.headers, request.content, max_field_size=PART_HEADER_LIMIT, max_headers=32)
    except (ValueError, AssertionError, KeyError):
        raise BadRequest(_MALFORMED) from None

    part = await _next_part(reader)
    while part is not None and not _is_file(part):
        await _drain(part)
        part = await _next_part(reader)
    if part is None:
        raise BadRequest("no file: send the image in a multipart field named 'file'")
    if part.name != "file":
        raise BadRequest("the file must be sent in the field named 'file'", {"field": part.name})
    file_part = part

    async def read() -> bytes:
        try:
            return await file_part.read_chunk(CHUNK)
        except (ValueError, AssertionError, HttpProcessingError):
            raise BadRequest(_MALFORMED) from None

    async def rest_of_form() -> None:
        nxt = await _next_part(reader)
        while nxt is not None:
            if _is_file(nxt):
                raise BadRequest("send exactly one file per request")
            await _drain(nxt)
            nxt = await _next_part(reader)

    row = await uploads.upload_stream(env, user.id, file_part.filename, read, request.content_length, rest_of_form)
    body = uploads.image_json(env, row)
    headers = {"Location": f"/api/images/{row.id}"}
    if wants_text(request):
        return web.Response(text=body["public_url"] + "\n", status=201, content_type="text/plain", headers=headers)
    return web.json_response(body, status=201, headers=headers)


# --------------------------------------------------------------------------- presigned


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadRequest("expected a JSON object") from None
    if not isinstance(data, dict):
        raise BadRequest("expected a JSON object")
    return data


async def upload_url(request: web.Request) -> web.Response:
    """POST /api/images/upload-url {filename, content_type, size_bytes}."""
    user = require_user(request)
    data = await _json_object(request)
    body = await uploads.create_upload_url(
        env_of(request), user.id, data.get("filename"), data.get("content_type"), data.get("size_bytes")
    )
    return web.json_response(body, status=201)


async def confirm(request: web.Request) -> web.Response:
    """POST /api/images/confirm {r2_key}: 201 the first time, 200 with the same image after."""
    user = require_user(request)
    data = await _json_object(request)
    env = env_of(request)
    row, created = await uploads.confirm(env, user.id, data.get("r2_key"))
    return web.json_response(uploads.image_json(env, row), status=201 if created else 200)


# --------------------------------------------------------------------------- list, read, delete


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit")
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        raise BadRequest("limit must be an integer from 1 to 100") from None
    if limit < 1:
        raise BadRequest("limit must be an integer from 1 to 100")
    return min(limit, MAX_LIMIT)


async def list_images(request: web.Request) -> web.Response:
    """GET /api/images/?limit=&cursor=: the caller's images, newest first."""
    user = require_user(request)
    env = env_of(request)
    rows, nxt, total = await listing(env, user.id, request.query.get("cursor"), _limit(request))
    return web.json_response(
        {
            "images": [uploads.image_json(env, r) for r in rows],
            "total": total,
            "next_cursor": nxt.encode() if nxt else None,
        }
    )


async def listing(
    env: Env, owner_id: str, raw_cursor: str | None, limit: int
) -> tuple[list[store.ImageRow], store.Cursor | None, int]:
    """One page of the owner's images after the opaque cursor, and how many they have."""
    cursor = store.Cursor.decode(raw_cursor) if raw_cursor else None
    async with env.engine.connect() as conn:
        rows, nxt = await store.list_for_owner(conn, owner_id, cursor, limit)
        total = await store.count_for_owner(conn, owner_id)
    return rows, nxt, total


async def get_image(request: web.Request) -> web.Response:
    user = require_user(request)
    env = env_of(request)
    async with env.engine.connect() as conn:
        row = await store.get_for_owner(conn, user.id, request.match_info["id"])
    if row is None:
        raise NotFound("image not found")
    return web.json_response(uploads.image_json(env, row))


async def delete_image(request: web.Request) -> web.Response:
    """DELETE /api/images/{id}: the owner's only; anyone else gets 404 and the image stays."""
    user = require_user(request)
    if not await uploads.delete_image(env_of(request), request.match_info["id"], owner_id=user.id):
        raise NotFound("image not found")
    return web.Response(status=204)
