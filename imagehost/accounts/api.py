"""The JSON accounts API: register, log in (a JWT), who am I, and API keys.

Errors use the envelope `{"error", "detail"}`: malformed JSON 400, an invalid field 422 and
a taken one 409 (both name the field in `detail.field`), no or bad credential 401 with
`WWW-Authenticate: Bearer`, throttled login 429 with `Retry-After`. With registration closed
(`REGISTRATION_OPEN=false`) `POST /api/auth/register` answers 403 `registration is closed`:
the route exists, it is refused — a client can tell a closed server from an old one.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..db import transaction
from ..errors import BadRequest, Conflict, Forbidden, NotFound, Unprocessable
from ..typedefs import CLIENT_ADDR, ENGINE, IDENTITY, SETTINGS
from . import apikeys, service, tokens
from .identity import require_user


async def read_json(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object, or 400. The Content-Type is not insisted on (`curl -d`
    sends JSON labelled as a form); the body is capped by the app's `client_max_size`."""
    try:
        data = await request.json()
    except ValueError:  # JSONDecodeError, or bytes that are not UTF-8
        raise BadRequest("malformed JSON", {"hint": "send a JSON object"}) from None
    if not isinstance(data, dict):
        raise BadRequest("malformed JSON", {"hint": "send a JSON object"})
    return data


def field_error(exc: service.FieldError) -> Unprocessable | Conflict:
    detail: dict[str, Any] = {"field": exc.field, "message": exc.message}
    if isinstance(exc, service.RegistrationError) and len(exc.errors) > 1:
        detail["errors"] = exc.errors
    cls = Conflict if exc.status == 409 else Unprocessable
    return cls(f"{exc.field}: {exc.message}", detail)


async def register(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    if not settings.registration_open:
        raise Forbidden("registration is closed")
    body = await read_json(request)
    try:
        user = await service.register_user(
            request.app[ENGINE], settings, body.get("username"), body.get("email"), body.get("password")
        )
    except service.FieldError as exc:
        raise field_error(exc) from None
    return web.json_response(user.to_json(), status=201)


async def login(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    body = await read_json(request)
    try:
        user = await service.authenticate(
            request.app[ENGINE], settings, body.get("username"), body.get("password"), request[CLIENT_ADDR]
        )
    except service.FieldError as exc:
        raise field_error(exc) from None
    token = tokens.issue_access_token(settings.secret_key, user.id, settings.jwt_expiration_minutes)
    return web.json_response(
        {"access_token": token, "token_type": "bearer", "expires_in": settings.jwt_expiration_minutes * 60},
        headers={"Cache-Control": "no-store"},
    )


async def me(request: web.Request) -> web.Response:
    return web.json_response(require_user(request).to_json())


async def list_keys(request: web.Request) -> web.Response:
    user = require_user(request)
    async with request.app[ENGINE].connect() as conn:
        keys = await apikeys.list_keys(conn, user.id)
    return web.json_response({"keys": [k.to_json() for k in keys]})


async def create_key(request: web.Request) -> web.Response:
    user = require_user(request)
    identity = request[IDENTITY]
    if identity is not None and identity.method == "apikey":
        # A leaked key must not be able to mint a successor that outlives its revocation.
        raise Forbidden("an API key cannot create API keys: log in, or use a token from /api/auth/login")
    body = await read_json(request)
    try:
        name = service.clean_key_name(body.get("name"))
    except service.FieldError as exc:
        raise field_error(exc) from None
    async with transaction(request.app[ENGINE]) as conn:
        key, secret = await apikeys.create_key(conn, user.id, name)
    return web.json_response({**key.to_json(), "secret": secret}, status=201, headers={"Cache-Control": "no-store"})


async def delete_key(request: web.Request) -> web.Response:
    user = require_user(request)
    async with transaction(request.app[ENGINE]) as conn:
        revoked = await apikeys.revoke_key(conn, user.id, request.match_info["key_id"])
    if not revoked:  # unknown, already revoked, or someone else's: all the same 404
        raise NotFound("no such API key")
    return web.Response(status=204)


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/api/auth/register", register)
    app.router.add_post("/api/auth/login", login)
    app.router.add_get("/api/auth/me", me)
    app.router.add_get("/api/keys", list_keys)
    app.router.add_post("/api/keys", create_key)
    app.router.add_delete("/api/keys/{key_id}", delete_key)
