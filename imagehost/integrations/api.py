"""`GET /api/sharex.sxcu`: a ShareX custom-uploader file for this server and a new key."""

from __future__ import annotations

from aiohttp import web

from ..accounts.identity import require_user
from ..typedefs import ENV
from . import service


async def sharex_download(request: web.Request) -> web.Response:
    """`?link=page` makes ShareX copy the share page's link instead of the image's."""
    user = require_user(request)
    link = service.sharex_link(request.query.get("link"))
    body, filename = await service.sharex_file(request.app[ENV], user.id, link)
    return web.Response(
        text=body,
        content_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )
