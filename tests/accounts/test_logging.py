"""Nothing secret is ever logged: passwords, API key secrets, JWTs, session cookies and
CSRF tokens stay out of every log line, from loguru and from the standard library alike.

The first test captures raw records (before `imagehost.logs.scrub`), so it proves these are
never logged at all, not merely redacted. The second runs the production logging setup at
its most verbose level and also looks for password hashes."""

from __future__ import annotations

import io
import logging
import re
import sys

import pytest
from loguru import logger

from imagehost.logs import setup_logging
from tests.support.accounts import ACCOUNT_TIERS, csrf_of, page_token, session_cookie

pytestmark = pytest.mark.tiers(*ACCOUNT_TIERS)

PASSWORD = "Sup3r secret passphrase!"


async def exercise(client) -> list[str]:
    """Register, log in, use a JWT, make and use keys, the browser flow; the secrets seen."""
    seen: list[str] = [PASSWORD]
    assert (
        await client.post(
            "/api/auth/register", json={"username": "logcheck", "email": "l@example.com", "password": PASSWORD}
        )
    ).status == 201
    resp = await client.post("/api/auth/login", json={"username": "logcheck", "password": PASSWORD})
    jwt = (await resp.json())["access_token"]
    seen.append(jwt)
    bearer = {"Authorization": f"Bearer {jwt}"}
    assert (await client.get("/api/auth/me", headers=bearer)).status == 200
    key = (await (await client.post("/api/keys", json={"name": "k"}, headers=bearer)).json())["secret"]
    seen.append(key)
    assert (await client.get("/api/auth/me", headers={"Authorization": f"Bearer {key}"})).status == 200
    # failures carry secrets too: a wrong password, an unknown user, a bad key, a bad JWT, broken JSON
    await client.post("/api/auth/login", json={"username": "logcheck", "password": PASSWORD + "x"})
    await client.post("/api/auth/login", json={"username": "nobody", "password": PASSWORD})
    await client.get("/api/auth/me", headers={"Authorization": f"Bearer {key[:-1]}Q"})
    await client.get("/api/auth/me", headers={"Authorization": f"Bearer {jwt[:-2]}xx"})
    await client.post(
        "/api/auth/login",
        data='{"username": "logcheck", "password": "' + PASSWORD,
        headers={"Content-Type": "application/json"},
    )
    # the browser: login form, session cookie, a key made on the page, logout
    token = await page_token(client, "/login")
    seen += [token, session_cookie(client)]
    resp = await client.post(
        "/login", data={"username": "logcheck", "password": PASSWORD, "csrf_token": token}, allow_redirects=False
    )
    assert resp.status == 303
    seen.append(session_cookie(client))
    token = csrf_of(await (await client.get("/keys")).text())
    seen.append(token)
    page = await (await client.post("/keys", data={"name": "page key", "csrf_token": token})).text()
    seen.append(re.search(r'value="(ih_[^"]+)"', page).group(1))
    assert (await client.post("/logout", data={"csrf_token": token}, allow_redirects=False)).status == 303
    assert all(seen)
    return seen


def assert_no_secret(text: str, secrets: list[str]) -> None:
    assert "POST /api/auth/login" in text  # the capture did see the requests
    for secret in secrets:
        assert secret not in text, f"a secret was logged: {secret[:6]}…"


async def test_no_secret_is_ever_logged_even_before_scrubbing(client, backend, caplog):
    caplog.set_level(logging.DEBUG)
    lines: list[str] = []
    sink = logger.add(
        lambda m: lines.append(str(m)),
        level="TRACE",
        format="{level} {name}:{function} {message} | {extra} | {exception}",
    )
    try:
        secrets = await exercise(client)
    finally:
        logger.remove(sink)
    stdlib = [f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records]
    assert_no_secret("\n".join(lines + stdlib), secrets)


async def test_production_logging_at_debug_shows_no_secret_and_no_password_hash(client, backend):
    stream = io.StringIO()
    root_handlers, root_level = logging.root.handlers[:], logging.root.level
    setup_logging("DEBUG", as_json=True, stream=stream)
    try:
        secrets = await exercise(client)
    finally:
        logger.remove()
        logger.add(sys.stderr, level="DEBUG")
        logging.root.handlers[:] = root_handlers
        logging.root.setLevel(root_level)
    text = stream.getvalue()
    assert_no_secret(text, secrets)
    assert "$2b$" not in text, "a bcrypt hash was logged"
