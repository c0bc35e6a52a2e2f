"""The admin JSON API (`/api/admin/...`). Every handler starts with `require_admin`: 404
for anyone who is not an admin, anonymous included."""

from __future__ import annotations

from aiohttp import web

from ..accounts.identity import require_admin
from ..db import utcnow
from ..errors import Unprocessable
from ..http.bodies import read_json
from ..images.service import page_limit
from ..typedefs import ENV
from . import service
from .service import actor_of

NO_STORE = {"Cache-Control": "no-store"}


def _user_id(request: web.Request) -> str:
    return request.match_info["user_id"]


async def stats(request: web.Request) -> web.Response:
    require_admin(request)
    return web.json_response(await service.figures(request.app[ENV]))


async def list_users(request: web.Request) -> web.Response:
    require_admin(request)
    env = request.app[ENV]
    rows, nxt = await service.users(
        env, request.query.get("q"), request.query.get("cursor"), page_limit(request.query.get("limit"))
    )
    default = env.settings.default_quota_bytes
    return web.json_response(
        {"users": [r.to_json(default) for r in rows], "next_cursor": nxt.encode() if nxt else None}
    )


async def get_user(request: web.Request) -> web.Response:
    require_admin(request)
    env = request.app[ENV]
    row = await service.user(env, _user_id(request))
    return web.json_response(row.to_json(env.settings.default_quota_bytes))


async def update_user(request: web.Request) -> web.Response:
    """Change any of `role`, `disabled`, `quota_bytes` (null: the instance default).
    Checked first, then applied in that order, each change its own audit entry; the
    one refusal (`last_admin`) comes before any change of that request."""
    admin = require_admin(request)
    env = request.app[ENV]
    body = await read_json(request)
    unknown = set(body) - {"role", "disabled", "quota_bytes"}
    if unknown or not body:
        raise Unprocessable("give role, disabled or quota_bytes", {"field": sorted(unknown)[0] if unknown else None})
    role = service.clean_role(body["role"]) if "role" in body else None
    disabled = body.get("disabled")
    if "disabled" in body and not isinstance(disabled, bool):
        raise Unprocessable("disabled: true or false", {"field": "disabled"})
    quota = service.clean_quota(body["quota_bytes"]) if "quota_bytes" in body else None
    user_id, actor = _user_id(request), actor_of(admin)
    row = await service.user(env, user_id)
    if role is not None:
        row = await service.set_role(env, actor, user_id, role)
    if isinstance(disabled, bool):
        row = await service.set_disabled(env, actor, user_id, disabled)
    if "quota_bytes" in body:
        row = await service.set_quota(env, actor, user_id, quota)
    return web.json_response(row.to_json(env.settings.default_quota_bytes))


async def delete_user(request: web.Request) -> web.Response:
    admin = require_admin(request)
    await service.delete_user(request.app[ENV], actor_of(admin), _user_id(request))
    return web.Response(status=204)


async def reset_link(request: web.Request) -> web.Response:
    admin = require_admin(request)
    link = await service.issue_reset_link(request.app[ENV], actor_of(admin), _user_id(request))
    return web.json_response(link.to_json(), status=201, headers=NO_STORE)


async def disable_totp(request: web.Request) -> web.Response:
    """Turn the user's two-factor sign-in off (409 when it is not on)."""
    admin = require_admin(request)
    env = request.app[ENV]
    row = await service.disable_totp(env, actor_of(admin), _user_id(request))
    return web.json_response(row.to_json(env.settings.default_quota_bytes))


async def list_invites(request: web.Request) -> web.Response:
    require_admin(request)
    now = utcnow()
    return web.json_response({"invites": [i.to_json(now) for i in await service.invites(request.app[ENV])]})


async def create_invite(request: web.Request) -> web.Response:
    admin = require_admin(request)
    body = await read_json(request)
    invite, url = await service.create_invite(
        request.app[ENV], actor_of(admin), body.get("expires_in"), body.get("max_uses")
    )
    return web.json_response({**invite.to_json(utcnow()), "url": url}, status=201, headers=NO_STORE)


async def revoke_invite(request: web.Request) -> web.Response:
    admin = require_admin(request)
    await service.revoke_invite(request.app[ENV], actor_of(admin), request.match_info["invite_id"])
    return web.Response(status=204)


async def audit(request: web.Request) -> web.Response:
    require_admin(request)
    entries, nxt = await service.audit_trail(
        request.app[ENV], request.query.get("cursor"), page_limit(request.query.get("limit"))
    )
    return web.json_response({"entries": [e.to_json() for e in entries], "next_cursor": nxt.encode() if nxt else None})
