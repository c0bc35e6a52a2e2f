"""The signed-in pages: gallery, image detail, no-JavaScript delete, integrations."""

from __future__ import annotations

from aiohttp import web
from jinja2.filters import do_filesizeformat

from ..accounts.identity import require_user
from ..errors import NotFound
from ..http.csrf import read_form
from ..images import store, uploads
from ..images.api import env_of, listing
from ..integrations.flameshot import flameshot_script
from .context import render

PAGE_SIZE = 50


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/gallery", gallery)
    app.router.add_get("/images/{id}", image_detail)
    app.router.add_post("/images/{id}/delete", delete_from_page)
    app.router.add_get("/integrations", integrations)
    app.router.add_get("/integrations/flameshot.sh", flameshot_download)


async def gallery(request: web.Request) -> web.Response:
    user = require_user(request)
    env = env_of(request)
    rows, nxt, total = await listing(env, user.id, request.query.get("cursor"), PAGE_SIZE)
    used = user.storage_used_bytes  # loaded with the caller by the identity middleware, this request
    settings = env.settings
    return await render(
        request,
        "gallery.html",
        {
            "images": [uploads.image_json(env, r) for r in rows],
            "total": total,
            "used_bytes": used,
            "used_human": do_filesizeformat(used),
            "quota_bytes": settings.quota_bytes,
            "quota_human": do_filesizeformat(settings.quota_bytes),
            "next_cursor": nxt.encode() if nxt else None,
            "max_upload_bytes": settings.max_upload_bytes,
            "allowed_types": list(settings.allowed_image_types),
        },
    )


async def image_detail(request: web.Request) -> web.Response:
    user = require_user(request)
    env = env_of(request)
    async with env.engine.connect() as conn:
        row = await store.get_for_owner(conn, user.id, request.match_info["id"])
    if row is None or row.status != store.ACTIVE:
        raise NotFound("image not found")
    return await render(request, "image.html", {"image": uploads.image_json(env, row)})


async def delete_from_page(request: web.Request) -> web.Response:
    """The delete button without JavaScript: a form POST, then back to the gallery."""
    user = require_user(request)
    await read_form(request)
    if not await uploads.delete_image(env_of(request), request.match_info["id"], owner_id=user.id):
        raise NotFound("image not found")
    raise web.HTTPSeeOther("/gallery")


async def integrations(request: web.Request) -> web.Response:
    require_user(request)
    settings = env_of(request).settings
    base = settings.public_base_url
    return await render(
        request,
        "integrations.html",
        {
            "base_url": base,
            "sxcu_url": "/api/sharex.sxcu",
            "flameshot_script": flameshot_script(settings),
            "flameshot_script_url": "/integrations/flameshot.sh",
            "curl_line": (
                f'curl -H "Authorization: Bearer ih_YOUR_KEY" -F "file=@screenshot.png" "{base}/api/upload?format=text"'
            ),
        },
    )


async def flameshot_download(request: web.Request) -> web.Response:
    require_user(request)
    return web.Response(
        text=flameshot_script(env_of(request).settings),
        content_type="text/x-shellscript",
        headers={"Content-Disposition": 'attachment; filename="imagehost-flameshot.sh"', "Cache-Control": "no-store"},
    )
