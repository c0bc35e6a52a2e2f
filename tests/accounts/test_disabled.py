"""Disabling an account and ending its sessions: a disabled user's cookie, JWT and API key
are refused at their next request (401 `account_disabled`), they cannot sign in (and a
wrong password still learns nothing), and bumping the auth version (a password change
or reset) ends every session and JWT but keeps API keys."""

from __future__ import annotations

import jwt
import pytest
from sqlalchemy import select

from imagehost.accounts import service, tokens
from imagehost.tables import login_failures, users
from imagehost.typedefs import ENGINE, ENV
from tests.support.accounts import ACCOUNT_TIERS, browser_login, jwt_for, logged_in_token

pytestmark = pytest.mark.tiers(*ACCOUNT_TIERS)


async def _me(client, headers: dict[str, str] | None = None):
    resp = await client.get("/api/auth/me", headers=headers or {})
    return resp.status, await resp.json()


async def _user_row(client, user_id: str):
    async with client.server.app[ENGINE].connect() as conn:
        return (await conn.execute(select(users).where(users.c.id == user_id))).first()


async def test_a_disabled_users_cookie_jwt_and_key_are_refused_at_the_next_request(client, backend, make_user):
    account = await make_user()
    token = await jwt_for(client, account)
    await logged_in_token(client, account)
    bearer = {"Authorization": f"Bearer {token}"}
    assert (await _me(client))[0] == 200
    assert (await _me(client, bearer))[0] == 200
    assert (await _me(client, account.auth))[0] == 200

    assert await service.set_disabled(client.server.app[ENV], account.id, True)

    for headers in (bearer, account.auth):
        status, body = await _me(client, headers)
        assert (status, body["code"]) == (401, "account_disabled"), headers
    status, body = await _me(client)  # the session cookie
    assert (status, body["code"]) == (401, "account_disabled")
    # A page treats the cookie as signed out (and drops it): it sends to the login form.
    resp = await client.get("/gallery", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/login")
    status, body = await _me(client)
    assert (status, body["code"]) == (401, "authentication_required")
    # Nothing about the account changed but the flag: their images, keys and name stay.
    row = await _user_row(client, account.id)
    assert row.disabled_at is not None and row.auth_version == 1


async def test_a_disabled_user_cannot_sign_in_and_a_wrong_password_learns_nothing(client, backend, make_user):
    account = await make_user()
    assert await service.set_disabled(client.server.app[ENV], account.id, True)
    right = await client.post("/api/auth/login", json={"username": account.username, "password": account.password})
    assert right.status == 401 and (await right.json())["code"] == "account_disabled"
    wrong = await client.post("/api/auth/login", json={"username": account.username, "password": "not the password"})
    unknown = await client.post("/api/auth/login", json={"username": "nobody-here", "password": "not the password"})
    assert wrong.status == unknown.status == 401
    assert await wrong.json() == await unknown.json()  # same code, same words: nothing learnt
    assert (await wrong.json())["code"] == "invalid_credentials"
    # The page says so too, and signs no one in.
    resp = await browser_login(client, account.username, account.password)
    assert resp.status == 403 and "disabled" in await resp.text()
    assert (await _me(client))[0] == 401
    row = await _user_row(client, account.id)
    assert row.last_login_at is None


async def test_enabling_again_lets_the_key_and_the_password_work(client, backend, make_user):
    account = await make_user()
    env = client.server.app[ENV]
    await service.set_disabled(env, account.id, True)
    assert (await _me(client, account.auth))[0] == 401
    await service.set_disabled(env, account.id, False)
    assert (await _me(client, account.auth))[0] == 200
    assert await jwt_for(client, account)
    assert (await _user_row(client, account.id)).last_login_at is not None


async def test_bumping_the_auth_version_ends_sessions_and_jwts_but_keeps_api_keys(client, backend, make_user):
    account = await make_user()
    other = await make_user()
    token = await jwt_for(client, account)
    other_token = await jwt_for(client, other)
    await logged_in_token(client, account)
    await service.bump_auth_version(client.server.app[ENV], account.id)

    status, body = await _me(client, {"Authorization": f"Bearer {token}"})
    assert (status, body["code"]) == (401, "invalid_credentials")
    status, body = await _me(client)  # the cookie identifies no one now
    assert (status, body["code"]) == (401, "authentication_required")
    assert (await _me(client, account.auth))[0] == 200  # API keys stay
    assert (await _me(client, {"Authorization": f"Bearer {other_token}"}))[0] == 200  # others untouched
    # A new sign-in works, with the new version.
    client.session.cookie_jar.clear()
    fresh = await jwt_for(client, account)
    assert jwt.decode(fresh, options={"verify_signature": False})["ver"] == 2
    assert (await _me(client, {"Authorization": f"Bearer {fresh}"}))[0] == 200
    await logged_in_token(client, account)
    assert (await _me(client))[0] == 200


async def test_a_jwt_carries_the_auth_version_and_a_forged_version_is_refused(client, backend, make_user):
    account = await make_user()
    secret = client.server.app[ENV].settings.secret_key
    token = tokens.issue_access_token(secret, account.id, 5, version=7)
    status, _ = await _me(client, {"Authorization": f"Bearer {token}"})
    assert status == 401
    older = tokens.issue_access_token(secret, account.id, 5)  # version 1, the account's
    assert (await _me(client, {"Authorization": f"Bearer {older}"}))[0] == 200


async def test_a_right_password_for_a_disabled_account_is_not_a_failed_guess(client, backend, make_user):
    account = await make_user()
    await service.set_disabled(client.server.app[ENV], account.id, True)
    await client.post("/api/auth/login", json={"username": account.username, "password": account.password})
    async with client.server.app[ENGINE].connect() as conn:
        failures = (await conn.execute(select(login_failures))).all()
    assert failures == []
