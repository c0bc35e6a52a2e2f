"""The integrations page (ShareX, Flameshot, curl) and the Flameshot script download."""

from __future__ import annotations

from aiohttp import web

from ..accounts.identity import require_user
from ..typedefs import ENV
from ..web.context import render, url
from . import service


async def integrations(request: web.Request) -> web.Response:
    require_user(request)
    env = request.app[ENV]
    return await render(
        request,
        "integrations.html",
        {
            "base_url": env.settings.public_base_url,
            "sxcu_url": url(request, "api.sharex"),
            "flameshot_script": service.flameshot_script(env.settings),
            "flameshot_script_url": url(request, "flameshot_script"),
            "curl_line": service.curl_line(env),
        },
    )


async def flameshot_download(request: web.Request) -> web.Response:
    require_user(request)
    return web.Response(
        text=service.flameshot_script(request.app[ENV].settings),
        content_type="text/x-shellscript",
        headers={"Content-Disposition": 'attachment; filename="imagehost-flameshot.sh"', "Cache-Control": "no-store"},
    )
