"""Account pages: login (the landing page), register, logout, API keys; redirects after
login, session rotation and cookies, security headers."""

from __future__ import annotations

import re

import pytest

from imagehost.accounts.pages import safe_next
from tests.support.accounts import (
    ACCOUNT_TIERS,
    browser_login,
    csrf_of,
    logged_in_token,
    page_token,
    session_cookie,
    set_cookie_headers,
)

pytestmark = pytest.mark.tiers(*ACCOUNT_TIERS)


# --------------------------------------------------------------------------- login


async def test_landing_and_login_pages_show_the_login_form(client, backend):
    for path in ("/", "/login"):
        resp = await client.get(path)
        html = await resp.text()
        assert resp.status == 200
        assert 'action="/login"' in html and 'name="password"' in html
        assert 'href="/register"' in html  # registration is open


async def test_login_redirects_to_the_gallery_and_the_session_identifies_the_user(client, backend, make_user):
    account = await make_user()
    resp = await browser_login(client, account.username, account.password)
    assert resp.status == 303
    assert resp.headers["Location"] == "/gallery"
    me = await client.get("/api/auth/me")
    assert me.status == 200 and (await me.json())["id"] == account.id


async def test_logged_in_visitor_of_the_login_page_goes_to_the_gallery(client, backend, make_user):
    account = await make_user()
    await logged_in_token(client, account)
    for path in ("/", "/login", "/register"):
        resp = await client.get(path, allow_redirects=False)
        assert resp.status == 303 and resp.headers["Location"] == "/gallery", path


async def test_wrong_password_shows_the_form_again_with_a_generic_error(client, backend, make_user):
    account = await make_user()
    resp = await browser_login(client, account.username, "wrong password!")
    html = await resp.text()
    assert resp.status == 200
    assert "Invalid username or password." in html
    assert f'value="{account.username}"' in html  # the username is kept
    assert (await client.get("/api/auth/me")).status == 401


async def test_login_form_with_nothing_filled_in_is_422(client, backend):
    token = await page_token(client)
    resp = await client.post("/login", data={"csrf_token": token}, allow_redirects=False)
    assert resp.status == 422
    assert "Enter your username and password." in await resp.text()


async def test_login_form_with_bidi_or_nul_in_the_username_is_422_and_not_echoed(client, backend):
    token = await page_token(client)
    for name in ("bob\u202eevil", "bob\x00", "b" * 51):
        resp = await client.post(
            "/login", data={"username": name, "password": "whatever1", "csrf_token": token}, allow_redirects=False
        )
        assert resp.status == 422
        assert name not in await resp.text()


async def test_login_follows_a_local_next(client, backend, make_user):
    account = await make_user()
    resp = await browser_login(client, account.username, account.password, next_path="/keys?tab=1")
    assert resp.status == 303 and resp.headers["Location"] == "/keys?tab=1"


OPEN_REDIRECTS = [
    "//evil.example",
    "//evil.example/",
    "///evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "https://evil.example",
    "http://evil.example/gallery",
    "HTTPS://evil.example",
    "javascript:alert(1)",
    "JavaScript:alert(1)",
    "data:text/html,hi",
    "evil.example",
    "/%2F%2Fevil.example",
    "/%2f%2fevil.example",
    "%2F%2Fevil.example",
    "/%5Cevil.example",
    "/%255C%255Cevil.example",
    "/\t/evil.example",
    "/\n/evil.example",
    "/%09/evil.example",
    " //evil.example",
    "/ /evil.example",
    "/\u3000/evil.example",
    "/\u202e/evil.example",
    "\x00//evil.example",
    "https:evil.example",
    "/" + "a" * 3000,
]


@pytest.mark.parametrize("target", OPEN_REDIRECTS)
async def test_login_never_redirects_off_site(client, backend, make_user, target):
    account = await make_user()
    resp = await browser_login(client, account.username, account.password, next_path=target)
    assert resp.status == 303
    assert resp.headers["Location"] == "/gallery"


