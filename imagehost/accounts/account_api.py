"""The JSON account settings: `/api/account/…` (see account_service.py).

Each needs a login (a session or a JWT): an API key is refused with 403
`api_key_not_allowed`, so a key leaked from a screenshot tool cannot change the password,
take the account's email or delete it. A wrong current password answers 403
`wrong_password`, a wrong code 403 `otp_invalid`; both count as failed logins (429
`rate_limited` once throttled) and change nothing.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..errors import Forbidden
from ..http.bodies import read_json
from ..typedefs import CLIENT_ADDR, ENV, IDENTITY
from . import account_service
from .identity import log_in, log_out, require_user
from .store import User

NO_STORE = {"Cache-Control": "no-store"}
PASSWORD_CHANGED = (
    "Password changed. Every other session and every access token (JWT) has ended, this one included for a JWT; "
    "your API keys still work."
)


def _login_user(request: web.Request) -> User:
    user = require_user(request)
    identity = request[IDENTITY]
    if identity is not None and identity.method == "apikey":
        raise Forbidden("account settings need a login (session or token), not an API key", code="api_key_not_allowed")
    return user


def _by_session(request: web.Request) -> bool:
    identity = request[IDENTITY]
    return identity is not None and identity.method == "session"


async def _account_json(request: web.Request, user: User) -> dict[str, Any]:
    tf = await account_service.two_factor(request.app[ENV], user)
    return {
        "user": user.to_json(),
        "two_factor": {
            "enabled": tf.enabled,
            "pending": tf.pending_secret is not None,
            "recovery_codes_left": tf.recovery_codes_left,
        },
    }


async def get_account(request: web.Request) -> web.Response:
    user = _login_user(request)
    return web.json_response(await _account_json(request, user), headers=NO_STORE)


async def change_password(request: web.Request) -> web.Response:
    user = _login_user(request)
    body = await read_json(request)
    fresh = await account_service.change_password(
        request.app[ENV], user, body.get("current_password"), body.get("new_password"), request[CLIENT_ADDR]
    )
    if _by_session(request):
        await log_in(request, fresh)  # this session goes on, with the new version
    return web.json_response(
        {"sessions_ended": True, "api_keys_kept": True, "message": PASSWORD_CHANGED}, headers=NO_STORE
    )


async def change_email(request: web.Request) -> web.Response:
    user = _login_user(request)
    body = await read_json(request)
    fresh = await account_service.change_email(
        request.app[ENV], user, body.get("email"), body.get("password"), request[CLIENT_ADDR]
    )
    return web.json_response(await _account_json(request, fresh), headers=NO_STORE)


async def delete_account(request: web.Request) -> web.Response:
    user = _login_user(request)
    body = await read_json(request)
    await account_service.delete_account(request.app[ENV], user, body.get("password"), request[CLIENT_ADDR])
    if _by_session(request):
        await log_out(request)
    return web.Response(status=204)


async def start_totp(request: web.Request) -> web.Response:
    user = _login_user(request)
    body = await read_json(request)
    secret = await account_service.start_totp(request.app[ENV], user, body.get("password"), request[CLIENT_ADDR])
    return web.json_response(
        {"secret": secret, "otpauth_uri": account_service.enrolment_uri(user, secret)}, status=201, headers=NO_STORE
    )


async def confirm_totp(request: web.Request) -> web.Response:
    user = _login_user(request)
    body = await read_json(request)
    codes = await account_service.confirm_totp(request.app[ENV], user, body.get("code"))
    return web.json_response({"recovery_codes": codes}, headers=NO_STORE)


async def disable_totp(request: web.Request) -> web.Response:
    user = _login_user(request)
    body = await read_json(request)
    await account_service.disable_totp(request.app[ENV], user, body.get("code"), request[CLIENT_ADDR])
    return web.Response(status=204)
