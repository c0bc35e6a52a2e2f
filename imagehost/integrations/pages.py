"""The integrations page (ShareX, Flameshot, curl), the Flameshot script download, and the
button that makes a key for Flameshot (post/redirect/get: the key is shown once)."""

from __future__ import annotations

from aiohttp import web

from ..accounts.identity import require_user
from ..http.csrf import read_form
from ..typedefs import ENV
from ..web.context import render, url
from ..web.once import keep_once, take_once
from . import service

FLAMESHOT_KEY = "flameshot_key"  # session slot: the key the button just made


async def integrations(request: web.Request) -> web.Response:
    require_user(request)
    env = request.app[ENV]
    new_key = await take_once(request, FLAMESHOT_KEY)
    return await render(
        request,
        "integrations.html",
        {
            "base_url": env.settings.public_base_url,
            "sxcu_url": url(request, "api.sharex"),
            "sharex_key_name": service.SHAREX_KEY_NAME,
            "flameshot_key_name": service.FLAMESHOT_KEY_NAME,
            "flameshot_key_dir": service.FLAMESHOT_KEY_DIR,
            "flameshot_script": service.flameshot_script(env.settings),
            "flameshot_script_url": url(request, "flameshot_script"),
            "flameshot_key_url": url(request, "flameshot_key"),
            "flameshot_key_command": service.flameshot_key_command(new_key["secret"]) if new_key else None,
            "curl_line": service.curl_line(env),
        },
    )


async def flameshot_key(request: web.Request) -> web.Response:
    """POST: a new key named "Flameshot", shown once by the page this redirects to."""
    await read_form(request)
    user = require_user(request)
    secret = await service.flameshot_key(request.app[ENV], user.id)
    await keep_once(request, FLAMESHOT_KEY, {"secret": secret})
    raise web.HTTPSeeOther(url(request, "integrations") + "#flameshot-key")


async def flameshot_download(request: web.Request) -> web.Response:
    require_user(request)
    return web.Response(
        text=service.flameshot_script(request.app[ENV].settings),
        content_type="text/x-shellscript",
        headers={"Content-Disposition": 'attachment; filename="imagehost-flameshot.sh"', "Cache-Control": "no-store"},
    )
