"""Two-factor sign-in with TOTP (issue 12, part 5): enrolment (a secret stored sealed, a
QR code made by the server, a confirming code, ten recovery codes shown once and stored
hashed), sign-in asking for the code after the password (the login page's second step
and `otp` of `POST /api/auth/login`), a code never accepted twice, stale codes refused,
guessing throttled, and turning it off with a code."""

from __future__ import annotations

import asyncio
import hashlib
import re
import time

import pyotp
import pytest
from sqlalchemy import select, update

from imagehost.accounts import twofactor
from imagehost.tables import login_failures, recovery_codes, users
from imagehost.typedefs import ENGINE
from tests.support.accounts import ACCOUNT_TIERS, browser_login, jwt_for, logged_in_token

pytestmark = pytest.mark.tiers(*ACCOUNT_TIERS)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def code_at(secret: str, offset_seconds: float = 0) -> str:
    return pyotp.TOTP(secret).at(time.time() + offset_seconds)


async def _row(client, user_id: str):
    async with client.server.app[ENGINE].connect() as conn:
        return (await conn.execute(select(users).where(users.c.id == user_id))).first()


async def _failures(client, account) -> int:
    """Failed sign-ins counted against this account's username."""
    lf = login_failures
    q = select(lf).where(lf.c.scope == "user", lf.c.subject == account.username.lower())
    async with client.server.app[ENGINE].connect() as conn:
        return len((await conn.execute(q)).all())


async def _forget_last_step(client, user_id: str) -> None:
    """As if the last code was used long ago (so the current code is new to the server)."""
    async with client.server.app[ENGINE].begin() as conn:
        await conn.execute(update(users).where(users.c.id == user_id).values(totp_last_step=0))


async def enable_totp(client, account) -> tuple[str, list[str]]:
    """Turn TOTP on through the API; the secret and the recovery codes. The confirming
    code's step is then forgotten, so the test may sign in with the current code."""
    token = await jwt_for(client, account)
    resp = await client.post("/api/account/totp", json={"password": account.password}, headers=_bearer(token))
    assert resp.status == 201, await resp.text()
    secret = (await resp.json())["secret"]
    resp = await client.post("/api/account/totp/confirm", json={"code": code_at(secret)}, headers=_bearer(token))
    assert resp.status == 200, await resp.text()
    codes = (await resp.json())["recovery_codes"]
    await _forget_last_step(client, account.id)
    return secret, codes


async def _login(client, account, otp: str | None = None, password: str | None = None):
    body = {"username": account.username, "password": password or account.password}
    if otp is not None:
        body["otp"] = otp
    resp = await client.post("/api/auth/login", json=body)
    return resp.status, await resp.json()


# --------------------------------------------------------------------------- enrolment


async def test_enrolment_stores_the_secret_sealed_and_turns_on_only_with_a_right_code(client, backend, make_user):
    account = await make_user()
    token = await jwt_for(client, account)
    resp = await client.post("/api/account/totp", json={"password": account.password}, headers=_bearer(token))
    body = await resp.json()
    assert resp.status == 201 and re.fullmatch(r"[A-Z2-7]{32}", body["secret"])
    assert body["otpauth_uri"].startswith("otpauth://totp/") and f"secret={body['secret']}" in body["otpauth_uri"]
    secret = body["secret"]
    row = await _row(client, account.id)
    assert row.totp_secret and secret not in row.totp_secret  # sealed, not plain
    assert row.totp_enabled_at is None  # not on yet: sign-in needs no code
    assert (await _login(client, account))[0] == 200

    wrong = await client.post("/api/account/totp/confirm", json={"code": "000000"}, headers=_bearer(token))
    stale = await client.post("/api/account/totp/confirm", json={"code": code_at(secret, -90)}, headers=_bearer(token))
    for resp in (wrong, stale):
        assert resp.status == 403 and (await resp.json())["code"] == "otp_invalid"
    assert (await _row(client, account.id)).totp_enabled_at is None

    resp = await client.post("/api/account/totp/confirm", json={"code": code_at(secret)}, headers=_bearer(token))
    codes = (await resp.json())["recovery_codes"]
    assert resp.status == 200 and len(codes) == len(set(codes)) == 10
    row = await _row(client, account.id)
    assert row.totp_enabled_at is not None and row.totp_last_step is not None
    async with client.server.app[ENGINE].connect() as conn:
        stored = {r.code_hash for r in await conn.execute(select(recovery_codes))}
    # Only hashes are kept: SHA-256 of the user id and the code (80 random bits each).
    assert stored == {hashlib.sha256(f"{account.id}:{c.replace('-', '')}".encode()).hexdigest() for c in codes}
    assert not any(c in h for c in codes for h in stored)

    again = await client.post("/api/account/totp", json={"password": account.password}, headers=_bearer(token))
    assert again.status == 409  # already on: turning it off comes first
    state = await client.get("/api/account", headers=_bearer(token))
    assert (await state.json())["two_factor"] == {"enabled": True, "pending": False, "recovery_codes_left": 10}


