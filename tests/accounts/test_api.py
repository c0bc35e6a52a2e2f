"""The JSON accounts API: register, login, me, API keys; validation, duplicates, limits."""

from __future__ import annotations

import re

import pytest

from imagehost.accounts import passwords
from imagehost.accounts.store import get_login
from imagehost.errors import CODES
from imagehost.typedefs import ENGINE
from tests.support.accounts import ACCOUNT_TIERS, jwt_for

pytestmark = pytest.mark.tiers(*ACCOUNT_TIERS)

GOOD = {"username": "alice", "email": "alice@example.com", "password": "correct horse battery"}


async def register(client, **changes):
    return await client.post("/api/auth/register", json={**GOOD, **changes})


def assert_envelope(body: dict) -> None:
    assert set(body) == {"error", "code", "detail"} and isinstance(body["error"], str)
    assert body["code"] in CODES


# --------------------------------------------------------------------------- register


async def test_register_answers_201_with_the_public_user_fields(client, backend, db_count):
    resp = await register(client)
    assert resp.status == 201
    body = await resp.json()
    assert set(body) == {"id", "username", "email", "created_at"}
    assert body["username"] == "alice" and body["email"] == "alice@example.com"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", body["created_at"])
    assert await db_count("users", id=body["id"]) == 1
    assert "password" not in await resp.text()


async def test_register_stores_a_bcrypt_hash_not_the_password(client, backend):
    await register(client)
    async with client.server.app[ENGINE].connect() as conn:
        _user, hashed = await get_login(conn, "alice")
    assert hashed.startswith("$2b$04$") and GOOD["password"] not in hashed


@pytest.mark.parametrize(
    "field,value",
    [
        ("username", "ALICE"),
        ("username", "Alice"),
        ("email", "ALICE@EXAMPLE.COM"),
        ("email", "Alice@Example.com"),
    ],
)
async def test_duplicate_differing_only_in_case_is_409_naming_the_field(client, backend, field, value, db_count):
    assert (await register(client)).status == 201
    other = {"username": "bob", "email": "bob@example.com", field: value}
    resp = await register(client, **other)
    body = await resp.json()
    assert resp.status == 409
    assert_envelope(body)
    assert body["detail"]["field"] == field
    assert await db_count("users") == 1


async def test_registration_validation_names_every_wrong_field(client, backend):
    resp = await register(client, username="x", email="not-an-email", password="short")
    body = await resp.json()
    assert resp.status == 422
    assert body["detail"]["field"] == "username"
    assert set(body["detail"]["errors"]) == {"username", "email", "password"}


@pytest.mark.parametrize(
    "field,value",
    [
        ("username", "ab"),  # too short
        ("username", "a" * 51),  # too long
        ("username", "bob smith"),  # space
        ("username", "bob\x00"),  # NUL
        ("username", "admin\u202egnp.exe"),  # bidi override
        ("username", "\u0430dmin"),  # Cyrillic look-alike
        ("username", "bob\u200b"),  # zero-width space
        ("username", 12345),  # not a string
        ("username", None),  # missing
        ("email", "a" * 250 + "@example.com"),  # overlong
        ("email", "alice\x00@example.com"),
        ("email", "alice\u202e@example.com"),
        ("email", "alice@exa\nmple.com"),
        ("email", "alice"),
        ("email", ["alice@example.com"]),
        ("password", "1234567"),  # 7 characters
        ("password", "x" * 1025),  # overlong
        ("password", "correct horse\x00battery"),  # NUL
        ("password", "correct horse\u202ebattery"),  # bidi
        ("password", "correct\x1bhorse battery"),  # control character
        ("password", 12345678),
    ],
)
async def test_invalid_field_is_422_naming_it_and_creates_nothing(client, backend, field, value, db_count):
    resp = await register(client, **{field: value})
    body = await resp.json()
    assert resp.status == 422, body
    assert_envelope(body)
    assert body["detail"]["field"] == field
    assert await db_count("users") == 0


async def test_lone_surrogate_in_json_is_422_not_a_crash(client, backend):
    for field in ("username", "email", "password"):
        raw = '{"username": "alice", "email": "alice@example.com", "password": "correct horse battery"}'
        raw = raw.replace(f'"{field}": "', f'"{field}": "\\ud800', 1)
        resp = await client.post("/api/auth/register", data=raw, headers={"Content-Type": "application/json"})
        assert resp.status == 422, (field, await resp.text())
        assert (await resp.json())["detail"]["field"] == field


