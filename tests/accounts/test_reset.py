"""Password-reset links: made by an admin (API, page) or `imagehost reset-password`; one
use, an hour, only the hash stored; the /reset/{token} page sets a new password, which
ends every session and JWT (API keys stay). A used, expired, superseded or unknown link
changes nothing."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from imagehost.db import sha256_hex, utcnow
from imagehost.tables import audit_log, password_resets, users
from imagehost.typedefs import ENGINE
from tests.support.accounts import ACCOUNT_TIERS, csrf_of, jwt_for

pytestmark = pytest.mark.tiers(*ACCOUNT_TIERS)

NEW = "a brand new password"


async def reset_link(client, admin, user) -> str:
    token = await jwt_for(client, admin)
    resp = await client.post(f"/api/admin/users/{user.id}/reset-link", headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    assert resp.headers["Cache-Control"] == "no-store"
    return body["url"].removeprefix("http://localhost:8000")


async def password_hash(client, user_id: str) -> str:
    async with client.server.app[ENGINE].connect() as conn:
        return (await conn.execute(select(users.c.password_hash).where(users.c.id == user_id))).scalar_one()


async def use(client, path: str, password: str = NEW, again: str | None = None):
    page = await client.get(path)
    html = await page.text()
    data = {"password": password, "password_again": again or password, "csrf_token": csrf_of(html)}
    return page, await client.post(path, data=data, allow_redirects=False)


async def login_status(client, account, password: str) -> int:
    client.session.cookie_jar.clear()
    resp = await client.post("/api/auth/login", json={"username": account.username, "password": password})
    return resp.status


async def test_a_reset_link_sets_a_new_password_once_and_signs_out_everywhere(client, backend, make_user):
    admin, user = await make_user("boss"), await make_user("plain")
    old_jwt = await jwt_for(client, user)
    path = await reset_link(client, admin, user)
    async with client.server.app[ENGINE].connect() as conn:
        (stored,) = (await conn.execute(select(password_resets.c.token_hash))).one()
    assert stored == sha256_hex(path.rsplit("/", 1)[1])  # only the hash is kept
    page, resp = await use(client, path)
    assert page.status == 200 and "plain" in await page.text()
    assert page.headers["Referrer-Policy"] == "same-origin"
    assert resp.status == 200 and "Your password is changed" in await resp.text()
    assert await login_status(client, user, NEW) == 200
    assert await login_status(client, user, user.password) == 401
    me = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {old_jwt}"})
    assert me.status == 401  # the JWT from before is dead
    assert (await client.get("/api/auth/me", headers=user.auth)).status == 200  # the API key stays
    # A second use: refused, nothing changes.
    before = await password_hash(client, user.id)
    client.session.cookie_jar.clear()
    page = await client.get(path)
    assert page.status == 404 and "not valid" in await page.text()
    _page, again = await use_without_form(client, path, "yet another password")
    assert again.status == 404
    assert await password_hash(client, user.id) == before


async def use_without_form(client, path: str, password: str):
    """POST to a dead link with a valid CSRF token from another page."""
    html = await (await client.get("/login")).text()
    data = {"password": password, "password_again": password, "csrf_token": csrf_of(html)}
    return None, await client.post(path, data=data, allow_redirects=False)


@pytest.mark.parametrize("why", ["expired", "superseded", "unknown"])
async def test_a_dead_reset_link_changes_nothing(client, backend, make_user, why):
    admin, user = await make_user("boss"), await make_user("plain")
    path = await reset_link(client, admin, user)
    if why == "expired":
        async with client.server.app[ENGINE].begin() as conn:
            await conn.execute(update(password_resets).values(expires_at=utcnow() - timedelta(seconds=1)))
    elif why == "superseded":
        await reset_link(client, admin, user)  # a newer link voids the older one
    else:
        path = path.rsplit("/", 1)[0] + "/" + "A" * 43
    before = await password_hash(client, user.id)
    client.session.cookie_jar.clear()
    page = await client.get(path)
    assert page.status == 404 and 'name="password"' not in await page.text()
    _page, resp = await use_without_form(client, path, "a different password")
    assert resp.status == 404
    assert await password_hash(client, user.id) == before
    assert await login_status(client, user, user.password) == 200


@pytest.mark.parametrize(("password", "again"), [("short", "short"), (NEW, NEW + "x")])
async def test_a_bad_new_password_keeps_the_link_and_the_old_password(client, backend, make_user, password, again):
    admin, user = await make_user("boss"), await make_user("plain")
    path = await reset_link(client, admin, user)
    before = await password_hash(client, user.id)
    client.session.cookie_jar.clear()
    _page, resp = await use(client, path, password, again)
    assert resp.status == 422
    assert await password_hash(client, user.id) == before
    _page, resp = await use(client, path)  # the link still works
    assert resp.status == 200


async def test_the_reset_link_is_audited(client, backend, make_user):
    admin, user = await make_user("boss"), await make_user("plain")
    await reset_link(client, admin, user)
    async with client.server.app[ENGINE].connect() as conn:
        rows = (await conn.execute(select(audit_log.c.actor_name, audit_log.c.action, audit_log.c.target_name))).all()
    assert [tuple(r) for r in rows] == [("boss", "reset_link", "plain")]


# --------------------------------------------------------------------------- the CLI


async def cli(backend, tmp_path, *args: str):
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "SECRET_", "REGISTRATION_"))}
    environ.update(
        DATABASE_URL=backend.settings.database_url,
        SECRET_KEY=backend.settings.secret_key,
        PUBLIC_BASE_URL="https://img.example.com",
        BCRYPT_ROUNDS="4",
        LOG_LEVEL="WARNING",
        DATA_DIR=str(tmp_path / "cli-data"),
    )
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "imagehost", *args],
        input="a long cli password\n",
        capture_output=True,
        text=True,
        env=environ,
        cwd=tmp_path,
        timeout=60,
    )


async def test_cli_reset_password_prints_a_working_link(client, backend, make_user, tmp_path):
    await make_user("boss")
    user = await make_user("plain")
    proc = await cli(backend, tmp_path, "reset-password", "PLAIN")
    assert proc.returncode == 0, proc.stderr
    url = proc.stdout.splitlines()[0]
    assert url.startswith("https://img.example.com/reset/")
    _page, resp = await use(client, url.removeprefix("https://img.example.com"))
    assert resp.status == 200
    assert await login_status(client, user, NEW) == 200
    async with client.server.app[ENGINE].connect() as conn:
        actor = (await conn.execute(select(audit_log.c.actor_name))).scalar_one()
    assert actor == "(command line)"


async def test_cli_reset_password_of_nobody_fails_clearly(client, backend, tmp_path):
    proc = await cli(backend, tmp_path, "reset-password", "ghost")
    assert proc.returncode == 1 and proc.stderr.strip() == "imagehost: no user named 'ghost'"


async def test_cli_create_user_admin_and_set_role(client, backend, make_user, tmp_path):
    await make_user("boss")  # the first account: admin anyway
    proc = await cli(backend, tmp_path, "create-user", "second", "second@example.com", "--admin", "--password-stdin")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith(", an admin")
    proc = await cli(backend, tmp_path, "set-role", "second", "user")
    assert proc.returncode == 0 and proc.stdout.strip() == "second is now a user"
    async with client.server.app[ENGINE].connect() as conn:
        roles = dict((await conn.execute(select(users.c.username, users.c.role))).all())
    assert roles == {"boss": "admin", "second": "user"}


async def test_cli_set_role_keeps_the_last_admin(client, backend, make_user, tmp_path):
    await make_user("boss")
    proc = await cli(backend, tmp_path, "set-role", "boss", "user")
    assert proc.returncode == 1 and "last admin" in proc.stderr
    async with client.server.app[ENGINE].connect() as conn:
        assert (await conn.execute(select(users.c.role))).scalar_one() == "admin"