async def test_starting_enrolment_needs_the_password_and_confirming_needs_a_pending_one(client, backend, make_user):
    account = await make_user()
    token = await jwt_for(client, account)
    resp = await client.post("/api/account/totp", json={"password": "not the password"}, headers=_bearer(token))
    assert resp.status == 403 and (await resp.json())["code"] == "wrong_password"
    assert (await _row(client, account.id)).totp_secret is None
    resp = await client.post("/api/account/totp/confirm", json={"code": "123456"}, headers=_bearer(token))
    assert resp.status == 409 and (await resp.json())["code"] == "conflict"


def test_a_sealed_secret_opens_only_for_its_user_and_key():
    secret = twofactor.new_secret()
    sealed = twofactor.seal("k" * 40, "user-a", secret)
    assert len(sealed) <= 64  # fits users.totp_secret
    assert twofactor.unseal("k" * 40, "user-a", sealed) == secret
    assert twofactor.unseal("k" * 40, "user-b", sealed) is None  # copied onto another account
    assert twofactor.unseal("other" * 10, "user-a", sealed) is None  # another SECRET_KEY
    assert twofactor.unseal("k" * 40, "user-a", "garbage!") is None


# --------------------------------------------------------------------------- signing in (API)


async def test_the_api_asks_for_the_code_only_after_the_right_password(client, backend, make_user):
    account = await make_user()
    secret, _codes = await enable_totp(client, account)
    unknown = await client.post("/api/auth/login", json={"username": "nobody-at-all", "password": "whatever!!"})
    unknown_body = await unknown.json()

    # A wrong password answers exactly like a wrong password, with or without a code,
    # right or wrong: nothing says whether the password was right.
    for otp in (None, "", "000000", code_at(secret)):
        status, body = await _login(client, account, otp, password="not the password")
        assert (status, body) == (401, unknown_body), otp
    # The right password without a code: the code is needed.
    status, body = await _login(client, account)
    assert (status, body["code"]) == (401, "otp_required")
    status, body = await _login(client, account, "")
    assert (status, body["code"]) == (401, "otp_required")
    # A wrong code.
    status, body = await _login(client, account, "000000")
    assert (status, body["code"]) == (401, "otp_invalid")
    # The code sent with the wrong password above was not used up: it works now.
    status, body = await _login(client, account, code_at(secret))
    assert status == 200 and body["access_token"]
    assert (await client.get("/api/auth/me", headers=_bearer(body["access_token"]))).status == 200
    assert await _failures(client, account) == 0  # the whole sign-in succeeded: the username's failures cleared


async def test_a_code_cannot_be_used_twice_and_older_or_stale_codes_are_refused(client, backend, make_user):
    account = await make_user()
    secret, _codes = await enable_totp(client, account)
    ahead = code_at(secret, 30)  # the next step (clock drift allowance)
    assert (await _login(client, account, ahead))[0] == 200
    status, body = await _login(client, account, ahead)  # replayed
    assert (status, body["code"]) == (401, "otp_invalid")
    current = code_at(secret)  # a step before the last one used
    if current != ahead:
        assert (await _login(client, account, current))[1]["code"] == "otp_invalid"
    await _forget_last_step(client, account.id)
    for stale in (code_at(secret, -90), code_at(secret, 90)):  # three steps away
        if stale not in (code_at(secret, -30), code_at(secret), code_at(secret, 30)):
            assert (await _login(client, account, stale))[1]["code"] == "otp_invalid"
    assert (await _login(client, account, code_at(secret)))[0] == 200


