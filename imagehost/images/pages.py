"""Image pages: the gallery, an image's detail page, the no-JavaScript delete, and the
deletion link's confirmation page (`/d/<id>/<token>`, as ShareX's DeletionURL opens it)."""

from __future__ import annotations

from aiohttp import web
from jinja2.filters import do_filesizeformat

from ..accounts.identity import require_user
from ..http.csrf import read_form
from ..sharing import service as sharing
from ..typedefs import ENV
from ..web.context import render, url
from . import service

PAGE_SIZE = 50


async def gallery(request: web.Request) -> web.Response:
    user = require_user(request)
    env = request.app[ENV]
    rows, nxt, total = await service.listing(env, user.id, request.query.get("cursor"), PAGE_SIZE)
    used = user.storage_used_bytes  # loaded with the caller by the identity middleware, this request
    default_expiry = (await sharing.preferences(env, user.id)).default_expiry_seconds
    expiry_choices = sharing.expiry_choices(env, default_expiry)  # the uploader's picker
    if default_expiry not in {seconds for seconds, _label in expiry_choices}:
        default_expiry = None  # the limits changed since it was set: start at "Never"
    settings = env.settings
    quota = user.quota(settings.default_quota_bytes)
    return await render(
        request,
        "gallery.html",
        {
            "images": [service.image_json(env, r) for r in rows],
            "total": total,
            "used_bytes": used,
            "used_human": do_filesizeformat(used),
            "quota_bytes": quota,
            "quota_human": do_filesizeformat(quota),
            "next_cursor": nxt.encode() if nxt else None,
            "max_upload_bytes": settings.max_upload_bytes,
            "allowed_types": list(settings.allowed_image_types),
            "expiry_choices": expiry_choices,
            "default_expiry": default_expiry,
        },
    )


async def image_detail(request: web.Request) -> web.Response:
    user = require_user(request)
    env = request.app[ENV]
    row = await service.owned_image(env, user.id, request.match_info["id"])
    return await render(request, "image.html", {"image": service.image_json(env, row)})


async def delete_from_page(request: web.Request) -> web.Response:
    """The delete button without JavaScript: a form POST, then back to the gallery."""
    user = require_user(request)
    await read_form(request)
    await service.delete_by_owner(request.app[ENV], user.id, request.match_info["id"])
    raise web.HTTPSeeOther(url(request, "gallery"))


async def deletion_page(request: web.Request) -> web.Response:
    """GET: a confirmation page only, so link previews and prefetchers never delete."""
    env = request.app[ENV]
    row = await service.image_by_token(env, request.match_info["id"], request.match_info["token"])
    ctx = {"image": service.image_json(env, row) if row else None, "done": False, "action": request.path}
    resp = await render(request, "delete_confirm.html", ctx, 200 if row else 404)
    resp.headers["Referrer-Policy"] = "no-referrer"  # the URL is a secret
    resp.headers["X-Robots-Tag"] = "noindex"
    return resp


async def deletion_post(request: web.Request) -> web.Response:
    """POST: delete. Works without logging in: the URL carries the image's secret."""
    deleted = await service.delete_by_token(request.app[ENV], request.match_info["id"], request.match_info["token"])
    resp = await render(
        request,
        "delete_confirm.html",
        {"image": None, "done": deleted, "action": request.path},
        200 if deleted else 404,
    )
    resp.headers["Referrer-Policy"] = "no-referrer"
    return resp