@pytest.mark.parametrize("target", ["//evil.example", "https://evil.example", "/\\evil.example"])
async def test_logged_in_login_page_ignores_a_foreign_next(client, backend, make_user, target):
    account = await make_user()
    await logged_in_token(client, account)
    resp = await client.get("/login", params={"next": target}, allow_redirects=False)
    assert resp.headers["Location"] == "/gallery"


async def test_login_page_does_not_put_a_foreign_next_into_its_form(client, backend):
    resp = await client.get("/login", params={"next": "https://evil.example"})
    assert "evil.example" not in await resp.text()
    resp = await client.get("/login", params={"next": "/keys"})
    assert 'name="next" value="/keys"' in await resp.text()


@pytest.mark.parametrize(
    "target,expected",
    [
        ("/gallery", "/gallery"),
        ("/keys?x=1#y", "/keys?x=1#y"),
        ("/a/b%20c", "/a/b%20c"),
        ("/", "/"),
        ("//evil", ""),
        ("/\\evil", ""),
        ("https://evil", ""),
        ("javascript:x", ""),
        ("/%2F/evil", ""),
        ("", ""),
        (None, ""),
        ("/caf\u00e9", ""),
    ],
)
def test_safe_next_keeps_only_local_paths(target, expected):
    assert safe_next(target) == expected


async def test_anonymous_page_visit_redirects_to_login_with_next_and_back(client, backend, make_user):
    account = await make_user()
    resp = await client.get("/keys", allow_redirects=False)
    assert resp.status == 303
    location = resp.headers["Location"]
    assert location == "/login?next=/keys"
    page = await client.get(location)
    assert 'name="next" value="/keys"' in await page.text()
    resp = await browser_login(client, account.username, account.password, next_path="/keys")
    assert resp.headers["Location"] == "/keys"


# --------------------------------------------------------------------------- session and cookies


async def test_session_cookie_is_httponly_and_samesite_lax_and_not_secure_on_http(client, backend):
    resp = await client.get("/login")
    [header] = set_cookie_headers(resp)
    attrs = {a.strip().lower() for a in header.split(";")[1:]}
    assert "httponly" in attrs and "samesite=lax" in attrs and "path=/" in attrs
    assert "secure" not in attrs


async def test_session_cookie_is_rotated_at_login_and_the_old_csrf_token_dies(client, backend, make_user):
    account = await make_user()
    old_token = await page_token(client, "/login")
    old_cookie = session_cookie(client)
    resp = await client.post(
        "/login",
        data={"username": account.username, "password": account.password, "csrf_token": old_token},
        allow_redirects=False,
    )
    assert resp.status == 303
    assert set_cookie_headers(resp), "login sets a new cookie"
    new_cookie = session_cookie(client)
    assert new_cookie and new_cookie != old_cookie
    refused = await client.post("/keys", data={"name": "x", "csrf_token": old_token}, allow_redirects=False)
    assert refused.status == 403
    new_token = await page_token(client, "/keys")
    assert new_token != old_token
    ok = await client.post("/keys", data={"name": "x", "csrf_token": new_token}, allow_redirects=False)
    assert ok.status == 303  # created, then shown by the GET it redirects to


async def test_the_pre_login_cookie_does_not_become_logged_in(client, backend, make_user):
    """Session fixation: whoever holds the anonymous cookie learns nothing from the login."""
    account = await make_user()
    await page_token(client, "/login")
    fixed = session_cookie(client)
    await browser_login(client, account.username, account.password)
    client.session.cookie_jar.clear()
    resp = await client.get("/api/auth/me", cookies={"imagehost_session": fixed})
    assert resp.status == 401


