"""Account pages: log in (also the landing page, with its second step for a TOTP code at
`/login/otp`), register, log out, API keys.

They work without JavaScript. Every form is read with `read_form`, which checks its CSRF
token. After login the browser goes back only to a local path (`safe_next`).
"""

from __future__ import annotations

import time
import unicodedata
from typing import Any
from urllib.parse import unquote, urlsplit

from aiohttp import web
from aiohttp_session import get_session

from ..errors import Forbidden, NotFound, TooManyRequests, Unauthorized
from ..http.csrf import read_form
from ..typedefs import CLIENT_ADDR, ENV
from ..web.context import render, url
from ..web.once import keep_once, take_once
from . import service
from .identity import current_user, log_in, log_out, require_user
from .store import User

HOME = "gallery"  # where a signed-in person lands
NEXT_MAX = 2000
# Sign-in's second step: after the right password for an account with TOTP, the session
# (an encrypted cookie) keeps the user id, the auth version and an expiry under this slot.
# It grants nothing (the identity middleware reads only `uid`); the code form completes it,
# throttled like a password, and only then is a signed-in session issued.
OTP_PENDING = "otp_pending"
OTP_PENDING_SECONDS = 300


def _is_local_path(value: str) -> bool:
    if not value.startswith("/") or value.startswith("//") or "\\" in value:
        return False
    # Browsers drop tabs and newlines inside URLs ("/\t/evil" becomes "//evil"): no
    # control or invisible formatting character, at any level of decoding.
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in value):
        return False
    parts = urlsplit(value)
    return not parts.scheme and not parts.netloc


def safe_next(value: object) -> str:
    """`value` if it is a path on this site, else "" (the caller then goes home).

    The raw value must be plain printable ASCII; it and every percent-decoding of it must
    be a local path, so `/%2F%2Fevil.example` or `/%5Cevil.example` are refused even
    though a browser would keep them local, in case anything on the way decodes them."""
    if not isinstance(value, str) or not value or len(value) > NEXT_MAX:
        return ""
    if any(not (0x21 <= ord(c) < 0x7F) for c in value):
        return ""
    candidate = value
    for _ in range(4):
        if not _is_local_path(candidate):
            return ""
        decoded = unquote(candidate)
        if decoded == candidate:
            return value
        candidate = decoded
    return ""  # still decoding after four rounds: nobody needs that


def _echo(value: object, limit: int) -> str:
    """A submitted value fit to show back in a form, or ""."""
    if not isinstance(value, str) or len(value) > limit or service.has_unsafe_chars(value):
        return ""
    return value


# --------------------------------------------------------------------------- login


async def _login_page(
    request: web.Request, *, next_path: str = "", error: str | None = None, username: str = "", status: int = 200
) -> web.Response:
    return await render(
        request,
        "login.html",
        {
            "error": error,
            "next": next_path,
            "username": username,
            "registration_open": await service.registration_mode(request.app[ENV]) == service.OPEN,
        },
        status,
    )


async def login_get(request: web.Request) -> web.Response:
    next_path = safe_next(request.query.get("next"))
    if current_user(request) is not None:
        raise web.HTTPSeeOther(next_path or url(request, HOME))
    return await _login_page(request, next_path=next_path)


