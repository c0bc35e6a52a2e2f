"""Sharing pages: the public share page of an image (`/v/<id>`, with the meta tags link
previews read) and the embed settings page (`/account/sharing`, a plain form)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..accounts.identity import require_user
from ..errors import AppError
from ..http.csrf import read_form
from ..typedefs import ENV
from ..web.context import render, url
from ..web.once import keep_once, take_once
from . import service

SAVED = "sharing_saved"  # session slot: the settings were just saved (post/redirect/get)


async def share_page(request: web.Request) -> web.Response:
    """Anyone with the link; an unknown, deleted or expired image is 404."""
    e = await service.shared_image(request.app[ENV], request.match_info["id"])
    resp = await render(request, "share.html", {"share": e, "link_image": e.link_image()})
    resp.headers["X-Robots-Tag"] = "noindex"  # unlisted: previews yes, search engines no
    return resp


async def _settings_page(
    request: web.Request, form: dict[str, Any] | None = None, error: dict[str, str] | None = None, status: int = 200
) -> web.Response:
    user = require_user(request)
    env = request.app[ENV]
    prefs = await service.preferences(env, user.id)
    values = form if form is not None else {k: v if v is not None else "" for k, v in prefs.to_json().items()}
    saved = await take_once(request, SAVED) if form is None else None
    return await render(
        request,
        "account_sharing.html",
        {
            "values": values,
            "error": error,
            "saved": bool(saved),
            "variables": service.VARIABLES,
            "default_title": service.DEFAULT_TITLE,
            "default_site_name": service.SITE_NAME,
            "default_color": service.DEFAULT_COLOR,
            "expiry_choices": service.expiry_choices(env, prefs.default_expiry_seconds),
            "limits": {
                "title": service.TITLE_MAX,
                "description": service.DESCRIPTION_MAX,
                "site": service.SITE_NAME_MAX,
            },
        },
        status,
    )


async def sharing_get(request: web.Request) -> web.Response:
    return await _settings_page(request)


async def sharing_post(request: web.Request) -> web.Response:
    """Save every field of the form (an empty one goes back to the default), then
    redirect; an invalid field shows the form again with what was typed (422)."""
    form = await read_form(request)
    user = require_user(request)
    fields = {name: form.get(name, "") for name in service.PREFERENCE_FIELDS}
    values: dict[str, Any] = {k: v if isinstance(v, str) else "" for k, v in fields.items()}
    body: dict[str, Any] = dict(values)
    raw_expiry = values["default_expiry_seconds"].strip()
    if raw_expiry and not raw_expiry.isdigit():
        return await _settings_page(
            request, values, {"field": "default_expiry_seconds", "message": "Pick one of the choices."}, 422
        )
    body["default_expiry_seconds"] = int(raw_expiry) if raw_expiry else None
    try:
        await service.update_preferences(request.app[ENV], user.id, body)
    except AppError as exc:
        field = exc.detail.get("field", "") if isinstance(exc.detail, dict) else ""
        return await _settings_page(request, values, {"field": field, "message": exc.message}, 422)
    await keep_once(request, SAVED, {"saved": "1"})
    raise web.HTTPSeeOther(url(request, "account_sharing"))
