"""CSRF on every cookie-authenticated state-changing request: forms and JavaScript alike,
checked from headers plus a token; bearer calls without a cookie are exempt."""

from __future__ import annotations

import pytest

from tests.support.accounts import ACCOUNT_TIERS, jwt_for, logged_in_token, page_token

pytestmark = pytest.mark.tiers(*ACCOUNT_TIERS)


async def test_form_without_a_token_is_403_and_does_nothing(client, backend, make_user, db_count):
    account = await make_user()
    await logged_in_token(client, account)
    for path, data in (("/keys", {"name": "x"}), ("/logout", {})):
        resp = await client.post(path, data=data, allow_redirects=False)
        assert resp.status == 403, path
    assert await db_count("api_keys") == 1
    assert (await client.get("/api/auth/me")).status == 200  # still logged in: logout did not happen


async def test_form_with_a_wrong_token_is_403(client, backend, make_user, db_count):
    account = await make_user()
    token = await logged_in_token(client, account)
    for wrong in ("", "x", token[:-1], token + "x", token.upper() if token.upper() != token else token.lower()):
        resp = await client.post("/keys", data={"name": "x", "csrf_token": wrong}, allow_redirects=False)
        assert resp.status == 403, wrong
    assert await db_count("api_keys") == 1


async def test_a_redirecting_form_handler_is_refused_without_a_valid_token(client, backend, make_user):
    account = await make_user()
    await logged_in_token(client, account)
    key_id = (await (await client.get("/api/keys")).json())["keys"][0]["id"]
    resp = await client.post(f"/keys/{key_id}/revoke", data={"csrf_token": "forged"}, allow_redirects=False)
    assert resp.status == 403
    assert (await client.get("/api/auth/me", headers=account.auth)).status == 200  # the key still works


async def test_foreign_origin_is_403_even_with_the_right_token(client, backend, make_user, db_count):
    account = await make_user()
    token = await logged_in_token(client, account)
    for origin in ("https://evil.example", "null", "http://localhost:8000.evil.example"):
        resp = await client.post(
            "/keys", data={"name": "x", "csrf_token": token}, headers={"Origin": origin}, allow_redirects=False
        )
        assert resp.status == 403, origin
    assert await db_count("api_keys") == 1
    same = await client.post(
        "/keys", data={"name": "x", "csrf_token": token}, headers={"Origin": str(client.make_url("/")).rstrip("/")}
    )
    assert same.status == 200


@pytest.mark.parametrize("site", ["cross-site", "same-site"])
async def test_cross_site_fetch_metadata_is_403(client, backend, make_user, site, db_count):
    account = await make_user()
    token = await logged_in_token(client, account)
    resp = await client.post("/keys", data={"name": "x", "csrf_token": token}, headers={"Sec-Fetch-Site": site})
    assert resp.status == 403
    resp = await client.post("/api/keys", json={"name": "x"}, headers={"Sec-Fetch-Site": site, "X-CSRF-Token": token})
    assert resp.status == 403
    assert await db_count("api_keys") == 1


async def test_same_origin_fetch_metadata_passes(client, backend, make_user):
    account = await make_user()
    token = await logged_in_token(client, account)
    resp = await client.post(
        "/keys", data={"name": "x", "csrf_token": token}, headers={"Sec-Fetch-Site": "same-origin"}
    )
    assert resp.status == 200


async def test_login_form_without_a_session_is_403(client, backend, make_user):
    """Login CSRF: a foreign page cannot log the victim into the attacker's account."""
    account = await make_user()
    resp = await client.post(
        "/login", data={"username": account.username, "password": account.password}, allow_redirects=False
    )
    assert resp.status == 403
    assert "Set-Cookie" not in resp.headers or "uid" not in resp.headers["Set-Cookie"]
    assert (await client.get("/api/auth/me")).status == 401


async def test_login_form_with_a_session_but_no_token_is_403(client, backend, make_user):
    account = await make_user()
    await page_token(client, "/login")
    resp = await client.post(
        "/login", data={"username": account.username, "password": account.password}, allow_redirects=False
    )
    assert resp.status == 403
    assert (await client.get("/api/auth/me")).status == 401


async def test_register_form_without_token_is_403(client, backend, db_count):
    await page_token(client, "/register")
    resp = await client.post(
        "/register", data={"username": "eve", "email": "eve@example.com", "password": "correct horse battery"}
    )
    assert resp.status == 403
    assert await db_count("users") == 0


