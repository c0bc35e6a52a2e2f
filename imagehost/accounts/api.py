"""The JSON accounts API: register, log in (a JWT), who am I, and API keys.

Errors use the envelope `{"error", "code", "detail"}`: malformed JSON 400
`malformed_json`, an invalid field 422 `invalid_input` and a taken one 409
`field_taken` (both name the field in `detail.field`), no or bad credential 401 with
`WWW-Authenticate: Bearer`, throttled login 429 `rate_limited` with `Retry-After`. With
registration closed (`REGISTRATION_MODE=closed`) `POST /api/auth/register` answers 403
`registration_closed`: the route exists, it is refused — a client can tell a closed
server from an old one. By invitation (`REGISTRATION_MODE=invite`, the default once the
first account exists) the body carries `invite`, the token of the link: 403
`invite_required` without one, `invite_invalid` (with `detail.reason`) for a bad one.
"""

from __future__ import annotations

from aiohttp import web

from ..errors import Forbidden
from ..http.bodies import read_json
from ..typedefs import CLIENT_ADDR, ENV, IDENTITY
from . import service, tokens
from .identity import require_user


async def register(request: web.Request) -> web.Response:
    env = request.app[ENV]
    mode = await service.registration_mode(env)
    if mode == service.CLOSED:
        raise Forbidden("registration is closed", code="registration_closed")
    body = await read_json(request)
    # The configured mode, not `mode`: whether this is the first account is decided again
    # inside the registration's transaction (someone may have been first meanwhile).
    user = await service.register_user(
        env,
        body.get("username"),
        body.get("email"),
        body.get("password"),
        mode=env.settings.registration,
        invite=body.get("invite"),
    )
    return web.json_response(user.to_json(), status=201)


async def login(request: web.Request) -> web.Response:
    env = request.app[ENV]
    settings = env.settings
    body = await read_json(request)
    user = await service.authenticate(
        env, body.get("username"), body.get("password"), request[CLIENT_ADDR], body.get("otp")
    )
    token = tokens.issue_access_token(settings.secret_key, user.id, settings.jwt_expiration_minutes, user.auth_version)
    return web.json_response(
        {"access_token": token, "token_type": "bearer", "expires_in": settings.jwt_expiration_minutes * 60},
        headers={"Cache-Control": "no-store"},
    )


async def me(request: web.Request) -> web.Response:
    return web.json_response(require_user(request).to_json())


async def list_keys(request: web.Request) -> web.Response:
    user = require_user(request)
    keys = await service.list_api_keys(request.app[ENV], user.id)
    return web.json_response({"keys": [k.to_json() for k in keys]})


async def create_key(request: web.Request) -> web.Response:
    user = require_user(request)
    identity = request[IDENTITY]
    if identity is not None and identity.method == "apikey":
        # A leaked key must not be able to mint a successor that outlives its revocation.
        raise Forbidden(
            "an API key cannot create API keys: log in, or use a token from /api/auth/login",
            code="api_key_not_allowed",
        )
    body = await read_json(request)
    name = service.clean_key_name(body.get("name"))
    key, secret = await service.create_api_key(request.app[ENV], user.id, name)
    return web.json_response({**key.to_json(), "secret": secret}, status=201, headers={"Cache-Control": "no-store"})


async def delete_key(request: web.Request) -> web.Response:
    user = require_user(request)
    await service.revoke_api_key(request.app[ENV], user.id, request.match_info["key_id"])
    return web.Response(status=204)
