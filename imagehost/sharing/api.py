"""The JSON side of sharing: oEmbed for share pages (public), and the caller's embed
settings and default expiry (`GET/PATCH /api/account/preferences`)."""

from __future__ import annotations

from aiohttp import web

from ..accounts.identity import require_user
from ..http.bodies import read_json
from ..typedefs import ENV
from . import service


async def oembed(request: web.Request) -> web.Response:
    """`GET /api/oembed?url=<share page>&format=json`: 404 for a URL that is not a live
    share page of this server; 400 `unsupported_format` for another format."""
    data = await service.oembed(request.app[ENV], request.query.get("url"), request.query.get("format"))
    return web.Response(
        text=service.json_text(data),
        content_type="application/json",
        headers={"Cache-Control": "no-cache", "Access-Control-Allow-Origin": "*"},
    )


async def get_preferences(request: web.Request) -> web.Response:
    user = require_user(request)
    prefs = await service.preferences(request.app[ENV], user.id)
    return web.json_response(prefs.to_json(), headers={"Cache-Control": "no-store"})


async def patch_preferences(request: web.Request) -> web.Response:
    user = require_user(request)
    body = await read_json(request)
    prefs = await service.update_preferences(request.app[ENV], user.id, body)
    return web.json_response(prefs.to_json(), headers={"Cache-Control": "no-store"})