async def test_a_recovery_code_signs_in_once(client, backend, make_user):
    account = await make_user()
    _secret, codes = await enable_totp(client, account)
    status, _ = await _login(client, account, codes[0].upper())  # case and dashes do not matter
    assert status == 200
    status, body = await _login(client, account, codes[0])
    assert (status, body["code"]) == (401, "otp_invalid")
    async with client.server.app[ENGINE].connect() as conn:
        used = [r for r in await conn.execute(select(recovery_codes)) if r.used_at is not None]
    assert len(used) == 1
    token = await jwt_for_otp(client, account, codes[1])
    state = await client.get("/api/account", headers=_bearer(token))
    assert (await state.json())["two_factor"]["recovery_codes_left"] == 8


async def jwt_for_otp(client, account, otp: str) -> str:
    status, body = await _login(client, account, otp)
    assert status == 200, body
    return body["access_token"]


async def test_guessing_codes_is_throttled_even_with_the_right_password(client, backend, make_user):
    account = await make_user()
    secret, _codes = await enable_totp(client, account)
    valid = {code_at(secret, s) for s in (-60, -30, 0, 30, 60)}
    guesses = [g for g in (f"{n:06d}" for n in range(100)) if g not in valid][:10]
    for n, guess in enumerate(guesses):
        status, body = await _login(client, account, guess)
        assert (status, body["code"]) == (401, "otp_invalid")
        if n < 9:  # the right password alone does not reset the count
            assert (await _login(client, account))[1]["code"] == "otp_required"
    assert await _failures(client, account) == 10
    resp = await client.post(
        "/api/auth/login", json={"username": account.username, "password": account.password, "otp": code_at(secret)}
    )
    assert resp.status == 429 and int(resp.headers["Retry-After"]) >= 1
    assert (await _row(client, account.id)).totp_last_step == 0  # the right code was not even looked at


async def test_a_malformed_otp_is_refused_as_input(client, backend, make_user):
    account = await make_user()
    await enable_totp(client, account)
    resp = await client.post(
        "/api/auth/login", json={"username": account.username, "password": account.password, "otp": 123456}
    )
    body = await resp.json()
    assert resp.status == 422 and body["detail"]["field"] == "otp"
    assert await _failures(client, account) == 0


# --------------------------------------------------------------------------- signing in (pages)