async def login_post(request: web.Request) -> web.Response:
    form = await read_form(request)
    next_path = safe_next(form.get("next"))
    username = form.get("username")
    shown = _echo(username, service.USERNAME_MAX)
    try:
        user = await service.authenticate(request.app[ENV], username, form.get("password"), request[CLIENT_ADDR])
    except service.FieldError:
        return await _login_page(
            request, next_path=next_path, username=shown, status=422, error="Enter your username and password."
        )
    except service.OtpRequired as exc:  # the right password; the code comes next
        return await _begin_second_step(request, exc.user, next_path)
    except Unauthorized as exc:
        if exc.code == "account_disabled":  # only said to someone who knew the password
            return await _login_page(
                request, next_path=next_path, username=shown, status=403, error="This account is disabled."
            )
        return await _login_page(request, next_path=next_path, username=shown, error="Invalid username or password.")
    except TooManyRequests as exc:
        minutes = max(1, -(-int(exc.headers["Retry-After"]) // 60))
        response = await _login_page(
            request,
            next_path=next_path,
            username=shown,
            status=429,
            error=f"Too many failed attempts. Try again in {minutes} minute{'s' if minutes != 1 else ''}.",
        )
        response.headers["Retry-After"] = exc.headers["Retry-After"]
        return response
    await log_in(request, user)
    raise web.HTTPSeeOther(next_path or url(request, HOME))


# --------------------------------------------------------------------------- sign-in, second step


async def _begin_second_step(request: web.Request, user: User, next_path: str) -> web.Response:
    """After the right password for an account with TOTP: the code form, via a redirect."""
    session = await get_session(request)
    session[OTP_PENDING] = {
        "uid": user.id,
        "ver": user.auth_version,
        "exp": int(time.time()) + OTP_PENDING_SECONDS,
        "next": next_path,
    }
    raise web.HTTPSeeOther(url(request, "login_otp"))


async def _pending(request: web.Request) -> dict[str, Any] | None:
    session = await get_session(request)
    pending = session.get(OTP_PENDING)
    if not isinstance(pending, dict) or not isinstance(pending.get("exp"), int) or pending["exp"] < time.time():
        session.pop(OTP_PENDING, None)
        return None
    return pending


async def _otp_page(request: web.Request, *, error: str | None = None, status: int = 200) -> web.Response:
    return await render(request, "login_otp.html", {"error": error}, status)


async def login_otp_get(request: web.Request) -> web.Response:
    if await _pending(request) is None:
        raise web.HTTPSeeOther(url(request, "login"))
    return await _otp_page(request)


async def login_otp_post(request: web.Request) -> web.Response:
    form = await read_form(request)
    pending = await _pending(request)
    uid = pending.get("uid") if pending else None
    user = await service.user_by_id(request.app[ENV], uid) if isinstance(uid, str) else None
    if pending is None or user is None or user.auth_version != pending.get("ver") or not user.totp_enabled:
        # Expired, or the account changed since the password was checked: start again.
        (await get_session(request)).pop(OTP_PENDING, None)
        raise web.HTTPSeeOther(url(request, "login"))
    if user.disabled:
        return await _otp_page(request, error="This account is disabled.", status=403)
    try:
        await service.finish_second_factor(
            request.app[ENV], user, form.get("code"), request[CLIENT_ADDR], check_throttle=True
        )
    except Unauthorized:
        return await _otp_page(request, error="That code is wrong, too old or already used.", status=401)
    except TooManyRequests as exc:
        wait = exc.headers["Retry-After"]
        minutes = max(1, -(-int(wait) // 60))
        response = await _otp_page(
            request,
            error=f"Too many failed attempts. Try again in {minutes} minute{'s' if minutes != 1 else ''}.",
            status=429,
        )
        response.headers["Retry-After"] = wait
        return response
    next_path = safe_next(pending.get("next"))
    await log_in(request, user)  # a new session: the pending state goes with the old one
    raise web.HTTPSeeOther(next_path or url(request, HOME))


async def logout(request: web.Request) -> web.Response:
    await read_form(request)
    await log_out(request)
    raise web.HTTPSeeOther(url(request, "home"))


# --------------------------------------------------------------------------- register


async def _register_page(
    request: web.Request,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
    invite: str = "",
    refusal: str | None = None,
) -> web.Response:
    return await render(
        request,
        "register.html",
        {
            "errors": errors or {},
            "values": values or {},
            "registration_open": refusal is None,
            "refusal": refusal,
            "invite": invite,
        },
        status,
    )


def _invite_param(value: object) -> str:
    return value if isinstance(value, str) and 0 < len(value) <= 100 else ""


async def _refusal(request: web.Request, invite: str) -> tuple[str, str | None, int]:
    """The registration mode now, and why this visitor may not register (None: they
    may) with the page's status."""
    env = request.app[ENV]
    mode = await service.registration_mode(env)
    if mode == service.CLOSED:
        return mode, "Registration is closed.", 403
    if mode == service.INVITE:
        reason = await service.check_invite(env, invite)
        if reason:
            return mode, service.InviteRefused(reason).message.capitalize() + ".", 403
    return mode, None, 200


async def register_get(request: web.Request) -> web.Response:
    if current_user(request) is not None:
        raise web.HTTPSeeOther(url(request, HOME))
    invite = _invite_param(request.query.get("invite"))
    _mode, refusal, status = await _refusal(request, invite)
    return await _register_page(request, status=status, invite=invite, refusal=refusal)


async def register_post(request: web.Request) -> web.Response:
    form = await read_form(request)
    env = request.app[ENV]
    invite = _invite_param(form.get("invite"))
    _mode, refusal, status = await _refusal(request, invite)
    if refusal is not None:
        return await _register_page(request, status=status, invite=invite, refusal=refusal)
    values = {
        "username": _echo(form.get("username"), service.USERNAME_MAX),
        "email": _echo(form.get("email"), service.EMAIL_MAX),
    }
    try:
        user = await service.register_user(
            env,
            form.get("username"),
            form.get("email"),
            form.get("password"),
            mode=env.settings.registration,  # the first account is decided in the transaction
            invite=invite,
        )
    except service.RegistrationError as exc:
        return await _register_page(request, errors=exc.errors, values=values, status=exc.status, invite=invite)
    except (service.InviteRefused, Forbidden) as exc:  # the last use went to someone else meanwhile
        return await _register_page(request, status=403, invite=invite, refusal=exc.message.capitalize() + ".")
    await log_in(request, user)
    raise web.HTTPSeeOther(url(request, HOME))


# --------------------------------------------------------------------------- password reset


async def _reset_page(
    request: web.Request, token: str, *, error: str | None = None, done: bool = False, status: int = 200
) -> web.Response:
    env = request.app[ENV]
    target = None if done else await service.reset_link_user(env, token)
    if target is None and not done:
        status = 404
    context = {"target": target, "token": token, "error": error, "done": done}
    response = await render(request, "reset.html", context, status)
    # The token is in the URL: no referrer to any other site (not even the origin), and
    # not "no-referrer", which would make the form's POST send `Origin: null` (CSRF refuses it).
    response.headers["Referrer-Policy"] = "same-origin"
    return response


async def reset_get(request: web.Request) -> web.Response:
    return await _reset_page(request, request.match_info["token"])


async def reset_post(request: web.Request) -> web.Response:
    form = await read_form(request)
    token = request.match_info["token"]
    password, again = form.get("password"), form.get("password_again")
    if password != again:
        return await _reset_page(request, token, error="The two passwords differ.", status=422)
    try:
        await service.reset_password(request.app[ENV], token, password)
    except service.FieldError as exc:
        return await _reset_page(request, token, error=f"Password: {exc.reason}.", status=422)
    except NotFound:
        return await _reset_page(request, token)  # used or expired meanwhile: the page says so
    if current_user(request) is not None:  # whoever was signed in here, they are not now
        await log_out(request)
    return await _reset_page(request, token, done=True)


# --------------------------------------------------------------------------- API keys


NEW_KEY = "new_key"  # session slot: a key just created, shown by the next GET of the keys page


async def _keys_page(
    request: web.Request, *, new_key: dict[str, str] | None = None, error: str | None = None, status: int = 200
) -> web.Response:
    user = require_user(request)
    keys = await service.list_api_keys(request.app[ENV], user.id)
    context: dict[str, Any] = {"keys": [k.to_json() for k in keys], "new_key": new_key, "error": error}
    return await render(request, "keys.html", context, status)


async def keys_get(request: web.Request) -> web.Response:
    require_user(request)
    return await _keys_page(request, new_key=await take_once(request, NEW_KEY))


async def keys_post(request: web.Request) -> web.Response:
    """Create a key, then redirect (post/redirect/get): reloading the page that shows the
    secret is a GET and creates nothing."""
    form = await read_form(request)
    user = require_user(request)
    try:
        name = service.clean_key_name(form.get("name"))
    except service.FieldError as exc:
        return await _keys_page(request, error=f"Name: {exc.reason}.", status=422)
    key, secret = await service.create_api_key(request.app[ENV], user.id, name)
    await keep_once(request, NEW_KEY, {"name": key.name, "secret": secret})
    raise web.HTTPSeeOther(url(request, "keys"))


async def keys_revoke(request: web.Request) -> web.Response:
    await read_form(request)
    user = require_user(request)
    await service.revoke_api_key(request.app[ENV], user.id, request.match_info["key_id"])
    raise web.HTTPSeeOther(url(request, "keys"))
