"""Account settings (issue 12, part 5): change the password (every other session and
every JWT end, API keys stay), change the email, delete the account — each needs the
current password, refuses an API key, and changes nothing when refused."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from imagehost.accounts.identity import SESSION_COOKIE
from imagehost.tables import api_keys, login_failures, users
from imagehost.typedefs import ENGINE
from tests.support.accounts import ACCOUNT_TIERS, browser_login, jwt_for, logged_in_token, page_token, session_cookie
from tests.support.uploads import image_bytes, snapshot, uploaded

pytestmark = pytest.mark.tiers(*ACCOUNT_TIERS)
NEW = "a brand new passphrase"


async def _row(client, user_id: str):
    async with client.server.app[ENGINE].connect() as conn:
        return (await conn.execute(select(users).where(users.c.id == user_id))).first()


async def _me(client, headers: dict[str, str] | None = None) -> int:
    return (await client.get("/api/auth/me", headers=headers or {})).status


def _use_cookie(client, value: str) -> None:
    client.session.cookie_jar.update_cookies({SESSION_COOKIE: value}, response_url=client.make_url("/"))


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --------------------------------------------------------------------------- password


async def test_changing_the_password_ends_other_sessions_and_jwts_but_keeps_this_session_and_api_keys(
    client, backend, make_user
):
    account = await make_user()
    other = await make_user()
    other_token = await jwt_for(client, other)
    old_token = await jwt_for(client, account)
    await logged_in_token(client, account)
    elsewhere = session_cookie(client)  # a session on another device
    client.session.cookie_jar.clear()
    csrf = await logged_in_token(client, account)
    here = session_cookie(client)
    assert elsewhere and here and elsewhere != here

    resp = await client.post(
        "/account/password",
        data={"csrf_token": csrf, "current_password": account.password, "new_password": NEW},
        allow_redirects=False,
    )
    assert resp.status == 303 and resp.headers["Location"] == "/account"
    page = await client.get("/account")
    text = await page.text()
    assert page.status == 200 and "API keys still work" in text  # the page says so

    assert await _me(client) == 200  # this browser stays signed in (re-issued cookie)
    assert await _me(client, _bearer(old_token)) == 401  # every JWT ended
    assert await _me(client, account.auth) == 200  # API keys stay
    assert await _me(client, _bearer(other_token)) == 200  # nobody else touched
    for dead in (elsewhere, here):  # the other device's cookie, and this one's old copy
        _use_cookie(client, dead)
        assert await _me(client) == 401
    # The new password signs in; the old one no longer does.
    client.session.cookie_jar.clear()
    assert (await browser_login(client, account.username, NEW)).status == 303
    client.session.cookie_jar.clear()
    bad = await client.post("/api/auth/login", json={"username": account.username, "password": account.password})
    assert bad.status == 401


async def test_the_api_changes_the_password_says_keys_are_kept_and_ends_the_callers_jwt(client, backend, make_user):
    account = await make_user()
    token = await jwt_for(client, account)
    resp = await client.post(
        "/api/account/password",
        json={"current_password": account.password, "new_password": NEW},
        headers=_bearer(token),
    )
    assert resp.status == 200
    body = await resp.json()
    assert body["api_keys_kept"] is True and body["sessions_ended"] is True and "API keys" in body["message"]
    assert await _me(client, _bearer(token)) == 401
    assert await _me(client, account.auth) == 200
    assert (await _row(client, account.id)).auth_version == 2


async def test_a_wrong_current_password_changes_nothing_and_counts_as_a_failed_login(client, backend, make_user):
    account = await make_user()
    token = await jwt_for(client, account)
    before = await _row(client, account.id)
    resp = await client.post(
        "/api/account/password",
        json={"current_password": "not my password", "new_password": NEW},
        headers=_bearer(token),
    )
    assert resp.status == 403 and (await resp.json())["code"] == "wrong_password"
    after = await _row(client, account.id)
    assert after.password_hash == before.password_hash and after.auth_version == before.auth_version
    assert await _me(client, _bearer(token)) == 200  # nothing ended
    async with client.server.app[ENGINE].connect() as conn:
        assert len((await conn.execute(select(login_failures))).all()) == 2  # the username and the address

    # The page says so beside the form, and the password is unchanged.
    csrf = await logged_in_token(client, account)
    resp = await client.post(
        "/account/password", data={"csrf_token": csrf, "current_password": "nope nope", "new_password": NEW}
    )
    assert resp.status == 403 and "current password is wrong" in await resp.text()
    assert (await _row(client, account.id)).password_hash == before.password_hash


async def test_a_too_short_new_password_is_refused_before_the_current_one_is_checked(client, backend, make_user):
    account = await make_user()
    token = await jwt_for(client, account)
    before = await _row(client, account.id)
    resp = await client.post(
        "/api/account/password",
        json={"current_password": account.password, "new_password": "short"},
        headers=_bearer(token),
    )
    body = await resp.json()
    assert resp.status == 422 and body["code"] == "invalid_input" and body["detail"]["field"] == "password"
    assert (await _row(client, account.id)).password_hash == before.password_hash


async def test_guessing_the_current_password_is_throttled(client, backend, make_user):
    account = await make_user()
    token = await jwt_for(client, account)
    for _ in range(10):
        resp = await client.post(
            "/api/account/password", json={"current_password": "guess", "new_password": NEW}, headers=_bearer(token)
        )
        assert resp.status == 403
    resp = await client.post(
        "/api/account/password",
        json={"current_password": account.password, "new_password": NEW},
        headers=_bearer(token),
    )
    assert resp.status == 429 and int(resp.headers["Retry-After"]) >= 1
    assert (await _row(client, account.id)).auth_version == 1  # nothing changed


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/account/password", {"current_password": "correct horse battery", "new_password": NEW}),
        ("/api/account/email", {"email": "new@example.com", "password": "correct horse battery"}),
        ("/api/account/delete", {"password": "correct horse battery"}),
        ("/api/account/totp", {"password": "correct horse battery"}),
    ],
)
async def test_an_api_key_cannot_change_the_account(client, backend, make_user, path, body):
    account = await make_user()
    before = await _row(client, account.id)
    resp = await client.post(path, json=body, headers=account.auth)
    assert resp.status == 403 and (await resp.json())["code"] == "api_key_not_allowed"
    assert await _row(client, account.id) == before
    assert (await client.get("/api/account", headers=account.auth)).status == 403


# --------------------------------------------------------------------------- email


async def test_changing_the_email_needs_the_password_and_a_free_address(client, backend, make_user):
    account = await make_user()
    other = await make_user()
    token = await jwt_for(client, account)
    headers = _bearer(token)

    wrong = await client.post(
        "/api/account/email", json={"email": "fresh@example.com", "password": "not it!!"}, headers=headers
    )
    assert wrong.status == 403 and (await wrong.json())["code"] == "wrong_password"
    taken = await client.post(
        "/api/account/email", json={"email": other.email.upper(), "password": account.password}, headers=headers
    )
    body = await taken.json()
    assert taken.status == 409 and body["code"] == "field_taken" and body["detail"]["field"] == "email"
    bad = await client.post(
        "/api/account/email", json={"email": "not an email", "password": account.password}, headers=headers
    )
    assert bad.status == 422 and (await bad.json())["detail"]["field"] == "email"
    assert (await _row(client, account.id)).email == account.email  # nothing changed by any of them

    ok = await client.post(
        "/api/account/email", json={"email": "Fresh@example.com", "password": account.password}, headers=headers
    )
    assert ok.status == 200 and (await ok.json())["user"]["email"] == "Fresh@example.com"
    row = await _row(client, account.id)
    assert (row.email, row.email_key) == ("Fresh@example.com", "fresh@example.com")
    assert row.auth_version == 1  # an email change ends no session

    # Through the page: the same rule, said beside the form.
    csrf = await logged_in_token(client, account)
    resp = await client.post(
        "/account/email", data={"csrf_token": csrf, "email": other.email, "password": account.password}
    )
    assert resp.status == 409 and "already taken" in await resp.text()
    resp = await client.post(
        "/account/email",
        data={"csrf_token": csrf, "email": "page@example.com", "password": account.password},
        allow_redirects=False,
    )
    assert resp.status == 303
    assert (await _row(client, account.id)).email == "page@example.com"


# --------------------------------------------------------------------------- delete


async def test_deleting_with_a_wrong_password_deletes_nothing(client, backend, make_user):
    account = await make_user()
    await uploaded(client, account, image_bytes())
    token = await jwt_for(client, account)
    before = await snapshot(client, backend)
    resp = await client.post("/api/account/delete", json={"password": "not it at all"}, headers=_bearer(token))
    assert resp.status == 403 and (await resp.json())["code"] == "wrong_password"
    csrf = await logged_in_token(client, account)
    resp = await client.post("/account/delete", data={"csrf_token": csrf, "password": "still not it"})
    assert resp.status == 403 and "Nothing was changed" in await resp.text()
    assert await snapshot(client, backend) == before  # rows, objects and quota as they were
    assert await _row(client, account.id) is not None
    assert await _me(client, account.auth) == 200


@pytest.mark.tiers("sqlite-local", "sqlite-s3", "pg-local", "pg-s3")
async def test_deleting_my_account_removes_everything_and_ends_the_session(client, backend, make_user):
    other = await make_user()  # the first account: the admin
    account = await make_user()
    await uploaded(client, account, image_bytes(size=(20, 20)))
    await uploaded(client, account, image_bytes(size=(30, 20)))
    kept = await uploaded(client, other, image_bytes())
    token = await jwt_for(client, account)
    csrf = await logged_in_token(client, account)

    resp = await client.post(
        "/account/delete", data={"csrf_token": csrf, "password": account.password}, allow_redirects=False
    )
    assert resp.status == 303 and resp.headers["Location"] == "/"
    assert await _row(client, account.id) is None
    snap = await snapshot(client, backend)
    kept_keys = {kept["public_url"].rsplit("/", 1)[-1], kept["thumbnail_url"].rsplit("/", 1)[-1]}
    assert snap.images == 1 and snap.objects == frozenset(kept_keys)  # only the other user's image
    async with client.server.app[ENGINE].connect() as conn:
        assert (await conn.execute(select(api_keys).where(api_keys.c.user_id == account.id))).first() is None
    assert await _me(client) == 401  # the session ended
    assert await _me(client, account.auth) == 401
    assert await _me(client, _bearer(token)) == 401
    assert await _me(client, other.auth) == 200


async def test_the_api_deletes_the_account(client, backend, make_user):
    await make_user()  # the first account: the admin
    account = await make_user()
    token = await jwt_for(client, account)
    resp = await client.post("/api/account/delete", json={"password": account.password}, headers=_bearer(token))
    assert resp.status == 204
    assert await _row(client, account.id) is None
    assert await _me(client, account.auth) == 401


async def test_the_account_page_needs_a_login_and_every_form_carries_a_csrf_token(client, backend, make_user):
    resp = await client.get("/account", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/login")
    account = await make_user()
    await logged_in_token(client, account)
    html = await (await client.get("/account")).text()
    assert html.count('name="csrf_token"') >= 5  # logout, password, email, two-factor, delete
    # A form posted without the token changes nothing.
    before = await _row(client, account.id)
    resp = await client.post("/account/email", data={"email": "x@example.com", "password": account.password})
    assert resp.status == 403
    assert await _row(client, account.id) == before
    assert await page_token(client, "/account")


async def test_the_last_admin_cannot_delete_their_own_account(client, backend, make_user):
    admin = await make_user()  # the first account of the instance
    await uploaded(client, admin, image_bytes())
    token = await jwt_for(client, admin)
    assert (await _row(client, admin.id)).role == "admin"
    before = await snapshot(client, backend)
    resp = await client.post("/api/account/delete", json={"password": admin.password}, headers=_bearer(token))
    assert resp.status == 409 and (await resp.json())["code"] == "last_admin"
    csrf = await logged_in_token(client, admin)
    resp = await client.post("/account/delete", data={"csrf_token": csrf, "password": admin.password})
    assert resp.status == 409 and "last admin" in await resp.text()
    assert await snapshot(client, backend) == before
    row = await _row(client, admin.id)
    assert row is not None and row.auth_version == 1  # not even the sessions ended
    assert await _me(client) == 200 and await _me(client, _bearer(token)) == 200
