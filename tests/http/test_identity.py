"""Who is calling (imagehost/accounts/identity.py) on a bare app: a cookie session, the
error envelope, the identity middleware over a real migrated database, and one handler
that answers with the identity the middleware settled on. The middleware identifies only;
authorising is the handlers' business (tests/accounts)."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp_session import SimpleCookieStorage, session_middleware

from imagehost.accounts import store as apikeys
from imagehost.accounts import tokens
from imagehost.accounts.identity import SESSION_COOKIE, identity_middleware, log_in, log_out
from imagehost.accounts.service import register_user
from imagehost.accounts.store import get_user
from imagehost.db import create_engine, transaction
from imagehost.env import Env
from imagehost.http.errors import error_middleware
from imagehost.images.derivatives import DerivativePool
from imagehost.storage import LocalStorage
from imagehost.typedefs import ENGINE, ENV, IDENTITY, SETTINGS
from tests.support.accounts import ACCOUNT_TIERS

pytestmark = pytest.mark.tiers(*ACCOUNT_TIERS)


class Bare:
    def __init__(self, client, ran: list[str], user_id: str, key_id: str, key: str):
        self.client, self.ran = client, ran
        self.user_id, self.key_id, self.key = user_id, key_id, key

    async def whoami(self, path: str = "/api/whoami", **headers: str):
        resp = await self.client.get(path, headers=headers)
        return resp.status, await resp.json()


@pytest.fixture
async def bare(aiohttp_client, backend) -> Bare:
    settings = backend.settings
    engine = create_engine(settings)
    storage = LocalStorage(settings.local_storage_path, settings.public_base_url, settings.secret_key)
    env = Env(engine, storage, settings, lambda name, **_parts: f"{settings.public_base_url}/{name}", DerivativePool(1))
    user = await register_user(env, "alice", "alice@example.com", "correct horse battery")
    async with transaction(engine) as conn:
        key, secret = await apikeys.create_key(conn, user.id, "tests")
    ran: list[str] = []

    async def whoami(request):
        ran.append(request.path)
        identity = request[IDENTITY]
        if identity is None:
            return web.json_response(None)
        return web.json_response({"user": identity.user.id, "method": identity.method, "key_id": identity.key_id})

    async def login(request):
        async with engine.connect() as conn:
            await log_in(request, await get_user(conn, request.match_info["user_id"]))
        return web.json_response(None)

    async def logout(request):
        await log_out(request)
        return web.json_response(None)

    app = web.Application(
        middlewares=[
            error_middleware,
            session_middleware(SimpleCookieStorage(cookie_name=SESSION_COOKIE)),
            identity_middleware,
        ]
    )
    app[SETTINGS], app[ENGINE], app[ENV] = settings, engine, env
    app.router.add_get("/api/whoami", whoami)
    app.router.add_get("/api/health", whoami)  # a path that never needs to know the caller
    app.router.add_post("/login/{user_id}", login)
    app.router.add_post("/logout", logout)
    yield Bare(await aiohttp_client(app), ran, user.id, key.id, secret)
    await engine.dispose()


async def test_no_credential_is_nobody(bare):
    assert await bare.whoami() == (200, None)


async def test_an_api_key_identifies_its_owner_and_the_key(bare):
    status, body = await bare.whoami(Authorization=f"Bearer {bare.key}")
    assert status == 200
    assert body == {"user": bare.user_id, "method": "apikey", "key_id": bare.key_id}


async def test_a_jwt_identifies_its_subject(bare):
    token = tokens.issue_access_token(bare.client.server.app[SETTINGS].secret_key, bare.user_id, 5)
    status, body = await bare.whoami(Authorization=f"Bearer {token}")
    assert status == 200
    assert body == {"user": bare.user_id, "method": "jwt", "key_id": None}


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("Basic YWxpY2U6cHc=", "malformed Authorization header: use 'Bearer <key or token>'"),
        ("Bearer ", "malformed Authorization header: use 'Bearer <key or token>'"),
        ("Bearer ih_" + "A" * 43, "invalid or revoked API key"),
        ("Bearer not.a.jwt", "invalid or expired token"),
    ],
)
async def test_a_bad_credential_is_refused_before_the_handler(bare, header, message):
    resp = await bare.client.get("/api/whoami", headers={"Authorization": header})
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"] == "Bearer"
    assert await resp.json() == {"error": message, "code": "invalid_credentials", "detail": None}
    assert bare.ran == []


async def test_a_jwt_signed_with_another_key_is_refused(bare):
    forged = tokens.issue_access_token("another-secret-" + "z" * 40, bare.user_id, 5)
    resp = await bare.client.get("/api/whoami", headers={"Authorization": f"Bearer {forged}"})
    assert resp.status == 401 and bare.ran == []


async def test_a_revoked_key_is_refused(bare):
    async with transaction(bare.client.server.app[ENGINE]) as conn:
        assert await apikeys.revoke_key(conn, bare.user_id, bare.key_id)
    resp = await bare.client.get("/api/whoami", headers={"Authorization": f"Bearer {bare.key}"})
    assert resp.status == 401 and bare.ran == []


async def test_anonymous_paths_never_look_at_credentials(bare):
    status, body = await bare.whoami("/api/health", Authorization="Basic garbage")
    assert (status, body) == (200, None)


async def test_a_session_identifies_its_user_until_logout_even_for_a_copy_of_the_cookie(bare):
    assert (await bare.client.post(f"/login/{bare.user_id}")).status == 200
    assert await bare.whoami() == (200, {"user": bare.user_id, "method": "session", "key_id": None})
    copy = bare.client.session.cookie_jar.filter_cookies(bare.client.make_url("/"))[SESSION_COOKIE].value
    assert (await bare.client.post("/logout")).status == 200
    assert await bare.whoami() == (200, None)
    jar = bare.client.session.cookie_jar
    jar.clear()
    jar.update_cookies({SESSION_COOKIE: copy}, bare.client.make_url("/"))
    assert await bare.whoami() == (200, None)
