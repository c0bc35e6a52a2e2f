"""Login throttling (counted in the database) and account enumeration."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from imagehost.accounts import passwords, service, throttle
from imagehost.app import create_app
from imagehost.db import transaction
from imagehost.tables import login_failures
from imagehost.typedefs import ENGINE
from tests.support.accounts import ACCOUNT_TIERS, browser_login, page_token

pytestmark = pytest.mark.tiers(*ACCOUNT_TIERS)


async def api_login(client, username: str, password: str, headers: dict | None = None):
    return await client.post(
        "/api/auth/login", json={"username": username, "password": password}, headers=headers or {}
    )


async def fail(client, username: str, times: int, headers: dict | None = None) -> None:
    for _ in range(times):
        resp = await api_login(client, username, "wrong password!", headers)
        assert resp.status == 401, await resp.text()


async def age_failures(client, by: timedelta) -> None:
    """Move every recorded failure `by` into the past (in Python: SQLite has no interval arithmetic)."""
    lf = login_failures
    async with transaction(client.server.app[ENGINE]) as conn:
        rows = (await conn.execute(select(lf.c.id, lf.c.failed_at))).all()
        for row_id, failed_at in rows:
            await conn.execute(update(lf).where(lf.c.id == row_id).values(failed_at=failed_at - by))


async def test_ten_failures_for_a_username_answer_429_with_retry_after(client, backend, make_user):
    account = await make_user()
    await fail(client, account.username, 10)
    resp = await api_login(client, account.username, account.password)  # even the right password
    body = await resp.json()
    assert resp.status == 429
    retry = int(resp.headers["Retry-After"])
    assert 1 <= retry <= 15 * 60
    assert set(body) == {"error", "code", "detail"} and body["detail"]["retry_after"] == retry
    assert "access_token" not in body


async def test_nine_failures_still_allow_the_right_password(client, backend, make_user):
    account = await make_user()
    await fail(client, account.username, 9)
    assert (await api_login(client, account.username, account.password)).status == 200


async def test_the_username_count_ignores_case(client, backend, make_user):
    account = await make_user("CaseUser")
    await fail(client, "caseuser", 5)
    await fail(client, "CASEUSER", 5)
    assert (await api_login(client, "CaseUser", account.password)).status == 429


async def test_throttled_attempts_are_not_counted_and_never_reach_bcrypt(
    client, backend, make_user, db_count, monkeypatch
):
    account = await make_user()
    await fail(client, account.username, 10)
    rows = await db_count("login_failures")
    calls = []
    monkeypatch.setattr(service, "verify_password", lambda *a: calls.append(a))
    for _ in range(3):
        assert (await api_login(client, account.username, "wrong password!")).status == 429
    assert calls == []
    assert await db_count("login_failures") == rows


async def test_the_throttle_lifts_when_failures_leave_the_15_minute_window(client, backend, make_user):
    account = await make_user()
    await fail(client, account.username, 10)
    assert (await api_login(client, account.username, account.password)).status == 429
    await age_failures(client, timedelta(minutes=14))
    resp = await api_login(client, account.username, account.password)
    assert resp.status == 429 and int(resp.headers["Retry-After"]) <= 60
    await age_failures(client, timedelta(minutes=1, seconds=1))
    assert (await api_login(client, account.username, account.password)).status == 200


async def test_a_success_clears_the_username_count(client, backend, make_user):
    account = await make_user()
    await fail(client, account.username, 9)
    assert (await api_login(client, account.username, account.password)).status == 200
    await fail(client, account.username, 9)  # 18 in the window had the count survived
    assert (await api_login(client, account.username, account.password)).status == 200


async def test_a_success_does_not_clear_the_address_count(client, backend, make_user, db_count):
    account = await make_user()
    await fail(client, "someone_else", 5)
    assert (await api_login(client, account.username, account.password)).status == 200
    assert await db_count("login_failures", scope="addr") == 5
    assert await db_count("login_failures", scope="user") == 5


async def test_expired_rows_are_pruned(client, backend, make_user, db_count, monkeypatch):
    monkeypatch.setattr(throttle, "PRUNE_EVERY", 10**12)  # no table-wide prune by chance here
    account = await make_user()
    await fail(client, account.username, 3)
    await age_failures(client, timedelta(minutes=16))
    await fail(client, account.username, 1)  # prunes this username's old rows
    assert await db_count("login_failures", scope="user") == 1
    async with transaction(client.server.app[ENGINE]) as conn:
        from imagehost.db import utcnow

        removed = await throttle.prune(conn, utcnow())
    assert removed == 3  # the three old address rows
    assert await db_count("login_failures") == 2


async def test_failures_now_and_then_prune_the_whole_table(client, backend, db_count, monkeypatch):
    await fail(client, "first_user", 2)
    await age_failures(client, timedelta(minutes=16))
    monkeypatch.setattr(throttle, "PRUNE_EVERY", 1)  # this time, for sure
    await fail(client, "second_user", 1)
    assert await db_count("login_failures") == 2  # only the fresh pair is left


async def test_html_login_is_throttled_too_with_a_429_page(client, backend, make_user):
    account = await make_user()
    await fail(client, account.username, 10)
    resp = await browser_login(client, account.username, account.password)
    html = await resp.text()
    assert resp.status == 429
    assert 1 <= int(resp.headers["Retry-After"]) <= 900
    assert "Too many failed attempts" in html and 'action="/login"' in html
    assert (await client.get("/api/auth/me")).status == 401


async def test_html_and_api_failures_share_one_count(client, backend, make_user):
    account = await make_user()
    await fail(client, account.username, 5)
    token = await page_token(client)
    for _ in range(5):
        resp = await client.post(
            "/login", data={"username": account.username, "password": "wrong password!", "csrf_token": token}
        )
        assert resp.status == 200
    client.session.cookie_jar.clear()  # a script, not the browser
    assert (await api_login(client, account.username, account.password)).status == 429


@pytest.mark.parametrize("settings_overrides", [{"trusted_proxies": ("127.0.0.1/32",)}], ids=["behind-proxy"])
async def test_thirty_failures_from_one_address_throttle_that_address_only(client, backend, make_user):
    account = await make_user()
    attacker = {"X-Forwarded-For": "203.0.113.7"}
    for n in range(30):  # spread over many usernames: no single username reaches its limit
        resp = await api_login(client, f"victim{n % 4}", "wrong password!", attacker)
        assert resp.status == 401
    resp = await api_login(client, account.username, account.password, attacker)
    assert resp.status == 429 and int(resp.headers["Retry-After"]) >= 1
    # another address is not affected, and the account itself is not locked
    elsewhere = {"X-Forwarded-For": "198.51.100.2"}
    assert (await api_login(client, account.username, account.password, elsewhere)).status == 200


async def test_forwarded_for_from_an_untrusted_peer_cannot_dodge_the_address_count(client, backend, make_user):
    account = await make_user()
    for n in range(30):
        resp = await api_login(client, f"victim{n % 4}", "wrong password!", {"X-Forwarded-For": f"198.51.100.{n}"})
        assert resp.status == 401
    assert (await api_login(client, account.username, account.password)).status == 429


async def test_throttle_counts_across_two_app_instances_sharing_a_database(client, backend, make_user, aiohttp_client):
    account = await make_user()
    second = await aiohttp_client(create_app(backend.settings))
    for _ in range(5):
        assert (await api_login(client, account.username, "wrong password!")).status == 401
        assert (await api_login(second, account.username, "wrong password!")).status == 401
    assert (await api_login(client, account.username, account.password)).status == 429
    assert (await api_login(second, account.username, account.password)).status == 429


# --------------------------------------------------------------------------- enumeration


async def test_unknown_user_and_wrong_password_get_the_same_answer(client, backend, make_user):
    account = await make_user()
    wrong = await api_login(client, account.username, "wrong password!")
    unknown = await api_login(client, "nobody_here", "wrong password!")
    assert wrong.status == unknown.status == 401
    assert await wrong.json() == await unknown.json()
    assert wrong.headers["WWW-Authenticate"] == unknown.headers["WWW-Authenticate"]
    wrong_page = await browser_login(client, account.username, "wrong password!")
    unknown_page = await browser_login(client, "nobody_here", "wrong password!")
    assert wrong_page.status == unknown_page.status

    def normalise(html: str, name: str) -> str:
        """The echoed username and the CSRF token differ by design; nothing else may."""
        return re.sub(r'content="[^"]+"|value="[A-Za-z0-9_-]{40,}"', "TOKEN", html.replace(name, "NAME"))

    assert normalise(await wrong_page.text(), account.username) == normalise(await unknown_page.text(), "nobody_here")


async def test_unknown_user_is_checked_against_a_dummy_hash_of_the_same_cost(client, backend, make_user, monkeypatch):
    account = await make_user()
    seen: list[str] = []
    real = passwords.verify_password

    async def spy(password: str, hashed: str) -> bool:
        seen.append(hashed)
        return await real(password, hashed)

    monkeypatch.setattr(service, "verify_password", spy)
    await api_login(client, "nobody_here", "wrong password!")
    await api_login(client, account.username, "wrong password!")
    rounds = backend.settings.bcrypt_rounds
    assert seen[0] == passwords.dummy_hash(rounds)
    assert seen[0].split("$")[2] == seen[1].split("$")[2] == f"{rounds:02d}"
    assert seen[1] != seen[0]


async def test_unknown_usernames_are_throttled_like_real_ones(client, backend):
    await fail(client, "nobody_here", 10)
    resp = await api_login(client, "nobody_here", "wrong password!")
    assert resp.status == 429
