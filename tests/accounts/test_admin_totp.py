"""An admin turns off a user's two-factor sign-in (they lost their authenticator and their
recovery codes): on the user's admin page, with `DELETE /api/admin/users/{id}/totp`, or
with `imagehost disable-totp USER`. The same `twofactor.disable` as the user's own
turning off (secret cleared, recovery codes deleted; like that one, the auth version is
not bumped), one `totp_off` audit entry. A user without TOTP on: 409 and nothing changes."""

from __future__ import annotations

import time
from datetime import timedelta

import pyotp
import pytest
from sqlalchemy import func, select

from imagehost.accounts import twofactor
from imagehost.db import new_id, utcnow
from imagehost.tables import audit_log, recovery_codes, users
from imagehost.typedefs import ENGINE
from tests.accounts.test_admin_api import admin_routes
from tests.accounts.test_reset import cli
from tests.support.accounts import ACCOUNT_TIERS, jwt_for, logged_in_token

pytestmark = pytest.mark.tiers(*ACCOUNT_TIERS)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def enable_totp(client, account) -> str:
    """Turn TOTP on for `account` through its own API; its secret."""
    token = await jwt_for(client, account)
    resp = await client.post("/api/account/totp", json={"password": account.password}, headers=bearer(token))
    assert resp.status == 201, await resp.text()
    secret = (await resp.json())["secret"]
    resp = await client.post(
        "/api/account/totp/confirm", json={"code": pyotp.TOTP(secret).at(time.time())}, headers=bearer(token)
    )
    assert resp.status == 200, await resp.text()
    return secret


async def start_enrolment(client, account) -> None:
    """Step one of enrolment only: a secret is stored, TOTP is not on."""
    token = await jwt_for(client, account)
    resp = await client.post("/api/account/totp", json={"password": account.password}, headers=bearer(token))
    assert resp.status == 201, await resp.text()


async def totp_columns(client, user_id: str) -> tuple:
    async with client.server.app[ENGINE].connect() as conn:
        row = (
            await conn.execute(
                select(
                    users.c.totp_secret, users.c.totp_enabled_at, users.c.totp_last_step, users.c.auth_version
                ).where(users.c.id == user_id)
            )
        ).one()
        codes = (
            await conn.execute(
                select(func.count()).select_from(recovery_codes).where(recovery_codes.c.user_id == user_id)
            )
        ).scalar_one()
    return (*row, codes)


async def state(client) -> tuple:
    """Everything turning TOTP off could change: the users' rows, recovery codes, audit."""
    async with client.server.app[ENGINE].connect() as conn:
        rows = (await conn.execute(select(users).order_by(users.c.id))).all()
        codes = (await conn.execute(select(recovery_codes).order_by(recovery_codes.c.id))).all()
        audit = (await conn.execute(select(func.count()).select_from(audit_log))).scalar_one()
    return tuple(map(tuple, rows)), tuple(map(tuple, codes)), audit


async def audit_rows(client) -> list[tuple]:
    async with client.server.app[ENGINE].connect() as conn:
        q = select(
            audit_log.c.actor_id, audit_log.c.actor_name, audit_log.c.action, audit_log.c.target_id, audit_log.c.at
        )
        return [tuple(r) for r in (await conn.execute(q)).all()]


async def password_login(client, account) -> tuple[int, dict]:
    resp = await client.post("/api/auth/login", json={"username": account.username, "password": account.password})
    return resp.status, await resp.json()


async def admin_user_totp(client, make_user) -> tuple:
    admin, user = await make_user("boss"), await make_user("plain")
    await enable_totp(client, user)
    status, body = await password_login(client, user)
    assert (status, body["code"]) == (401, "otp_required")  # on: the password alone is not enough
    return admin, user, await jwt_for(client, admin)


def test_the_new_routes_join_the_admin_route_walk(client, backend):
    """tests/accounts/test_admin_api.py walks every admin route as a non-admin (404)."""
    names = {(name, method) for name, method, _path in admin_routes(client.server.app)}
    assert {("api.admin_user_totp", "DELETE"), ("admin_user_totp", "POST")} <= names


# --------------------------------------------------------------------------- the API


async def test_the_admin_turns_totp_off_and_the_password_alone_signs_in(client, backend, make_user):
    admin, user, admin_jwt = await admin_user_totp(client, make_user)
    _secret, enabled_at, _step, version_before, codes_before = await totp_columns(client, user.id)
    assert enabled_at is not None and codes_before == 10
    started = utcnow()
    resp = await client.delete(f"/api/admin/users/{user.id}/totp", headers=bearer(admin_jwt))
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["id"] == user.id and body["two_factor"] is False
    # Secret cleared, recovery codes deleted, auth version as it was.
    assert await totp_columns(client, user.id) == (None, None, None, version_before, 0)
    status, login = await password_login(client, user)
    assert status == 200 and login["access_token"]
    [(actor_id, actor_name, action, target_id, at)] = await audit_rows(client)
    assert (actor_id, actor_name, action, target_id) == (admin.id, "boss", "totp_off", user.id)
    assert started - timedelta(seconds=1) <= at <= utcnow()
    trail = await (await client.get("/api/admin/audit", headers=bearer(admin_jwt))).json()
    assert [(e["actor"], e["action"], e["target"]) for e in trail["entries"]] == [("boss", "totp_off", "plain")]


async def test_sessions_and_jwts_survive_as_with_the_users_own_turning_off(client, backend, make_user):
    """The user's own `POST /api/account/totp/disable` does not bump auth_version; nor does this."""
    _admin, user, admin_jwt = await admin_user_totp(client, make_user)
    token = await jwt_with_recovery_code(client, user)
    assert (await client.delete(f"/api/admin/users/{user.id}/totp", headers=bearer(admin_jwt))).status == 200
    assert (await client.get("/api/auth/me", headers=bearer(token))).status == 200
    assert (await client.get("/api/auth/me", headers=user.auth)).status == 200  # and the API key


