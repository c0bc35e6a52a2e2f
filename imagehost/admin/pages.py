"""The admin pages (`/admin`): figures, invitation links and the audit trail on the
overview, the users list (search, pages) and one page per user with its actions. They
work without JavaScript: every action is a form (CSRF-checked by `read_form`) that
redirects back (post/redirect/get); a link made for someone (invite, reset) is shown
once on the next page. Anyone who is not an admin gets 404, before any form is read."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from ..accounts.identity import require_admin
from ..accounts.store import User
from ..db import utcnow
from ..errors import AppError, Conflict, NotFound, Unprocessable
from ..http.csrf import read_form
from ..typedefs import ENV
from ..web.context import render, url
from ..web.once import keep_once, take_once
from . import service
from .service import actor_of

NEW_LINK = "admin_link"  # session slot: a link just made, shown once by the next page
NOTICE = "admin_notice"  # session slot: what the last action did, or why it was refused
USERS_PAGE = 50
RECENT_AUDIT = 20


async def _flash(request: web.Request, text: str, error: bool = False) -> None:
    await keep_once(request, NOTICE, {"text": text, "error": "1" if error else ""})


async def overview(request: web.Request) -> web.Response:
    require_admin(request)
    env = request.app[ENV]
    entries, nxt = await service.audit_trail(env, request.query.get("audit_cursor"), RECENT_AUDIT)
    now = utcnow()
    context: dict[str, Any] = {
        "figures": await service.figures(env),
        "invites": [i.to_json(now) for i in await service.invites(env)],
        "audit": [e.to_json() for e in entries],
        "audit_next": nxt.encode() if nxt else None,
        "registration_mode": env.settings.registration,
        "new_link": await take_once(request, NEW_LINK),
        "notice": await take_once(request, NOTICE),
    }
    return await render(request, "admin.html", context)


async def users(request: web.Request) -> web.Response:
    require_admin(request)
    env = request.app[ENV]
    search = request.query.get("q", "")
    try:
        rows, nxt = await service.users(env, search, request.query.get("cursor"), USERS_PAGE)
    except AppError as exc:
        if exc.status >= 500:
            raise
        return await render(
            request, "admin_users.html", {"users": [], "q": "", "next_cursor": None, "error": exc.message}, exc.status
        )
    default = env.settings.default_quota_bytes
    return await render(
        request,
        "admin_users.html",
        {
            "users": [r.to_json(default) for r in rows],
            "q": search,
            "next_cursor": nxt.encode() if nxt else None,
            "error": None,
            "notice": await take_once(request, NOTICE),
        },
    )


async def user(request: web.Request) -> web.Response:
    admin = require_admin(request)
    env = request.app[ENV]
    row = await service.user(env, request.match_info["user_id"])
    context = {
        "target": row.to_json(env.settings.default_quota_bytes),
        "quota_mb": "" if row.quota_bytes is None else f"{row.quota_bytes / (1024 * 1024):g}",
        "default_quota": env.settings.default_quota_bytes,
        "is_self": row.id == admin.id,
        "new_link": await take_once(request, NEW_LINK),
        "notice": await take_once(request, NOTICE),
    }
    return await render(request, "admin_user.html", context)


async def _act(request: web.Request) -> tuple[User, MultiDictProxy[Any], web.HTTPSeeOther]:
    """The common start of a user action: admin (else 404), the form (CSRF), and where to
    go back to."""
    admin = require_admin(request)
    form = await read_form(request)
    user_id = request.match_info["user_id"]
    back = web.HTTPSeeOther(url(request, "admin_user", user_id=user_id))
    return admin, form, back


async def user_role(request: web.Request) -> web.Response:
    admin, form, back = await _act(request)
    try:
        row = await service.set_role(request.app[ENV], actor_of(admin), request.match_info["user_id"], form.get("role"))
        await _flash(request, f"{row.username} is now {'an admin' if row.role == 'admin' else 'a user'}.")
    except (Unprocessable, Conflict) as exc:
        await _flash(request, exc.message, error=True)
        raise back from None
    if row.id == admin.id and row.role != "admin":  # the admin pages are gone for them now
        raise web.HTTPSeeOther(url(request, "gallery"))
    raise back


async def user_status(request: web.Request) -> web.Response:
    admin, form, back = await _act(request)
    action = form.get("action")
    if action not in ("disable", "enable"):
        await _flash(request, "Choose disable or enable.", error=True)
        raise back
    try:
        row = await service.set_disabled(
            request.app[ENV], actor_of(admin), request.match_info["user_id"], action == "disable"
        )
        await _flash(request, f"{row.username} is {'disabled' if row.disabled_at else 'enabled'}.")
    except Conflict as exc:
        await _flash(request, exc.message, error=True)
        raise back from None
    if row.id == admin.id and row.disabled_at is not None:  # signed out at the next request
        raise web.HTTPSeeOther(url(request, "home"))
    raise back


async def user_quota(request: web.Request) -> web.Response:
    admin, form, back = await _act(request)
    try:
        quota = service.quota_from_megabytes(form.get("quota"))
        await service.set_quota(request.app[ENV], actor_of(admin), request.match_info["user_id"], quota)
        await _flash(request, "Quota saved.")
    except Unprocessable as exc:
        await _flash(request, exc.message, error=True)
    raise back


async def user_reset_link(request: web.Request) -> web.Response:
    admin, _form, back = await _act(request)
    link = await service.issue_reset_link(request.app[ENV], actor_of(admin), request.match_info["user_id"])
    await keep_once(request, NEW_LINK, {"kind": "reset", "url": link.url, "expires_at": link.to_json()["expires_at"]})
    raise back


async def user_totp_off(request: web.Request) -> web.Response:
    admin, _form, back = await _act(request)
    try:
        row = await service.disable_totp(request.app[ENV], actor_of(admin), request.match_info["user_id"])
        await _flash(request, f"Two-factor sign-in is off for {row.username}: their password alone signs them in.")
    except Conflict as exc:
        await _flash(request, exc.message, error=True)
    raise back


async def user_delete(request: web.Request) -> web.Response:
    admin, form, back = await _act(request)
    user_id = request.match_info["user_id"]
    env = request.app[ENV]
    row = await service.user(env, user_id)
    if form.get("confirm") != row.username:
        await _flash(request, "Type the username to confirm the deletion.", error=True)
        raise back
    try:
        await service.delete_user(env, actor_of(admin), user_id)
    except Conflict as exc:
        await _flash(request, exc.message, error=True)
        raise back from None
    await _flash(request, f"{row.username} and everything they stored were deleted.")
    if user_id == admin.id:  # they deleted themselves: signed out now
        raise web.HTTPSeeOther(url(request, "home"))
    raise web.HTTPSeeOther(url(request, "admin_users"))


async def invite_create(request: web.Request) -> web.Response:
    admin = require_admin(request)
    form = await read_form(request)
    try:
        invite, link = await service.create_invite(
            request.app[ENV], actor_of(admin), form.get("expires_in"), form.get("max_uses")
        )
    except Unprocessable as exc:
        await _flash(request, exc.message, error=True)
    else:
        await keep_once(
            request, NEW_LINK, {"kind": "invite", "url": link, "expires_at": invite.to_json(utcnow())["expires_at"]}
        )
    raise web.HTTPSeeOther(url(request, "admin"))


async def invite_revoke(request: web.Request) -> web.Response:
    admin = require_admin(request)
    await read_form(request)
    try:
        await service.revoke_invite(request.app[ENV], actor_of(admin), request.match_info["invite_id"])
        await _flash(request, "Invitation revoked.")
    except NotFound as exc:
        await _flash(request, exc.message, error=True)
    raise web.HTTPSeeOther(url(request, "admin"))