async def test_the_login_page_asks_for_the_code_and_the_half_signed_in_state_grants_nothing(client, backend, make_user):
    account = await make_user()
    secret, _codes = await enable_totp(client, account)
    client.session.cookie_jar.clear()
    resp = await browser_login(client, account.username, account.password, next_path="/keys")
    assert resp.status == 303 and resp.headers["Location"] == "/login/otp"
    # Between the steps nothing is granted.
    assert (await client.get("/api/auth/me")).status == 401
    assert (await client.get("/gallery", allow_redirects=False)).status == 303
    page = await client.get("/login/otp")
    html = await page.text()
    assert page.status == 200 and 'autocomplete="one-time-code"' in html
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)

    wrong = await client.post("/login/otp", data={"csrf_token": csrf, "code": "000000"})
    assert wrong.status == 401 and "wrong" in await wrong.text()
    assert (await client.get("/api/auth/me")).status == 401
    resp = await client.post("/login/otp", data={"csrf_token": csrf, "code": code_at(secret)}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/keys"
    assert (await client.get("/api/auth/me")).status == 200


async def test_the_login_page_refuses_a_wrong_password_the_same_way_with_totp_on(client, backend, make_user):
    account = await make_user()
    await enable_totp(client, account)
    client.session.cookie_jar.clear()
    resp = await browser_login(client, account.username, "not the password")
    assert resp.status == 200 and "Invalid username or password." in await resp.text()
    assert (await client.get("/login/otp", allow_redirects=False)).headers["Location"] == "/login"


async def test_the_second_step_is_throttled(client, backend, make_user):
    account = await make_user()
    secret, _codes = await enable_totp(client, account)
    client.session.cookie_jar.clear()
    await browser_login(client, account.username, account.password)
    html = await (await client.get("/login/otp")).text()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    for _ in range(10):
        resp = await client.post("/login/otp", data={"csrf_token": csrf, "code": "abcdef"})
        assert resp.status == 401
    resp = await client.post("/login/otp", data={"csrf_token": csrf, "code": code_at(secret)})
    assert resp.status == 429 and "Too many failed attempts" in await resp.text()
    assert (await client.get("/api/auth/me")).status == 401


async def test_the_account_page_enrols_with_a_server_made_qr_code_and_shows_recovery_codes_once(
    client, backend, make_user
):
    account = await make_user()
    csrf = await logged_in_token(client, account)
    resp = await client.post("/account/totp", data={"csrf_token": csrf, "password": account.password})
    assert resp.status == 200
    html = await resp.text()
    assert 'src="data:image/svg+xml' in html  # the QR code, made here: no image from another host
    csp = resp.headers["Content-Security-Policy"]
    assert "img-src 'self' data:" in csp
    secret = re.search(r'data-secret="([A-Z2-7]{32})"', html).group(1)

    resp = await client.post("/account/totp/confirm", data={"csrf_token": csrf, "code": "000000"})
    assert resp.status == 403 and "wrong" in await resp.text()
    resp = await client.post("/account/totp/confirm", data={"csrf_token": csrf, "code": code_at(secret)})
    html = await resp.text()
    shown = re.findall(r"<li><code>([a-z2-9-]{19})</code></li>", html)
    assert resp.status == 200 and len(shown) == 10 and "Two-factor sign-in is on." in html
    again = await (await client.get("/account")).text()
    assert not any(code in again for code in shown)  # shown once
    assert "10 recovery codes left" in again

    # Turning it off: a used or wrong code changes nothing; a recovery code works.
    await _login_pages_code_used(client, account, shown[0])
    resp = await client.post("/account/totp/disable", data={"csrf_token": csrf, "code": shown[0]})
    assert resp.status == 403 and (await _row(client, account.id)).totp_enabled_at is not None
    resp = await client.post("/account/totp/disable", data={"csrf_token": csrf, "code": shown[1]})
    assert resp.status == 200 and "Two-factor sign-in is off." in await resp.text()
    row = await _row(client, account.id)
    assert row.totp_enabled_at is None and row.totp_secret is None
    async with client.server.app[ENGINE].connect() as conn:
        assert (await conn.execute(select(recovery_codes))).first() is None
    assert (await _login_api_without_cookie(client, account)) == 200  # no code asked any more


async def _login_pages_code_used(client, account, code: str) -> None:
    """Use a recovery code to sign in through the API (a cookie-less request)."""
    jar = client.session.cookie_jar
    saved = list(jar)
    jar.clear()
    status, _ = await _login(client, account, code)
    assert status == 200
    for morsel in saved:
        jar.update_cookies({morsel.key: morsel.value}, response_url=client.make_url("/"))


async def _login_api_without_cookie(client, account) -> int:
    jar = client.session.cookie_jar
    saved = list(jar)
    jar.clear()
    status, _ = await _login(client, account)
    for morsel in saved:
        jar.update_cookies({morsel.key: morsel.value}, response_url=client.make_url("/"))
    return status


async def test_turning_off_with_a_wrong_code_changes_nothing_and_is_throttled(client, backend, make_user):
    account = await make_user()
    secret, _codes = await enable_totp(client, account)
    token = await jwt_for_otp(client, account, code_at(secret))
    before = await _row(client, account.id)
    for _ in range(10):
        resp = await client.post("/api/account/totp/disable", json={"code": "nope"}, headers=_bearer(token))
        assert resp.status == 403 and (await resp.json())["code"] == "otp_invalid"
    assert await _row(client, account.id) == before
    resp = await client.post("/api/account/totp/disable", json={"code": code_at(secret, 30)}, headers=_bearer(token))
    assert resp.status == 429
    assert (await _row(client, account.id)).totp_enabled_at is not None


async def test_two_requests_racing_with_one_code_let_one_in(client, backend, make_user):
    account = await make_user()
    secret, _codes = await enable_totp(client, account)
    code = code_at(secret)
    results = await asyncio.gather(*(_login(client, account, code) for _ in range(3)))
    assert sorted(status for status, _ in results) == [200, 401, 401]


async def test_the_second_step_starts_again_if_the_password_changed_meanwhile(client, backend, make_user):
    account = await make_user()
    secret, _codes = await enable_totp(client, account)
    client.session.cookie_jar.clear()
    await browser_login(client, account.username, account.password)
    html = await (await client.get("/login/otp")).text()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    async with client.server.app[ENGINE].begin() as conn:  # a password change elsewhere
        await conn.execute(update(users).where(users.c.id == account.id).values(auth_version=users.c.auth_version + 1))
    resp = await client.post("/login/otp", data={"csrf_token": csrf, "code": code_at(secret)}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/login"
    assert (await client.get("/api/auth/me")).status == 401
    assert (await _row(client, account.id)).totp_last_step == 0  # the code was not spent