async def jwt_with_recovery_code(client, account) -> str:
    """A JWT for an account with TOTP on, signed in with a recovery code of our own."""
    code = "test-reco-very-code"
    async with client.server.app[ENGINE].begin() as conn:
        await conn.execute(
            recovery_codes.insert().values(
                id=new_id(), user_id=account.id, code_hash=twofactor.recovery_hash(account.id, code), used_at=None
            )
        )
    resp = await client.post(
        "/api/auth/login", json={"username": account.username, "password": account.password, "otp": code}
    )
    assert resp.status == 200, await resp.text()
    return (await resp.json())["access_token"]


@pytest.mark.parametrize("pending", [False, True], ids=["never-enrolled", "enrolment-pending"])
async def test_a_user_without_totp_gets_409_and_nothing_changes(client, backend, make_user, pending):
    admin, user = await make_user("boss"), await make_user("plain")
    if pending:
        await start_enrolment(client, user)  # a secret stored, not confirmed: not "on"
    admin_jwt = await jwt_for(client, admin)
    before = await state(client)
    resp = await client.delete(f"/api/admin/users/{user.id}/totp", headers=bearer(admin_jwt))
    assert resp.status == 409
    body = await resp.json()
    assert body["code"] == "conflict" and body["error"] == "two-factor sign-in is not on for plain"
    assert await state(client) == before
    if pending:
        assert (await totp_columns(client, user.id))[0] is not None  # the pending secret is kept


async def test_an_unknown_user_is_404_and_nothing_changes(client, backend, make_user):
    admin = await make_user("boss")
    admin_jwt = await jwt_for(client, admin)
    before = await state(client)
    for user_id in ("nosuchuser", "x" * 33):
        resp = await client.delete(f"/api/admin/users/{user_id}/totp", headers=bearer(admin_jwt))
        assert resp.status == 404 and (await resp.json())["code"] == "not_found"
    assert await state(client) == before


# --------------------------------------------------------------------------- the page


async def test_the_admin_page_offers_it_only_when_totp_is_on_and_the_form_turns_it_off(client, backend, make_user):
    admin, user = await make_user("boss"), await make_user("plain")
    token = await logged_in_token(client, admin)
    page = f"/admin/users/{user.id}"
    assert 'data-testid="totp-off"' not in await (await client.get(page)).text()
    client.session.cookie_jar.clear()  # the JSON login below is cookie-less
    await enable_totp(client, user)
    token = await logged_in_token(client, admin)
    html = await (await client.get(page)).text()
    assert 'data-testid="totp-off"' in html and f'action="/admin/users/{user.id}/totp-off"' in html
    resp = await client.post(f"{page}/totp-off", data={"csrf_token": token}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == page
    html = await (await client.get(page)).text()
    assert "Two-factor sign-in is off for plain" in html and 'data-testid="totp-off"' not in html
    assert (await totp_columns(client, user.id))[:3] == (None, None, None)
    assert (await totp_columns(client, user.id))[4] == 0
    assert [r[1:4] for r in await audit_rows(client)] == [("boss", "totp_off", user.id)]
    assert "Turned off two-factor" in await (await client.get("/admin")).text()
    client.session.cookie_jar.clear()
    status, _body = await password_login(client, user)
    assert status == 200


async def test_the_form_for_a_user_without_totp_says_so_and_changes_nothing(client, backend, make_user):
    admin, user = await make_user("boss"), await make_user("plain")
    token = await logged_in_token(client, admin)
    before = await state(client)
    resp = await client.post(f"/admin/users/{user.id}/totp-off", data={"csrf_token": token}, allow_redirects=False)
    assert resp.status == 303
    html = await (await client.get(resp.headers["Location"])).text()
    assert "two-factor sign-in is not on for plain" in html
    assert await state(client) == before


async def test_the_form_without_a_csrf_token_changes_nothing(client, backend, make_user):
    admin, user = await make_user("boss"), await make_user("plain")
    await enable_totp(client, user)
    await logged_in_token(client, admin)
    before = await state(client)
    resp = await client.post(f"/admin/users/{user.id}/totp-off", data={}, allow_redirects=False)
    assert resp.status == 403
    assert await state(client) == before


# --------------------------------------------------------------------------- the CLI


async def test_cli_disable_totp_turns_it_off_and_says_so(client, backend, make_user, tmp_path):
    await make_user("boss")
    user = await make_user("plain")
    await enable_totp(client, user)
    proc = await cli(backend, tmp_path, "disable-totp", "PLAIN")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == (
        "turned off two-factor sign-in for PLAIN (secret and recovery codes deleted); "
        "their password alone signs them in now"
    )
    assert (await totp_columns(client, user.id))[:3] == (None, None, None)
    status, _body = await password_login(client, user)
    assert status == 200
    rows = await audit_rows(client)
    assert [r[:4] for r in rows] == [(None, "(command line)", "totp_off", user.id)]


@pytest.mark.parametrize("who", ["plain", "ghost"])
async def test_cli_disable_totp_refuses_clearly_and_changes_nothing(client, backend, make_user, tmp_path, who):
    await make_user("boss")
    await make_user("plain")  # TOTP is not on
    before = await state(client)
    proc = await cli(backend, tmp_path, "disable-totp", who)
    assert proc.returncode == 1 and proc.stdout == ""
    expected = "two-factor sign-in is not on for plain" if who == "plain" else "no user named 'ghost'"
    assert proc.stderr.strip() == f"imagehost: {expected}"
    assert await state(client) == before
