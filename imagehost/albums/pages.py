"""The album page `/a/<id>`: a grid of the album's images with link previews (OpenGraph
and Twitter meta, the cover's display size as the image) for unlisted and public albums;
a private album is 404 to anyone but its owner. An album with a password shows a form
first (throttled as sign-in is); a right answer is remembered in the visitor's session
for that album until its password changes."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp_session import get_session

from ..accounts.identity import current_user, require_user
from ..http.csrf import read_form
from ..images import service as images_service
from ..typedefs import CLIENT_ADDR, ENV
from ..web.context import render, url
from . import service

PAGE_SIZE = 60
_SESSION_KEY = "albums_unlocked"
_REMEMBERED = 20  # albums a session remembers the password of


async def _unlocked(request: web.Request, shown: service.Shown) -> bool:
    album = shown.view.album
    if album.password_hash is None or shown.is_owner:
        return True
    session = await get_session(request)
    marks = session.get(_SESSION_KEY)
    return isinstance(marks, dict) and marks.get(album.id) == service.unlock_mark(album)


async def _remember(request: web.Request, shown: service.Shown) -> None:
    album = shown.view.album
    session = await get_session(request)
    marks = session.get(_SESSION_KEY)
    marks = dict(marks) if isinstance(marks, dict) else {}
    marks.pop(album.id, None)
    marks[album.id] = service.unlock_mark(album)
    session[_SESSION_KEY] = dict(list(marks.items())[-_REMEMBERED:])


def _meta(request: web.Request, shown: service.Shown) -> dict[str, Any]:
    env = request.app[ENV]
    meta: dict[str, Any] = {"url": env.url("album_page", id=shown.view.album.id), "image": None}
    display = service.display_of(shown.view)
    if display is not None:
        key, width, height, ctype = display
        meta["image"] = {"url": env.storage.public_url(key), "width": width, "height": height, "type": ctype}
    return meta


async def album_page(request: web.Request) -> web.Response:
    """GET /a/{id}: the album, or its password form."""
    env = request.app[ENV]
    viewer = current_user(request)
    shown = await service.for_page(env, request.match_info["id"], viewer.id if viewer else None)
    if not await _unlocked(request, shown):
        return await _locked(request, shown, wrong=False)
    return await _show(request, shown)


async def album_unlock(request: web.Request) -> web.Response:
    """POST /a/{id}: the password form's answer."""
    env = request.app[ENV]
    viewer = current_user(request)
    shown = await service.for_page(env, request.match_info["id"], viewer.id if viewer else None)
    form = await read_form(request)
    if await _unlocked(request, shown):
        raise web.HTTPSeeOther(url(request, "album_page", id=shown.view.album.id))
    addr = request.get(CLIENT_ADDR) or request.remote or ""
    if not await service.check_password(env, shown.view.album, form.get("password"), addr):
        return await _locked(request, shown, wrong=True)
    await _remember(request, shown)
    raise web.HTTPSeeOther(url(request, "album_page", id=shown.view.album.id))


async def _locked(request: web.Request, shown: service.Shown, *, wrong: bool) -> web.Response:
    """The password form: the title only, no images and no preview image."""
    ctx = {"album": shown.view.album, "owner_name": shown.owner.username, "wrong": wrong, "locked": True}
    resp = await render(request, "album.html", ctx, 403 if wrong else 200)
    resp.headers["X-Robots-Tag"] = "noindex"
    return resp


async def _show(request: web.Request, shown: service.Shown) -> web.Response:
    env = request.app[ENV]
    album = shown.view.album
    rows, nxt, _total = await images_service.listing(
        env, album.owner_id, request.query.get("cursor"), PAGE_SIZE, album_id=album.id
    )
    ctx = {
        "album": album,
        "album_json": service.album_json(env, shown.view),
        "owner_name": shown.owner.username,
        "is_owner": shown.is_owner,
        "images": [images_service.image_json(env, r) for r in rows],
        "next_cursor": nxt.encode() if nxt else None,
        "meta": _meta(request, shown),
        "locked": False,
    }
    resp = await render(request, "album.html", ctx)
    if album.visibility != "public":
        resp.headers["X-Robots-Tag"] = "noindex"
    return resp


# --------------------------------------------------------------------------- the owner's pages


async def albums_list(request: web.Request) -> web.Response:
    """GET /albums: the caller's albums, newest first, each with a link to its page."""
    user = require_user(request)
    env = request.app[ENV]
    views, nxt, total = await service.listing(env, user.id, request.query.get("cursor"), PAGE_SIZE)
    ctx = {
        "albums": [service.album_json(env, v) for v in views],
        "total": total,
        "next_cursor": nxt.encode() if nxt else None,
    }
    return await render(request, "albums.html", ctx)


async def album_settings(request: web.Request) -> web.Response:
    """POST /a/{id}/settings: the owner's form on the album page (title, description,
    visibility, password). Anyone else: 404, nothing changed."""
    user = require_user(request)
    form = await read_form(request)
    data: dict[str, Any] = {k: form.get(k) for k in ("title", "description", "visibility") if k in form}
    password = form.get("password")
    if form.get("remove_password"):
        data["password"] = None
    elif isinstance(password, str) and password:
        data["password"] = password
    album_id = request.match_info["id"]
    await service.update(request.app[ENV], user.id, album_id, data)
    raise web.HTTPSeeOther(url(request, "album_page", id=album_id))


async def album_delete(request: web.Request) -> web.Response:
    """POST /a/{id}/delete: the owner deletes the album (its images stay)."""
    user = require_user(request)
    await read_form(request)
    await service.delete(request.app[ENV], user.id, request.match_info["id"])
    raise web.HTTPSeeOther(url(request, "albums"))