async def test_passwords_from_8_to_1024_characters_are_accepted(client, backend):
    for n, length in enumerate((8, 72, 128, 1024)):
        resp = await register(client, username=f"user{n}", email=f"u{n}@example.com", password="p" * length)
        assert resp.status == 201, (length, await resp.text())
        login = await client.post("/api/auth/login", json={"username": f"user{n}", "password": "p" * length})
        assert login.status == 200, length


async def test_long_passwords_are_never_truncated(client, backend):
    """bcrypt reads only 72 bytes; the SHA-256 pre-hash makes every character count."""
    password = "a" * 99 + "1"
    assert (await register(client, password=password)).status == 201
    wrong = await client.post("/api/auth/login", json={"username": "alice", "password": "a" * 99 + "2"})
    assert wrong.status == 401
    # also multibyte: 40 × 3-byte characters is 120 bytes, past bcrypt's limit
    assert (await register(client, username="carol", email="carol@example.com", password="€" * 40)).status == 201
    assert (await client.post("/api/auth/login", json={"username": "carol", "password": "€" * 39 + "x"})).status == 401
    assert (await client.post("/api/auth/login", json={"username": "carol", "password": "€" * 40})).status == 200


def test_prehash_distinguishes_passwords_differing_only_after_72_bytes():
    a, b = "x" * 99 + "a", "x" * 99 + "b"
    hashed = passwords.hash_password_sync(a, 4)
    assert passwords.verify_password_sync(a, hashed)
    assert not passwords.verify_password_sync(b, hashed)


@pytest.mark.parametrize(
    "raw,ctype",
    [
        (b'{"username": "alice",', "application/json"),
        (b"not json at all", "application/json"),
        (b'["alice", "secret"]', "application/json"),
        (b'"alice"', "application/json"),
        (b"\xff\xfe{}", "application/json"),
        (b"", "application/json"),
    ],
)
async def test_malformed_json_is_400_in_the_envelope(client, backend, raw, ctype):
    for path in ("/api/auth/register", "/api/auth/login"):
        resp = await client.post(path, data=raw, headers={"Content-Type": ctype})
        body = await resp.json()
        assert resp.status == 400, (path, raw)
        assert_envelope(body)
        assert body["error"] == "malformed JSON"


async def test_json_sent_without_a_json_content_type_still_works(client, backend):
    """`curl -d '{...}'` labels JSON as a form; the API reads it anyway (no cookie: no CSRF)."""
    import json

    resp = await client.post(
        "/api/auth/register", data=json.dumps(GOOD), headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert resp.status == 201, await resp.text()


# --------------------------------------------------------------------------- login and me


async def test_login_returns_a_bearer_jwt_that_identifies_the_user(client, backend, make_user):
    account = await make_user()
    resp = await client.post("/api/auth/login", json={"username": account.username, "password": account.password})
    body = await resp.json()
    assert resp.status == 200
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == backend.settings.jwt_expiration_minutes * 60
    assert resp.headers["Cache-Control"] == "no-store"
    me = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status == 200
    assert await me.json() == {
        "id": account.id,
        "username": account.username,
        "email": account.email,
        "created_at": (await me.json())["created_at"],
    }


async def test_login_ignores_the_case_of_the_username(client, backend, make_user):
    account = await make_user("MixedCase")
    resp = await client.post("/api/auth/login", json={"username": "mixedcase", "password": account.password})
    assert resp.status == 200
    token = (await resp.json())["access_token"]
    me = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert (await me.json())["username"] == "MixedCase"


async def test_login_does_not_start_a_session(client, backend, make_user):
    account = await make_user()
    resp = await client.post("/api/auth/login", json={"username": account.username, "password": account.password})
    assert resp.status == 200
    assert "Set-Cookie" not in resp.headers


@pytest.mark.parametrize(
    "body,field",
    [
        ({"password": "whatever1"}, "username"),
        ({"username": "", "password": "whatever1"}, "username"),
        ({"username": "a" * 51, "password": "whatever1"}, "username"),
        ({"username": "bob\x00", "password": "whatever1"}, "username"),
        ({"username": "bob\u202e", "password": "whatever1"}, "username"),
        ({"username": ["bob"], "password": "whatever1"}, "username"),
        ({"username": "bob"}, "password"),
        ({"username": "bob", "password": "p" * 1025}, "password"),
        ({"username": "bob", "password": "pass\x00word"}, "password"),
    ],
)
async def test_malformed_login_input_is_422_naming_the_field(client, backend, body, field, db_count):
    resp = await client.post("/api/auth/login", json=body)
    assert resp.status == 422
    assert (await resp.json())["detail"]["field"] == field
    assert await db_count("login_failures") == 0  # not a guess, not counted


async def test_me_without_credentials_is_401_with_www_authenticate(client, backend):
    resp = await client.get("/api/auth/me")
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"] == "Bearer"
    assert_envelope(await resp.json())


@pytest.mark.parametrize("header", ["Basic YWxpY2U6c2VjcmV0", "Bearer", "Bearer    ", "Token abc", "bearer"])
async def test_malformed_authorization_header_is_401(client, backend, header):
    resp = await client.get("/api/auth/me", headers={"Authorization": header})
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"] == "Bearer"


async def test_me_works_with_an_api_key(client, backend, make_user):
    account = await make_user()
    resp = await client.get("/api/auth/me", headers=account.auth)
    assert resp.status == 200
    assert (await resp.json())["id"] == account.id


# --------------------------------------------------------------------------- API keys


async def test_create_key_shows_the_secret_once_and_stores_only_its_hash(client, backend, make_user):
    account = await make_user()
    token = await jwt_for(client, account)
    auth = {"Authorization": f"Bearer {token}"}
    resp = await client.post("/api/keys", json={"name": "ShareX desktop"}, headers=auth)
    body = await resp.json()
    assert resp.status == 201
    secret = body["secret"]
    assert re.fullmatch(r"ih_[A-Za-z0-9_-]{43}", secret)
    assert body["name"] == "ShareX desktop" and secret.startswith(body["prefix"])
    listing = await (await client.get("/api/keys", headers=auth)).json()
    assert secret not in str(listing)
    names = {k["name"]: k for k in listing["keys"]}
    assert set(names) == {"tests", "ShareX desktop"}
    assert set(names["ShareX desktop"]) == {"id", "name", "prefix", "created_at", "last_used_at"}
    assert names["ShareX desktop"]["last_used_at"] is None
    from sqlalchemy import select

    from imagehost.tables import api_keys

    async with client.server.app[ENGINE].connect() as conn:
        stored = [r[0] for r in await conn.execute(select(api_keys.c.key_hash))]
    assert secret not in stored and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in stored)
    # the new key works, and its use is recorded
    me = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {secret}"})
    assert me.status == 200
    listing = await (await client.get("/api/keys", headers=auth)).json()
    assert {k["name"]: k for k in listing["keys"]}["ShareX desktop"]["last_used_at"] is not None


