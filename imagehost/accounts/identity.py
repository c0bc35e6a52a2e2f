"""Who is calling: a session cookie, a JWT or an API key (`Authorization: Bearer …`).

The middleware only identifies; handlers authorise with `require_user`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal
from urllib.parse import quote

from aiohttp import web
from aiohttp_session import get_session, new_session

from ..db import new_id, utcnow
from ..errors import Forbidden, NotFound, Unauthorized
from ..typedefs import ENV, IDENTITY, Handler
from . import service, tokens
from .store import User, looks_like_key

Method = Literal["session", "jwt", "apikey"]
SESSION_COOKIE = "imagehost_session"
SESSION_MAX_AGE = 30 * 24 * 3600  # the cookie's own max_age is set in app._session_storage
# Paths that never need to know the caller: no session load, no database hit.
_ANONYMOUS_PREFIXES = ("/static/", "/i/", "/api/health", "/api/uploads/")


@dataclass(frozen=True)
class Identity:
    user: User
    method: Method
    key_id: str | None = None


async def identify(request: web.Request) -> Identity | None:
    env = request.app[ENV]
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, credential = header.partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise Unauthorized("malformed Authorization header: use 'Bearer <key or token>'")
        if looks_like_key(credential):
            found = await service.user_for_key(env, credential)
            if found is None:
                raise Unauthorized("invalid or revoked API key")
            _refuse_disabled(found[0])
            return Identity(found[0], "apikey", found[1])
        claims = tokens.decode_access_token(env.settings.secret_key, credential)
        if claims is None:
            raise Unauthorized("invalid or expired token")
        user = await service.user_by_id(env, claims[0])
        if user is None or user.auth_version != claims[1]:  # gone, or the password changed since
            raise Unauthorized("invalid or expired token")
        _refuse_disabled(user)
        return Identity(user, "jwt")
    if SESSION_COOKIE not in request.cookies:
        return None
    session = await get_session(request)
    user_id, sid = session.get("uid"), session.get("sid")
    if not user_id:
        return None
    version = session.get("ver", 1)  # a session from before versions existed: version 1
    user = None
    if isinstance(user_id, str) and isinstance(sid, str):
        user = await service.session_user(env, user_id, sid)
    if user is None or user.auth_version != version:
        # The user is gone, this session was logged out, or the password changed since.
        session.invalidate()
        return None
    if user.disabled:
        session.invalidate()
        if request.path.startswith("/api/"):
            _refuse_disabled(user)
        return None  # a page: signed out, and the login form says why if they try again
    return Identity(user, "session")


def _refuse_disabled(user: User) -> None:
    if user.disabled:
        raise Unauthorized("this account is disabled", code="account_disabled")


@web.middleware
async def identity_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request[IDENTITY] = None
    if not request.path.startswith(_ANONYMOUS_PREFIXES):
        request[IDENTITY] = await identify(request)
    return await handler(request)


def require_user(request: web.Request) -> User:
    """The caller, or 401 for the API and a redirect to the login page for HTML."""
    identity: Identity | None = request.get(IDENTITY)
    if identity is not None:
        return identity.user
    if request.path.startswith("/api/"):
        raise Unauthorized(code="authentication_required")
    login = str(request.app.router["login"].url_for())
    if request.method not in ("GET", "HEAD"):  # coming back to a POST-only URL would only 405
        raise web.HTTPSeeOther(login)
    raise web.HTTPSeeOther(f"{login}?next={quote(request.path_qs, safe='/')}")


def require_admin(request: web.Request) -> User:
    """An admin signed in with a session or a JWT. Anyone else — anonymous, a user, a
    bad credential — gets 404, pages and API alike: the admin routes do not exist for
    them. An admin's API key gets 403 `api_key_not_allowed` (a leaked screenshot-tool key
    must not be able to run the instance)."""
    identity: Identity | None = request.get(IDENTITY)
    if identity is None or not identity.user.is_admin:
        raise NotFound()
    if identity.method == "apikey":
        raise Forbidden("admin actions need a login (session or token), not an API key", code="api_key_not_allowed")
    return identity.user


def current_user(request: web.Request) -> User | None:
    identity = request.get(IDENTITY)
    return identity.user if identity else None


async def csrf_token(request: web.Request) -> str:
    """The session's CSRF token, created on first use."""
    session = await get_session(request)
    token = session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


async def log_in(request: web.Request, user: User) -> None:
    """A fresh session for this user: a new cookie, a new session id and a new CSRF token.
    Nothing from the anonymous session carries over."""
    session = await new_session(request)
    session["uid"] = user.id
    session["sid"] = new_id(16)
    session["ver"] = user.auth_version
    session["csrf"] = secrets.token_urlsafe(32)


async def log_out(request: web.Request) -> None:
    """Clear the cookie, and revoke this session id so a copy of the cookie is dead too."""
    session = await get_session(request)
    sid = session.get("sid")
    if isinstance(sid, str) and sid:
        lifetime = timedelta(seconds=session.max_age or SESSION_MAX_AGE)
        await service.end_session(request.app[ENV], sid, utcnow() + lifetime)
    session.invalidate()
