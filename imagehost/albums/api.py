"""The album API (JSON): create, list, read, change, delete; add and remove images."""

from __future__ import annotations

import orjson
from aiohttp import web

from ..accounts.identity import require_user
from ..db import utcnow
from ..http.bodies import read_json
from ..images import export
from ..images import service as images_service
from ..typedefs import ENV
from . import service


def _json(body: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


async def create_album(request: web.Request) -> web.Response:
    """POST /api/albums {title, description, visibility}."""
    user = require_user(request)
    env = request.app[ENV]
    view = await service.create(env, user.id, await read_json(request))
    headers = {"Location": str(request.app.router["api.album"].url_for(id=view.album.id))}
    resp = _json(service.album_json(env, view), 201)
    resp.headers.update(headers)
    return resp


async def list_albums(request: web.Request) -> web.Response:
    """GET /api/albums?limit=&cursor=: the caller's albums, newest first."""
    user = require_user(request)
    env = request.app[ENV]
    limit = images_service.page_limit(request.query.get("limit"))
    views, nxt, total = await service.listing(env, user.id, request.query.get("cursor"), limit)
    return _json(
        {
            "albums": [service.album_json(env, v) for v in views],
            "total": total,
            "next_cursor": nxt.encode() if nxt else None,
        }
    )


async def get_album(request: web.Request) -> web.Response:
    user = require_user(request)
    env = request.app[ENV]
    return _json(service.album_json(env, await service.owned(env, user.id, request.match_info["id"])))


async def update_album(request: web.Request) -> web.Response:
    user = require_user(request)
    env = request.app[ENV]
    data = await read_json(request)
    view = await service.update(env, user.id, request.match_info["id"], data)
    return _json(service.album_json(env, view))


async def delete_album(request: web.Request) -> web.Response:
    user = require_user(request)
    await service.delete(request.app[ENV], user.id, request.match_info["id"])
    return web.Response(status=204)


async def add_images(request: web.Request) -> web.Response:
    """PUT /api/albums/{id}/images {image_ids}: all of them, or (404) none."""
    user = require_user(request)
    env = request.app[ENV]
    data = await read_json(request)
    view = await service.add_images(env, user.id, request.match_info["id"], data)
    return _json(service.album_json(env, view))


async def remove_image(request: web.Request) -> web.Response:
    user = require_user(request)
    await service.remove_image(request.app[ENV], user.id, request.match_info["id"], request.match_info["image_id"])
    return web.Response(status=204)


async def download_album(request: web.Request) -> web.StreamResponse:
    """GET /api/albums/{id}/download: the album's live images as one streamed ZIP, the same
    archive as `GET /api/export` (originals and metadata.json) limited to the album."""
    user = require_user(request)
    env = request.app[ENV]
    view, rows = await service.images_for_download(env, user.id, request.match_info["id"])
    name = f"imagehost-album-{view.album.title}-{utcnow():%Y-%m-%d}.zip"
    return await export.zip_response(request, env, user, rows, name)
