"""Security headers (imagehost/http/headers.py): through the whole app, then on a bare
app that has only this middleware."""

from __future__ import annotations

import pytest
from aiohttp import web

from imagehost.http.headers import build_csp, security_headers_middleware

pytestmark = pytest.mark.tiers("sqlite-local", "pg-local")


async def test_security_headers_on_every_response(client):
    resp = await client.get("/api/health")
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"]
    page = await client.get("/no/such/page", headers={"Accept": "text/html"})
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp


# --------------------------------------------------------------------------- bare app

IMAGE_CSP = "default-src 'none'; sandbox"  # what an image handler sets for itself


async def _bare(aiohttp_client, image_origin: str = "", upload_origin: str = ""):
    async def json_handler(request):
        return web.json_response({"ok": True})

    async def html_handler(request):
        return web.Response(text="<p>hi</p>", content_type="text/html")

    async def image_handler(request):
        return web.Response(body=b"GIF89a", content_type="image/gif", headers={"Content-Security-Policy": IMAGE_CSP})

    async def raise_html(request):
        raise web.HTTPNotFound(text="<p>gone</p>", content_type="text/html")

    async def redirect(request):
        raise web.HTTPSeeOther("/login")

    app = web.Application(middlewares=[security_headers_middleware(image_origin, upload_origin)])
    app.router.add_get("/api/x", json_handler)
    app.router.add_get("/page", html_handler)
    app.router.add_get("/i/x.gif", image_handler)
    app.router.add_get("/gone", raise_html)
    app.router.add_get("/redirect", redirect)
    return await aiohttp_client(app)


async def test_every_response_gets_nosniff_and_a_referrer_policy(aiohttp_client):
    client = await _bare(aiohttp_client)
    for path in ("/api/x", "/page", "/i/x.gif", "/gone", "/redirect"):
        resp = await client.get(path, allow_redirects=False)
        assert resp.headers["X-Content-Type-Options"] == "nosniff", path
        assert resp.headers["Referrer-Policy"] == "strict-origin-when-cross-origin", path


async def test_html_gets_the_strict_page_policy_and_json_does_not(aiohttp_client):
    client = await _bare(aiohttp_client)
    page = await client.get("/page")
    assert page.headers["Content-Security-Policy"] == build_csp()
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert page.headers["Permissions-Policy"] == "camera=(), microphone=(), geolocation=()"
    api = await client.get("/api/x")
    for name in ("Content-Security-Policy", "X-Frame-Options", "Cross-Origin-Opener-Policy"):
        assert name not in api.headers, name


async def test_the_page_policy_runs_no_inline_script_and_cannot_be_framed(aiohttp_client):
    client = await _bare(aiohttp_client)
    csp = (await client.get("/page")).headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["object-src"] == "'none'"
    assert directives["base-uri"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in csp


async def test_the_image_and_upload_origins_are_allowed_as_origins_only(aiohttp_client):
    client = await _bare(
        aiohttp_client,
        image_origin="https://img.example.com/bucket/prefix",
        upload_origin="https://acct.r2.cloudflarestorage.com/path?x=1",
    )
    csp = (await client.get("/page")).headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["img-src"] == "'self' data: blob: https://img.example.com"
    assert directives["connect-src"] == "'self' https://acct.r2.cloudflarestorage.com"


async def test_a_policy_the_handler_set_is_kept(aiohttp_client):
    client = await _bare(aiohttp_client)
    resp = await client.get("/i/x.gif")
    assert resp.headers["Content-Security-Policy"] == IMAGE_CSP
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


async def test_an_html_error_raised_by_a_handler_gets_the_page_policy(aiohttp_client):
    client = await _bare(aiohttp_client)
    resp = await client.get("/gone")
    assert resp.status == 404
    assert resp.headers["Content-Security-Policy"] == build_csp()
    assert resp.headers["X-Frame-Options"] == "DENY"
