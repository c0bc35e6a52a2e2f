"""The account page, `/account` (see account_service.py). Server-rendered forms that
work without JavaScript, each with its CSRF token; every successful change redirects
back to the page (post/redirect/get), whose next GET shows what happened once (and the
recovery codes, once).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..errors import AppError, TooManyRequests
from ..http.csrf import read_form
from ..typedefs import CLIENT_ADDR, ENV
from ..web.context import render, url
from ..web.once import keep_once, take_once
from . import account_service, service, twofactor
from .identity import log_in, log_out, require_user

NOTICE = "account_notice"  # session slot: what the last change did, shown once
RECOVERY = "recovery_codes"  # session slot: the codes just made, shown once
SHARING_ROUTE = "account_sharing"  # the embed settings, where that feature is installed


# --------------------------------------------------------------------------- the page


async def _page(
    request: web.Request, *, errors: dict[str, str] | None = None, status: int = 200, retry_after: str | None = None
) -> web.Response:
    user = require_user(request)
    env = request.app[ENV]
    tf = await account_service.two_factor(env, user)
    enrolment: dict[str, str] | None = None
    if tf.pending_secret is not None:
        uri = account_service.enrolment_uri(user, tf.pending_secret)
        enrolment = {
            "secret": tf.pending_secret,
            "grouped": twofactor.grouped(tf.pending_secret),
            "qr": twofactor.qr_data_uri(uri),
            "uri": uri,
        }
    notice = await take_once(request, NOTICE)
    recovery = await take_once(request, RECOVERY)
    context: dict[str, Any] = {
        "account": user,
        "two_factor": tf,
        "enrolment": enrolment,
        "notice": notice["text"] if notice else None,
        "recovery_codes": recovery["codes"].split() if recovery else None,
        "errors": errors or {},
        "sharing_url": url(request, SHARING_ROUTE) if SHARING_ROUTE in request.app.router.named_resources() else None,
    }
    response = await render(request, "account.html", context, status)
    if retry_after is not None:
        response.headers["Retry-After"] = retry_after
    return response


async def account_get(request: web.Request) -> web.Response:
    require_user(request)
    return await _page(request)


async def _done(request: web.Request, text: str) -> web.Response:
    await keep_once(request, NOTICE, {"text": text})
    raise web.HTTPSeeOther(url(request, "account"))


async def _refused(request: web.Request, form: str, exc: AppError) -> web.Response:
    """The page again, with the reason beside the form that failed."""
    if isinstance(exc, TooManyRequests):
        wait = exc.headers["Retry-After"]
        minutes = max(1, -(-int(wait) // 60))
        text = f"Too many failed attempts. Try again in {minutes} minute{'s' if minutes != 1 else ''}."
        return await _page(request, errors={form: text}, status=429, retry_after=wait)
    if isinstance(exc, service.FieldError):
        text = exc.reason[:1].upper() + exc.reason[1:] + "."
    elif exc.code == "wrong_password":
        text = "The current password is wrong. Nothing was changed."
    elif exc.code == "otp_invalid":
        text = "That code is wrong, too old or already used. Nothing was changed."
    else:
        text = exc.message[:1].upper() + exc.message[1:] + "."
    return await _page(request, errors={form: text}, status=exc.status)


async def password_post(request: web.Request) -> web.Response:
    form = await read_form(request)
    user = require_user(request)
    try:
        fresh = await account_service.change_password(
            request.app[ENV], user, form.get("current_password"), form.get("new_password"), request[CLIENT_ADDR]
        )
    except AppError as exc:
        return await _refused(request, "password", exc)
    await log_in(request, fresh)  # this browser stays signed in, with the new version
    return await _done(
        request,
        "Password changed. You were signed out everywhere else, and access tokens (JWTs) stopped working; "
        "your API keys still work — revoke them on the API keys page if they may be known.",
    )


async def email_post(request: web.Request) -> web.Response:
    form = await read_form(request)
    user = require_user(request)
    try:
        await account_service.change_email(
            request.app[ENV], user, form.get("email"), form.get("password"), request[CLIENT_ADDR]
        )
    except AppError as exc:
        return await _refused(request, "email", exc)
    return await _done(request, "Email address changed.")


async def delete_post(request: web.Request) -> web.Response:
    form = await read_form(request)
    user = require_user(request)
    try:
        await account_service.delete_account(request.app[ENV], user, form.get("password"), request[CLIENT_ADDR])
    except AppError as exc:
        return await _refused(request, "delete", exc)
    await log_out(request)
    raise web.HTTPSeeOther(url(request, "home"))


async def totp_start_post(request: web.Request) -> web.Response:
    form = await read_form(request)
    user = require_user(request)
    try:
        await account_service.start_totp(request.app[ENV], user, form.get("password"), request[CLIENT_ADDR])
    except AppError as exc:
        return await _refused(request, "totp", exc)
    raise web.HTTPSeeOther(url(request, "account") + "#two-factor")


async def totp_confirm_post(request: web.Request) -> web.Response:
    form = await read_form(request)
    user = require_user(request)
    try:
        codes = await account_service.confirm_totp(request.app[ENV], user, form.get("code"))
    except AppError as exc:
        return await _refused(request, "totp", exc)
    await keep_once(request, RECOVERY, {"codes": " ".join(codes)})
    return await _done(request, "Two-factor sign-in is on.")


async def totp_disable_post(request: web.Request) -> web.Response:
    form = await read_form(request)
    user = require_user(request)
    try:
        await account_service.disable_totp(request.app[ENV], user, form.get("code"), request[CLIENT_ADDR])
    except AppError as exc:
        return await _refused(request, "totp", exc)
    return await _done(request, "Two-factor sign-in is off.")
