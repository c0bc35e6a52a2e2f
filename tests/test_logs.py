"""Logging: stdlib/aiohttp routed into loguru, JSON lines, request ids, no secrets."""

from __future__ import annotations

import io
import json
import logging

import pytest
from loguru import logger

from imagehost.logs import scrub, setup_logging

pytestmark = pytest.mark.tiers("sqlite-local")


@pytest.fixture
def log_stream():
    stream = io.StringIO()
    setup_logging("DEBUG", as_json=True, stream=stream)
    yield stream
    logger.remove()


def _lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_json_mode_writes_one_object_per_line_and_routes_stdlib(log_stream):
    logging.getLogger("aiohttp.server").warning("from the standard library")
    logger.info("from loguru")
    lines = _lines(log_stream)
    assert [ln["message"] for ln in lines] == ["from the standard library", "from loguru"]
    assert lines[0]["level"] == "WARNING"


def test_log_level_filters(tmp_path):
    stream = io.StringIO()
    setup_logging("WARNING", as_json=False, stream=stream)
    logger.info("hidden")
    logger.warning("shown")
    logger.remove()
    assert "hidden" not in stream.getvalue() and "shown" in stream.getvalue()


@pytest.mark.parametrize(
    "secret_text",
    [
        "Authorization: Bearer ih_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefg",
        "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXNpZ25hdHVyZQ",
        "PUT /api/uploads/pending/x.png?ct=image/png&len=3&exp=1&sig=0123456789abcdef0123456789abcdef",
        "https://acct.r2.cloudflarestorage.com/b/k?X-Amz-Credential=AKIAXXXX&X-Amz-Signature=deadbeefcafe",
        '{"username": "alice", "password": "hunter2hunter2"}',
        "Cookie: imagehost_session=gAAAAABsecretsecretsecret",
    ],
)
def test_secrets_are_scrubbed(secret_text):
    out = scrub(secret_text)
    for needle in (
        "AbCdEfGhIjKlMnOp",
        "c2lnbmF0dXJl",
        "0123456789abcdef0123",
        "deadbeefcafe",
        "AKIAXXXX",
        "hunter2hunter2",
        "gAAAAABsecret",
    ):
        assert needle not in out


async def test_access_log_records_request_fields_and_echoes_request_id(client, log_stream):
    resp = await client.get("/api/health?sig=secretsignature", headers={"X-Request-ID": "trace-123"})
    assert resp.status == 200
    assert resp.headers["X-Request-ID"] == "trace-123"
    entry = [ln for ln in _lines(log_stream) if ln.get("path") == "/api/health"][-1]
    assert entry["request_id"] == "trace-123" and entry["method"] == "GET" and entry["status"] == 200
    assert isinstance(entry["duration_ms"], float) and entry["user_id"] is None
    assert "secretsignature" not in log_stream.getvalue()


async def test_bad_request_id_is_replaced(client):
    resp = await client.get("/api/health", headers={"X-Request-ID": "bad id <script>"})
    assert resp.headers["X-Request-ID"] != "bad id <script>"
    assert resp.headers["X-Request-ID"].isascii() and " " not in resp.headers["X-Request-ID"]


async def test_access_log_names_the_user_once_known(client, make_user, log_stream):
    account = await make_user()
    await client.get("/api/auth/me", headers=account.auth)
    entries = [ln for ln in _lines(log_stream) if ln.get("path") == "/api/auth/me"]
    assert entries and entries[-1]["user_id"] == account.id
    assert account.api_key[3:] not in log_stream.getvalue()