async def test_json_with_the_session_cookie_needs_the_csrf_header(client, backend, make_user, db_count):
    account = await make_user()
    token = await logged_in_token(client, account)
    assert (await client.post("/api/keys", json={"name": "x"})).status == 403
    assert (await client.post("/api/keys", json={"name": "x"}, headers={"X-CSRF-Token": "wrong"})).status == 403
    key_id = (await (await client.get("/api/keys")).json())["keys"][0]["id"]
    assert (await client.delete(f"/api/keys/{key_id}")).status == 403
    assert await db_count("api_keys") == 1
    resp = await client.post("/api/keys", json={"name": "x"}, headers={"X-CSRF-Token": token})
    assert resp.status == 201
    assert (await client.delete(f"/api/keys/{key_id}", headers={"X-CSRF-Token": token})).status == 204


async def test_csrf_refusal_under_api_is_the_json_envelope(client, backend, make_user):
    account = await make_user()
    await logged_in_token(client, account)
    resp = await client.post("/api/keys", json={"name": "x"})
    assert resp.status == 403
    body = await resp.json()
    assert set(body) == {"error", "code", "detail"} and "CSRF" in body["error"]


async def test_bearer_calls_without_a_cookie_are_exempt(client, backend, make_user, db_count):
    account = await make_user()
    token = await jwt_for(client, account)
    assert not client.session.cookie_jar.filter_cookies(client.make_url("/"))
    headers = {
        "Authorization": f"Bearer {token}",
        "Origin": "https://elsewhere.example",
        "Sec-Fetch-Site": "cross-site",
    }
    resp = await client.post("/api/keys", json={"name": "script"}, headers=headers)
    assert resp.status == 201
    key_id = (await resp.json())["id"]
    assert (await client.delete(f"/api/keys/{key_id}", headers=account.auth)).status == 204


async def test_session_csrf_token_from_another_session_is_refused(client, backend, make_user, aiohttp_client):
    alice, bob = await make_user(), await make_user()
    other = await aiohttp_client(client.server)
    bobs_token = await logged_in_token(other, bob)
    await logged_in_token(client, alice)
    resp = await client.post("/keys", data={"name": "x", "csrf_token": bobs_token})
    assert resp.status == 403


# --------------------------------------------------------------------------- the middleware on a bare app


def bare_app():
    import hashlib

    from aiohttp import web
    from aiohttp_session import session_middleware
    from aiohttp_session.cookie_storage import EncryptedCookieStorage

    from imagehost.config import load_settings
    from imagehost.http.csrf import csrf_middleware, read_form
    from imagehost.http.errors import error_middleware
    from imagehost.typedefs import SETTINGS

    acted: list[str] = []

    async def redirects_unchecked(request):
        acted.append("redirect")
        raise web.HTTPSeeOther("/done")

    async def returns_unchecked(request):
        acted.append("return")
        return web.Response(text="ok")

    async def checks(request):
        await read_form(request)
        acted.append("checked")
        raise web.HTTPSeeOther("/done")

    app = web.Application(
        middlewares=[
            error_middleware,
            session_middleware(EncryptedCookieStorage(hashlib.sha256(b"k").digest(), cookie_name="imagehost_session")),
            csrf_middleware,
        ]
    )
    app[SETTINGS] = load_settings(_env_file=None, secret_key="s" * 40)
    app.router.add_post("/redirect", redirects_unchecked)
    app.router.add_post("/return", returns_unchecked)
    app.router.add_post("/checks", checks)
    app.router.add_post("/api/redirect", redirects_unchecked)
    return app, acted


async def test_middleware_refuses_an_unchecked_form_whether_the_handler_returns_or_redirects(aiohttp_client):
    app, _acted = bare_app()
    client = await aiohttp_client(app)
    json_please = {"Accept": "application/json"}
    for path in ("/redirect", "/return", "/checks"):
        resp = await client.post(path, data={"csrf_token": "anything"}, headers=json_please, allow_redirects=False)
        assert resp.status == 403, path
        assert (await resp.json())["error"] == "CSRF token missing or invalid"


async def test_middleware_lets_cookieless_api_calls_through_whatever_their_content_type(aiohttp_client):
    app, acted = bare_app()
    client = await aiohttp_client(app)
    resp = await client.post("/api/redirect", data={"a": "b"}, allow_redirects=False)
    assert resp.status == 303 and acted == ["redirect"]
