"""Request ids and the access log (imagehost/http/access.py) on a bare app: one line per
request with its id, method, path (never the query), status, duration and user."""

from __future__ import annotations

import re

import pytest
from aiohttp import web
from loguru import logger

from imagehost.http.access import access_log_middleware
from imagehost.typedefs import REQUEST_ID


@pytest.fixture
def records():
    """The access-log records, as loguru hands them to a sink."""
    seen: list[dict] = []
    sink = logger.add(lambda m: seen.append(m.record), level="INFO", filter="imagehost.http.access")
    yield seen
    logger.remove(sink)


async def _bare(aiohttp_client):
    async def ok(request):
        return web.Response(text=request[REQUEST_ID])

    async def missing(request):
        raise web.HTTPNotFound()

    async def boom(request):
        raise RuntimeError("boom")

    app = web.Application(middlewares=[access_log_middleware])
    app.router.add_get("/ok", ok)
    app.router.add_get("/missing", missing)
    app.router.add_get("/boom", boom)
    return await aiohttp_client(app)


async def test_a_request_gets_an_id_the_handler_and_the_client_both_see(aiohttp_client, records):
    client = await _bare(aiohttp_client)
    resp = await client.get("/ok")
    rid = resp.headers["X-Request-ID"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{8,}", rid)
    assert await resp.text() == rid
    assert records[-1]["extra"]["request_id"] == rid
    other = await client.get("/ok")
    assert other.headers["X-Request-ID"] != rid


async def test_a_well_formed_incoming_id_is_kept(aiohttp_client, records):
    client = await _bare(aiohttp_client)
    resp = await client.get("/ok", headers={"X-Request-ID": "lb-7f3a:0042"})
    assert resp.headers["X-Request-ID"] == "lb-7f3a:0042"
    assert await resp.text() == "lb-7f3a:0042"


@pytest.mark.parametrize("bad", ["has space", "<script>", "x" * 65, "semi;colon"])
async def test_a_malformed_incoming_id_is_replaced(aiohttp_client, records, bad):
    client = await _bare(aiohttp_client)
    resp = await client.get("/ok", headers={"X-Request-ID": bad})
    rid = resp.headers["X-Request-ID"]
    assert rid != bad and re.fullmatch(r"[A-Za-z0-9_-]{8,}", rid)
    assert records[-1]["extra"]["request_id"] == rid


async def test_one_line_per_request_with_its_fields_and_without_the_query(aiohttp_client, records):
    client = await _bare(aiohttp_client)
    await client.get("/ok?sig=secretsignature&exp=1")
    assert len(records) == 1
    extra = records[0]["extra"]
    assert extra["method"] == "GET" and extra["path"] == "/ok" and extra["status"] == 200
    assert isinstance(extra["duration_ms"], float) and extra["duration_ms"] >= 0
    assert extra["user_id"] is None  # no identity middleware: nobody is known
    assert records[0]["message"] == "GET /ok 200"
    assert "secretsignature" not in repr(records[0])


async def test_an_http_error_is_logged_with_its_status_and_carries_the_id(aiohttp_client, records):
    client = await _bare(aiohttp_client)
    resp = await client.get("/missing")
    assert resp.status == 404
    assert resp.headers["X-Request-ID"] == records[-1]["extra"]["request_id"]
    assert records[-1]["extra"]["status"] == 404


async def test_an_unhandled_error_is_logged_as_500(aiohttp_client, records):
    client = await _bare(aiohttp_client)
    resp = await client.get("/boom")
    assert resp.status == 500
    assert records[-1]["extra"]["status"] == 500 and records[-1]["extra"]["path"] == "/boom"
