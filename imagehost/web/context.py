"""Rendering a page: every template sees the caller, the CSRF token and `static_url`."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web

from ..accounts.identity import csrf_token, current_user
from ..typedefs import ASSETS


async def page_context(request: web.Request) -> dict[str, Any]:
    return {
        "user": current_user(request),
        "csrf_token": await csrf_token(request),
        "static_url": request.app[ASSETS].url,
        "site_name": "imagehost",
    }


async def render(
    request: web.Request, template: str, context: dict[str, Any] | None = None, status: int = 200
) -> web.Response:
    ctx = await page_context(request)
    ctx.update(context or {})
    response = aiohttp_jinja2.render_template(template, request, ctx, status=status)
    response.headers.setdefault("Cache-Control", "no-store")
    return response