async def test_last_used_is_written_at_most_once_a_minute(client, backend, make_user):
    from sqlalchemy import select

    from imagehost.tables import api_keys

    account = await make_user()
    await client.get("/api/auth/me", headers=account.auth)
    async with client.server.app[ENGINE].connect() as conn:
        first = (await conn.execute(select(api_keys.c.last_used_at))).scalar_one()
    await client.get("/api/auth/me", headers=account.auth)
    async with client.server.app[ENGINE].connect() as conn:
        second = (await conn.execute(select(api_keys.c.last_used_at))).scalar_one()
    assert first is not None and second == first


@pytest.mark.parametrize("name", ["", "   ", "x" * 101, "bad\x00name", "evil\u202ename", None, 42])
async def test_key_name_must_be_1_to_100_visible_characters(client, backend, make_user, name, db_count):
    account = await make_user()
    token = await jwt_for(client, account)
    resp = await client.post("/api/keys", json={"name": name}, headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 422
    assert (await resp.json())["detail"]["field"] == "name"
    assert await db_count("api_keys") == 1  # only make_user's


async def test_an_api_key_cannot_create_another_key(client, backend, make_user, db_count):
    account = await make_user()
    resp = await client.post("/api/keys", json={"name": "successor"}, headers=account.auth)
    assert resp.status == 403
    assert await db_count("api_keys") == 1


async def test_delete_key_revokes_it_at_once(client, backend, make_user):
    account = await make_user()
    keys = await (await client.get("/api/keys", headers=account.auth)).json()
    key_id = keys["keys"][0]["id"]
    resp = await client.delete(f"/api/keys/{key_id}", headers=account.auth)
    assert resp.status == 204
    again = await client.get("/api/auth/me", headers=account.auth)
    assert again.status == 401
    assert again.headers["WWW-Authenticate"] == "Bearer"


async def test_deleting_an_unknown_or_malformed_key_id_is_404(client, backend, make_user):
    account = await make_user()
    for key_id in ("doesnotexist", "x" * 40, "a%00b", "%E2%80%AE"):
        resp = await client.delete(f"/api/keys/{key_id}", headers=account.auth)
        assert resp.status == 404, key_id
        assert_envelope(await resp.json())


async def test_keys_api_requires_authentication(client, backend):
    assert (await client.get("/api/keys")).status == 401
    assert (await client.post("/api/keys", json={"name": "x"})).status == 401
    assert (await client.delete("/api/keys/abc")).status == 401
