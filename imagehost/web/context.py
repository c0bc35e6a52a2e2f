"""Rendering a page: every template sees the caller, the CSRF token, `static_url` and
aiohttp-jinja2's `url(name, **parts)`; handlers build URLs with `url(request, name)`."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import aiohttp_jinja2
from aiohttp import web

from ..accounts.identity import SESSION_COOKIE, csrf_token, current_user, identify
from ..accounts.store import User
from ..typedefs import ASSETS, SETTINGS
from .timeleft import time_left

# The routes the page scripts call, as path templates (`/api/images/{id}`): static/api.js
# fills them in with `route(name, parts)`, so the scripts build URLs from names too.
JS_ROUTES = (
    "gallery",
    "image",
    "image_delete",
    "api.images",
    "api.image",
    "api.upload_url",
    "api.confirm",
    "share",
)


async def page_user(request: web.Request) -> User | None:
    """The signed-in caller, for the page header. The identify middleware skips paths that
    never need a caller (`/i/…`, so serving an image costs no session or database work); a
    page rendered there is an error page (a missing image), and only then is the session
    read here — one query, on an error page, never on an image that is served."""
    user = current_user(request)
    if user is not None or SESSION_COOKIE not in request.cookies or "Authorization" in request.headers:
        return user
    try:
        # Where the middleware already looked, the session holds no uid (none, or it was
        # cleared when its user was gone): no query. Only a skipped path gets here with one.
        identity = await identify(request)
    except Exception:  # the page must render whatever the database says
        return None
    return identity.user if identity else None


async def page_context(request: web.Request) -> dict[str, Any]:
    router = request.app.router
    public = urlsplit(request.app[SETTINGS].public_base_url)
    route = request.match_info.route
    return {
        "user": await page_user(request),
        "page_name": route.name,  # the nav marks it aria-current
        "csrf_token": await csrf_token(request),
        "static_url": request.app[ASSETS].url,
        "site_name": "imagehost",
        "js_routes": {name: router[name].canonical for name in JS_ROUTES},
        # PUBLIC_BASE_URL's origin: the page may be open under another name for this
        # machine, and the scripts send what goes to the app itself to the page's origin.
        "public_origin": f"{public.scheme}://{public.netloc}",
        "time_left": time_left,  # an expiring image's "5 min left" (web/timeleft.py)
    }


def url(request: web.Request, name: str, **parts: str) -> str:
    """The path of a named route (the route table is `imagehost/routes.py`)."""
    return str(request.app.router[name].url_for(**parts))


async def render(
    request: web.Request, template: str, context: dict[str, Any] | None = None, status: int = 200
) -> web.Response:
    ctx = await page_context(request)
    ctx.update(context or {})
    response = aiohttp_jinja2.render_template(template, request, ctx, status=status)
    response.headers.setdefault("Cache-Control", "no-store")
    return response
