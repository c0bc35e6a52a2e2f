"""Each middleware on its own or through the app: error envelope, security headers,
forwarded addresses."""

from __future__ import annotations

import pytest
from aiohttp import web

from imagehost.http.forwarded import client_address_middleware
from imagehost.typedefs import CLIENT_ADDR

pytestmark = pytest.mark.tiers("sqlite-local", "pg-local")


async def test_unknown_api_path_gets_the_json_envelope(client):
    resp = await client.get("/api/does-not-exist")
    assert resp.status == 404
    assert await resp.json() == {"error": "not found", "detail": None}


async def test_wrong_method_gets_405_in_the_envelope(client):
    resp = await client.delete("/api/health")
    assert resp.status == 405
    body = await resp.json()
    assert set(body) == {"error", "detail"}
    assert "GET" in resp.headers["Allow"]


async def test_html_errors_are_pages_not_json(client):
    resp = await client.get("/no/such/page", headers={"Accept": "text/html"})
    assert resp.status == 404
    assert resp.content_type == "text/html"
    assert "Traceback" not in await resp.text()


async def test_unhandled_exception_never_leaks_a_trace(client):
    async def boom(request):
        raise RuntimeError("secret internals /etc/passwd")

    client.server.app.router._frozen = False
    client.server.app.router.add_get("/api/boom", boom)
    resp = await client.get("/api/boom")
    body = await resp.json()
    assert resp.status == 500
    assert body["error"] == "internal error" and "request_id" in body["detail"]
    assert "secret internals" not in await resp.text()


async def test_security_headers_on_every_response(client):
    resp = await client.get("/api/health")
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"]
    page = await client.get("/no/such/page", headers={"Accept": "text/html"})
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp


async def _addr_app(aiohttp_client, trusted):
    async def handler(request):
        return web.Response(text=request[CLIENT_ADDR])

    app = web.Application(middlewares=[client_address_middleware(trusted)])
    app.router.add_get("/", handler)
    return await aiohttp_client(app)


@pytest.mark.tiers("sqlite-local")
async def test_forwarded_for_is_ignored_without_trusted_proxies(aiohttp_client, backend):
    client = await _addr_app(aiohttp_client, ())
    resp = await client.get("/", headers={"X-Forwarded-For": "203.0.113.9"})
    assert await resp.text() == "127.0.0.1"


@pytest.mark.tiers("sqlite-local")
async def test_forwarded_for_is_used_from_a_trusted_proxy(aiohttp_client, backend):
    client = await _addr_app(aiohttp_client, ("127.0.0.0/8",))
    resp = await client.get("/", headers={"X-Forwarded-For": "198.51.100.7, 203.0.113.9, 127.0.0.5"})
    assert await resp.text() == "203.0.113.9"  # the right-most hop that is not our proxy
    resp = await client.get("/", headers={"X-Forwarded-For": "garbage"})
    assert await resp.text() == "127.0.0.1"