async def test_logout_clears_the_cookie_and_kills_copies_of_it(client, backend, make_user):
    account = await make_user()
    token = await logged_in_token(client, account)
    stolen = session_cookie(client)
    resp = await client.post("/logout", data={"csrf_token": token}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/"
    [header] = set_cookie_headers(resp)
    assert re.match(r'imagehost_session="?"?;', header)  # emptied
    assert "max-age=0" in header.lower() or "expires=thu, 01 jan 1970" in header.lower()
    assert (await client.get("/api/auth/me")).status == 401
    assert (await client.get("/keys", allow_redirects=False)).status == 303
    # a copy of the cookie taken before logout is dead too
    client.session.cookie_jar.clear()
    replay = await client.get("/api/auth/me", cookies={"imagehost_session": stolen})
    assert replay.status == 401


async def test_logout_of_one_session_leaves_another_alone(client, backend, make_user, aiohttp_client):
    account = await make_user()
    other = await aiohttp_client(client.server)  # the same server, a second browser
    await logged_in_token(other, account)
    token = await logged_in_token(client, account)
    await client.post("/logout", data={"csrf_token": token}, allow_redirects=False)
    assert (await client.get("/api/auth/me")).status == 401
    assert (await other.get("/api/auth/me")).status == 200


async def test_logout_is_post_only(client, backend, make_user):
    account = await make_user()
    await logged_in_token(client, account)
    assert (await client.get("/logout", allow_redirects=False)).status == 405
    assert (await client.get("/api/auth/me")).status == 200


async def test_security_headers_on_account_pages(client, backend, make_user):
    account = await make_user()
    pages = ["/", "/login", "/register"]
    responses = [await client.get(p) for p in pages]
    responses.append(await browser_login(client, account.username, "wrong password!"))
    await logged_in_token(client, account)
    responses.append(await client.get("/keys"))
    for resp in responses:
        csp = resp.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Referrer-Policy"]
        assert resp.headers["Cache-Control"] == "no-store"
        assert "<script>" not in await resp.text()  # no inline script


# --------------------------------------------------------------------------- register


async def test_register_page_creates_the_account_and_logs_in(client, backend, db_count):
    token = await page_token(client, "/register")
    before = session_cookie(client)
    resp = await client.post(
        "/register",
        data={
            "username": "dora",
            "email": "dora@example.com",
            "password": "correct horse battery",
            "csrf_token": token,
        },
        allow_redirects=False,
    )
    assert resp.status == 303 and resp.headers["Location"] == "/gallery"
    assert session_cookie(client) != before
    me = await client.get("/api/auth/me")
    assert (await me.json())["username"] == "dora"
    assert await db_count("users") == 1


async def test_register_page_shows_field_errors_and_keeps_values(client, backend, db_count):
    token = await page_token(client, "/register")
    resp = await client.post(
        "/register", data={"username": "d", "email": "dora@example.com", "password": "short", "csrf_token": token}
    )
    html = await resp.text()
    assert resp.status == 422
    assert 'id="reg-username-error"' in html and 'id="reg-password-error"' in html
    assert 'id="reg-email-error"' not in html
    assert 'value="dora@example.com"' in html
    assert "short" not in html  # the password is never echoed
    assert await db_count("users") == 0


async def test_register_page_duplicate_in_other_case_is_409(client, backend, make_user, db_count):
    await make_user("Erin")
    token = await page_token(client, "/register")
    resp = await client.post(
        "/register",
        data={"username": "ERIN", "email": "new@example.com", "password": "correct horse battery", "csrf_token": token},
    )
    assert resp.status == 409
    assert "already taken" in await resp.text()
    assert await db_count("users") == 1


async def test_register_page_does_not_echo_bidi_input(client, backend):
    token = await page_token(client, "/register")
    resp = await client.post(
        "/register",
        data={
            "username": "x\u202ey",
            "email": "a\u202e@example.com",
            "password": "correct horse battery",
            "csrf_token": token,
        },
    )
    html = await resp.text()
    assert resp.status == 422
    assert "\u202e" not in html


# --------------------------------------------------------------------------- keys page


async def test_keys_page_creates_lists_and_revokes(client, backend, make_user, db_count):
    account = await make_user()
    token = await logged_in_token(client, account)
    resp = await client.post("/keys", data={"name": "Flameshot laptop", "csrf_token": token})
    html = await resp.text()
    assert resp.status == 200
    assert resp.headers["Cache-Control"] == "no-store"
    secret = re.search(r'value="(ih_[A-Za-z0-9_-]{43})"', html).group(1)
    me = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {secret}"})
    # the client carries a cookie, but a GET needs no CSRF token; the key identifies the user
    assert (await me.json())["id"] == account.id
    listing = await (await client.get("/keys")).text()
    assert "Flameshot laptop" in listing and secret not in listing  # shown once only
    key_id = re.search(r'action="/keys/([^/]+)/revoke"[^>]*\s*data-confirm="[^"]*Flameshot', listing)
    key_id = key_id.group(1) if key_id else None
    assert key_id
    resp = await client.post(f"/keys/{key_id}/revoke", data={"csrf_token": token}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/keys"
    client.session.cookie_jar.clear()
    assert (await client.get("/api/auth/me", headers={"Authorization": f"Bearer {secret}"})).status == 401


async def test_keys_page_refuses_a_bad_name_with_422(client, backend, make_user, db_count):
    account = await make_user()
    token = await logged_in_token(client, account)
    for name in ("", "x" * 101, "a\u202eb"):
        resp = await client.post("/keys", data={"name": name, "csrf_token": token})
        assert resp.status == 422
        assert 'id="key-error"' in await resp.text()
    assert await db_count("api_keys") == 1


async def test_keys_page_and_actions_send_anonymous_visitors_to_login(client, backend):
    resp = await client.get("/keys", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/login")
    token = await page_token(client, "/login")  # an anonymous session with a valid token
    for path in ("/keys", "/keys/abc/revoke"):
        resp = await client.post(path, data={"name": "x", "csrf_token": token}, allow_redirects=False)
        assert resp.status == 303 and resp.headers["Location"] == "/login", path


async def test_revoking_an_unknown_key_from_the_page_is_404(client, backend, make_user):
    account = await make_user()
    token = await logged_in_token(client, account)
    resp = await client.post("/keys/nope/revoke", data={"csrf_token": token}, allow_redirects=False)
    assert resp.status == 404


# --------------------------------------------------------------------------- settings that change the pages

CLOSED = pytest.mark.parametrize("settings_overrides", [{"registration_open": False}], ids=["registration-closed"])
HTTPS = pytest.mark.parametrize("settings_overrides", [{"public_base_url": "https://img.example.com"}], ids=["https"])


@CLOSED
async def test_closed_registration_refuses_the_api_with_403(client, backend, db_count, make_user):
    await make_user()  # the first account of an empty instance may always register (issue 12)
    resp = await client.post(
        "/api/auth/register",
        json={"username": "late", "email": "late@example.com", "password": "correct horse battery"},
    )
    assert resp.status == 403
    assert await resp.json() == {"error": "registration is closed", "code": "registration_closed", "detail": None}
    assert await db_count("users") == 1


@CLOSED
async def test_closed_registration_page_says_so_and_the_form_post_creates_nothing(client, backend, db_count, make_user):
    await make_user()  # the first account of an empty instance may always register (issue 12)
    page = await client.get("/register")
    html = await page.text()
    assert page.status == 403
    assert "Registration is closed." in html and 'action="/register"' not in html
    token = csrf_of(html)
    resp = await client.post(
        "/register",
        data={
            "username": "late",
            "email": "late@example.com",
            "password": "correct horse battery",
            "csrf_token": token,
        },
        allow_redirects=False,
    )
    assert resp.status == 403
    assert await db_count("users") == 1
    login = await (await client.get("/login")).text()
    assert 'href="/register"' not in login.split("<main", 1)[1].split("</main>", 1)[0]


@CLOSED
async def test_closed_registration_still_lets_existing_users_log_in(client, backend, make_user):
    account = await make_user()
    assert (await browser_login(client, account.username, account.password)).status == 303


@HTTPS
async def test_session_cookie_is_secure_when_the_public_url_is_https(client, backend):
    resp = await client.get("/login")
    [header] = set_cookie_headers(resp)
    attrs = {a.strip().lower() for a in header.split(";")[1:]}
    assert {"secure", "httponly", "samesite=lax"} <= attrs
