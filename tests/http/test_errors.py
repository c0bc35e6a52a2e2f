"""The error envelope (imagehost/http/errors.py): through the whole app, then on a bare
app that has only this middleware and handlers that fail in each way there is."""

from __future__ import annotations

import pytest
from aiohttp import web
from sqlalchemy.exc import OperationalError

from imagehost.errors import Conflict, NotFound, TooManyRequests, Unauthorized
from imagehost.http.errors import error_middleware
from imagehost.storage import InvalidKey, StorageError

pytestmark = pytest.mark.tiers("sqlite-local", "pg-local")


async def test_unknown_api_path_gets_the_json_envelope(client):
    resp = await client.get("/api/does-not-exist")
    assert resp.status == 404
    assert await resp.json() == {"error": "not found", "code": "not_found", "detail": None}


async def test_wrong_method_gets_405_in_the_envelope(client):
    resp = await client.delete("/api/health")
    assert resp.status == 405
    body = await resp.json()
    assert set(body) == {"error", "code", "detail"}
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


# --------------------------------------------------------------------------- bare app


async def _bare(aiohttp_client, raise_: BaseException | None):
    ran = []

    async def handler(request):
        ran.append(request.path)
        if raise_ is not None:
            raise raise_
        return web.json_response({"ok": True})

    app = web.Application(middlewares=[error_middleware])
    app.router.add_route("*", "/{tail:.*}", handler)
    return await aiohttp_client(app), ran


@pytest.mark.parametrize(
    ("exc", "status", "body", "headers"),
    [
        (NotFound(), 404, {"error": "not found", "code": "not_found", "detail": None}, {}),
        (
            Conflict("name taken", {"field": "username"}),
            409,
            {"error": "name taken", "code": "conflict", "detail": {"field": "username"}},
            {},
        ),
        (
            Unauthorized(),
            401,
            {"error": "authentication required", "code": "invalid_credentials", "detail": None},
            {"WWW-Authenticate": "Bearer"},
        ),
        (
            TooManyRequests(30),
            429,
            {"error": "too many requests", "code": "rate_limited", "detail": {"retry_after": 30}},
            {"Retry-After": "30"},
        ),
        (web.HTTPNotFound(), 404, {"error": "not found", "code": "not_found", "detail": None}, {}),
        (
            web.HTTPRequestEntityTooLarge(10, 20),
            413,
            {"error": "file too large", "code": "file_too_large", "detail": None},
            {},
        ),
        (
            web.HTTPMethodNotAllowed("PUT", ["GET"]),
            405,
            {"error": "method not allowed", "code": "method_not_allowed", "detail": None},
            {"Allow": "GET"},
        ),
        (InvalidKey("../etc"), 404, {"error": "not found", "code": "not_found", "detail": None}, {}),
        (
            StorageError("bucket on fire"),
            503,
            {"error": "storage unavailable", "code": "storage_unavailable", "detail": None},
            {},
        ),
        (
            OperationalError("SELECT 1", {}, Exception("gone")),
            503,
            {"error": "database unavailable", "code": "database_unavailable", "detail": None},
            {},
        ),
        (
            RuntimeError("secret internals"),
            500,
            {"error": "internal error", "code": "internal_error", "detail": {"request_id": None}},
            {},
        ),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else None,
)
async def test_every_failure_becomes_the_envelope_with_its_status(aiohttp_client, exc, status, body, headers):
    client, ran = await _bare(aiohttp_client, exc)
    resp = await client.post("/api/thing", json={})
    assert ran == ["/api/thing"]
    assert resp.status == status
    assert resp.content_type == "application/json"
    assert await resp.json() == body
    for name, value in headers.items():
        assert resp.headers[name] == value


async def test_only_chosen_headers_of_an_http_exception_reach_the_client(aiohttp_client):
    exc = web.HTTPServiceUnavailable(headers={"Retry-After": "5", "X-Internal-Host": "db-7.internal"})
    client, _ = await _bare(aiohttp_client, exc)
    resp = await client.get("/api/thing")
    assert resp.status == 503
    assert resp.headers["Retry-After"] == "5"
    assert "X-Internal-Host" not in resp.headers


async def test_no_trace_and_no_message_of_an_unhandled_error_reach_the_client(aiohttp_client):
    client, _ = await _bare(aiohttp_client, KeyError("/srv/imagehost/secret.py line 42"))
    resp = await client.get("/api/thing")
    text = await resp.text()
    assert resp.status == 500
    assert "secret.py" not in text and "Traceback" not in text and "KeyError" not in text


async def test_redirects_pass_through_untouched(aiohttp_client):
    client, _ = await _bare(aiohttp_client, web.HTTPSeeOther("/login"))
    resp = await client.get("/gallery", allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == "/login"


async def test_success_passes_through_untouched(aiohttp_client):
    client, _ = await _bare(aiohttp_client, None)
    resp = await client.get("/api/thing")
    assert resp.status == 200 and await resp.json() == {"ok": True}


async def test_a_client_asking_for_json_gets_json_outside_api(aiohttp_client):
    client, _ = await _bare(aiohttp_client, NotFound())
    resp = await client.get("/gallery/x", headers={"Accept": "application/json"})
    assert resp.status == 404
    assert await resp.json() == {"error": "not found", "code": "not_found", "detail": None}


async def test_html_errors_fall_back_to_plain_text_when_no_page_can_be_rendered(aiohttp_client):
    """The bare app has no templates: the error page cannot render, and the answer is still
    the right status with a one-line message, never a trace or a JSON body."""
    client, _ = await _bare(aiohttp_client, NotFound("no such image"))
    resp = await client.get("/v/abc", headers={"Accept": "text/html"})
    assert resp.status == 404
    assert resp.content_type == "text/plain"
    assert await resp.text() == "404 no such image\n"
