"""CSRF (imagehost/http/csrf.py) on a bare app: a cookie session, the error envelope (so a
refusal is a 403 a client can read), the CSRF middleware, and handlers that record
whether they ran. The whole app's login and form flows are in tests/accounts/test_csrf.py."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp_session import SimpleCookieStorage, session_middleware

from imagehost.accounts.identity import SESSION_COOKIE, csrf_token
from imagehost.config import load_settings
from imagehost.http.csrf import csrf_middleware, read_form
from imagehost.http.errors import error_middleware
from imagehost.typedefs import SETTINGS

SITE = "https://img.example.com"
REFUSED = {"error": "CSRF token missing or invalid", "code": "csrf_failed", "detail": None}


class Bare:
    def __init__(self, client, ran: list[str]):
        self.client, self.ran = client, ran

    async def start_session(self) -> str:
        """Visit a page, as a browser does first: a session cookie and its token."""
        resp = await self.client.get("/start")
        assert resp.status == 200
        assert SESSION_COOKIE in {c.key for c in self.client.session.cookie_jar}
        return await resp.text()


@pytest.fixture
async def bare(aiohttp_client) -> Bare:
    ran: list[str] = []

    async def start(request):
        return web.Response(text=await csrf_token(request))

    async def act(request):
        ran.append(request.path)
        return web.json_response({"done": True})

    async def form(request):
        await read_form(request)
        ran.append(request.path)
        return web.Response(text="saved")

    app = web.Application(
        middlewares=[
            error_middleware,
            session_middleware(SimpleCookieStorage(cookie_name=SESSION_COOKIE)),
            csrf_middleware,
        ]
    )
    app[SETTINGS] = load_settings(_env_file=None, secret_key="k" * 40, public_base_url=SITE)
    app.router.add_get("/start", start)
    app.router.add_route("*", "/api/act", act)
    app.router.add_post("/form", form)
    app.router.add_post("/form-unread", act)
    app.router.add_post("/d/{secret}", act)
    return Bare(await aiohttp_client(app), ran)


async def test_safe_methods_are_never_checked(bare):
    await bare.start_session()
    resp = await bare.client.get("/api/act", headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"})
    assert resp.status == 200 and bare.ran == ["/api/act"]


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
async def test_a_state_change_with_the_session_and_no_token_is_refused_before_the_handler(bare, method):
    await bare.start_session()
    resp = await bare.client.request(method, "/api/act", json={})
    assert resp.status == 403
    assert await resp.json() == REFUSED
    assert bare.ran == []


async def test_the_session_token_in_the_header_lets_the_request_through(bare):
    token = await bare.start_session()
    resp = await bare.client.post("/api/act", json={}, headers={"X-CSRF-Token": token})
    assert resp.status == 200 and bare.ran == ["/api/act"]


@pytest.mark.parametrize("given", ["", "wrong-token", "x" * 43])
async def test_a_wrong_token_in_the_header_is_refused(bare, given):
    await bare.start_session()
    resp = await bare.client.post("/api/act", json={}, headers={"X-CSRF-Token": given})
    assert resp.status == 403 and await resp.json() == REFUSED
    assert bare.ran == []


@pytest.mark.parametrize(
    ("site", "allowed"), [("same-origin", True), ("none", True), ("same-site", False), ("cross-site", False)]
)
async def test_sec_fetch_site_other_than_same_origin_is_refused_even_with_the_token(bare, site, allowed):
    token = await bare.start_session()
    resp = await bare.client.post("/api/act", json={}, headers={"X-CSRF-Token": token, "Sec-Fetch-Site": site})
    assert resp.status == (200 if allowed else 403)
    assert bare.ran == (["/api/act"] if allowed else [])
    if not allowed:
        assert (await resp.json())["error"] == "cross-site request refused (CSRF)"


async def test_a_foreign_origin_is_refused_even_with_the_token(bare):
    token = await bare.start_session()
    resp = await bare.client.post(
        "/api/act", json={}, headers={"X-CSRF-Token": token, "Origin": "https://evil.example"}
    )
    assert resp.status == 403
    assert (await resp.json())["error"] == "cross-origin request refused (CSRF)"
    assert bare.ran == []


async def test_the_public_origin_and_the_request_host_are_both_our_origin(bare):
    token = await bare.start_session()
    own = str(bare.client.make_url("/")).rstrip("/")
    for origin in (SITE, SITE.upper(), own):
        resp = await bare.client.post("/api/act", json={}, headers={"X-CSRF-Token": token, "Origin": origin})
        assert resp.status == 200, origin
    assert len(bare.ran) == 3


async def test_without_the_session_cookie_an_api_call_is_exempt(bare):
    resp = await bare.client.post("/api/act", json={}, headers={"Origin": "https://evil.example"})
    assert resp.status == 200 and bare.ran == ["/api/act"]


async def test_without_the_session_cookie_a_form_outside_the_api_is_refused(bare):
    """Login CSRF: a form posted with no session can never carry a valid token."""
    resp = await bare.client.post("/form", data={"csrf_token": "anything"})
    assert resp.status == 403 and "CSRF" in await resp.text()
    assert bare.ran == []


async def test_a_form_passes_with_its_token_field_and_is_refused_with_a_wrong_one(bare):
    token = await bare.start_session()
    bad = await bare.client.post("/form", data={"csrf_token": token[::-1], "name": "x"})
    assert bad.status == 403 and bare.ran == []
    missing = await bare.client.post("/form", data={"name": "x"})
    assert missing.status == 403 and bare.ran == []
    good = await bare.client.post("/form", data={"csrf_token": token, "name": "x"})
    assert good.status == 200 and await good.text() == "saved" and bare.ran == ["/form"]


async def test_a_form_the_handler_never_checked_is_refused(bare):
    token = await bare.start_session()
    resp = await bare.client.post("/form-unread", data={"csrf_token": token})
    assert resp.status == 403 and "CSRF" in await resp.text()


async def test_urls_that_carry_their_own_secret_need_no_token(bare):
    await bare.start_session()
    resp = await bare.client.post("/d/per-image-secret", data={})
    assert resp.status == 200 and bare.ran == ["/d/per-image-secret"]
