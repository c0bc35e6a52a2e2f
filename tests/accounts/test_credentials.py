"""Credentials: JWT attacks, API key misuse, and proof that no credential acts for another user."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import timedelta

import jwt
import pytest

from imagehost.accounts import tokens
from imagehost.db import transaction, utcnow
from imagehost.tables import users
from imagehost.typedefs import ENGINE
from tests.support.accounts import ACCOUNT_TIERS, jwt_for, logged_in_token

pytestmark = pytest.mark.tiers(*ACCOUNT_TIERS)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict, claims: dict, key: bytes | None, digest=hashlib.sha256) -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    sig = b64(hmac.new(key, signing_input.encode(), digest).digest()) if key is not None else ""
    return f"{signing_input}.{sig}"


async def me_status(client, token: str) -> int:
    resp = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    if resp.status == 401:
        assert resp.headers["WWW-Authenticate"] == "Bearer"
        assert set(await resp.json()) == {"error", "code", "detail"}
    return resp.status


# naive UTC timestamps: `utcnow().timestamp()` would read them as local time
def _ts(dt) -> int:
    from datetime import UTC

    return int(dt.replace(tzinfo=UTC).timestamp())


def claims(user_id: str, **changes) -> dict:
    now = utcnow()
    base = {
        "sub": user_id,
        "iat": _ts(now - timedelta(seconds=5)),
        "exp": _ts(now + timedelta(minutes=10)),
        "typ": "access",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


# --------------------------------------------------------------------------- JWT


async def test_a_correctly_forged_token_is_accepted_so_the_attacks_below_mean_something(client, backend, make_user):
    account = await make_user()
    key = tokens.jwt_key(backend.settings.secret_key)
    assert await me_status(client, forge({"alg": "HS256", "typ": "JWT"}, claims(account.id), key)) == 200


async def test_tampered_jwt_is_refused(client, backend, make_user):
    alice, bob = await make_user(), await make_user()
    token = await jwt_for(client, alice)
    header, payload, sig = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body["sub"] = bob.id
    assert await me_status(client, f"{header}.{b64(json.dumps(body).encode())}.{sig}") == 401
    # a flipped signature character
    flipped = sig[:-2] + ("A" if sig[-2] != "A" else "B") + sig[-1]
    assert await me_status(client, f"{header}.{payload}.{flipped}") == 401


async def test_alg_none_is_refused(client, backend, make_user):
    account = await make_user()
    for alg in ("none", "None", "NONE"):
        assert await me_status(client, forge({"alg": alg, "typ": "JWT"}, claims(account.id), None)) == 401


async def test_another_algorithm_with_the_right_key_is_refused(client, backend, make_user):
    account = await make_user()
    key = tokens.jwt_key(backend.settings.secret_key)
    assert await me_status(client, forge({"alg": "HS512"}, claims(account.id), key, hashlib.sha512)) == 401
    assert await me_status(client, forge({"alg": "HS384"}, claims(account.id), key, hashlib.sha384)) == 401
    # RS256/HS256 confusion: an HMAC signature under an RS256 header
    assert await me_status(client, forge({"alg": "RS256"}, claims(account.id), key)) == 401


async def test_expired_token_is_refused(client, backend, make_user):
    account = await make_user()
    key = tokens.jwt_key(backend.settings.secret_key)
    now = utcnow()
    expired = claims(account.id, iat=_ts(now - timedelta(hours=2)), exp=_ts(now - timedelta(seconds=1)))
    assert await me_status(client, jwt.encode(expired, key, algorithm="HS256")) == 401


async def test_token_without_exp_or_with_a_wrong_type_is_refused(client, backend, make_user):
    account = await make_user()
    key = tokens.jwt_key(backend.settings.secret_key)
    for changes in ({"exp": None}, {"sub": None}, {"typ": None}, {"typ": "refresh"}, {"sub": 42}):
        token = forge({"alg": "HS256", "typ": "JWT"}, claims(account.id, **changes), key)
        assert await me_status(client, token) == 401, changes


async def test_token_signed_with_another_key_is_refused(client, backend, make_user):
    account = await make_user()
    for key in (
        b"another key entirely",
        backend.settings.secret_key.encode(),  # the raw SECRET_KEY is not the JWT key
        tokens.jwt_key("another-secret-key-" + "y" * 40),
    ):
        assert await me_status(client, forge({"alg": "HS256", "typ": "JWT"}, claims(account.id), key)) == 401


async def test_token_of_a_deleted_user_is_refused(client, backend, make_user):
    account = await make_user()
    token = await jwt_for(client, account)
    async with transaction(client.server.app[ENGINE]) as conn:
        await conn.execute(users.delete().where(users.c.id == account.id))
    assert await me_status(client, token) == 401


@pytest.mark.parametrize("garbage", ["not-a-jwt", "a.b.c", "eyJhbGciOiJIUzI1NiJ9..", "x" * 5000])
async def test_garbage_bearer_is_401(client, backend, garbage):
    assert await me_status(client, garbage) == 401


def test_issued_tokens_carry_exp_iat_sub_and_type_and_use_hs256():
    token = tokens.issue_access_token("k" * 40, "user-1", 60)
    header = jwt.get_unverified_header(token)
    body = jwt.decode(token, tokens.jwt_key("k" * 40), algorithms=["HS256"])
    assert header["alg"] == "HS256"
    assert {"exp", "iat", "sub", "typ"} <= set(body) and body["sub"] == "user-1" and body["typ"] == "access"
    assert body["exp"] - body["iat"] == 3600


# --------------------------------------------------------------------------- API keys


async def test_revoked_key_is_refused(client, backend, make_user):
    account = await make_user()
    key_id = (await (await client.get("/api/keys", headers=account.auth)).json())["keys"][0]["id"]
    assert (await client.delete(f"/api/keys/{key_id}", headers=account.auth)).status == 204
    assert await me_status(client, account.api_key) == 401
    # revoking again finds nothing
    token = await jwt_for(client, account)
    resp = await client.delete(f"/api/keys/{key_id}", headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 404


async def test_malformed_keys_are_refused(client, backend, make_user):
    account = await make_user()
    key = account.api_key
    for bad in (
        key[:-1],
        key + "x",
        key[:20],
        "ih_",
        "ih_" + "A" * 43,
        key.replace("ih_", "IH_"),
        key[:-1] + "|",
        key[:-1] + "\u202e",
        "ih_" + "a" * 500,
    ):
        assert await me_status(client, bad) == 401, bad


async def test_no_credential_of_one_user_ever_acts_for_another(client, backend, make_user):
    alice, bob = await make_user(), await make_user()
    bob_key_id = (await (await client.get("/api/keys", headers=bob.auth)).json())["keys"][0]["id"]
    alice_jwt = await jwt_for(client, alice)

    async def session_headers() -> dict[str, str]:
        # last: from here on the test client's browser carries alice's session cookie
        return {"X-CSRF-Token": await logged_in_token(client, alice)}

    for label, headers in (
        ("api key", alice.auth),
        ("jwt", {"Authorization": f"Bearer {alice_jwt}"}),
        ("session", None),
    ):
        headers = headers if headers is not None else await session_headers()
        me = await client.get("/api/auth/me", headers=headers)
        assert (await me.json())["id"] == alice.id, label
        listing = await (await client.get("/api/keys", headers=headers)).json()
        assert bob_key_id not in {k["id"] for k in listing["keys"]}, label
        resp = await client.delete(f"/api/keys/{bob_key_id}", headers=headers)
        assert resp.status == 404, label
    # the browser form path too
    resp = await client.post(
        f"/keys/{bob_key_id}/revoke", data={"csrf_token": headers["X-CSRF-Token"]}, allow_redirects=False
    )
    assert resp.status == 404
    client.session.cookie_jar.clear()
    me = await client.get("/api/auth/me", headers=bob.auth)  # bob's key still works, and is bob's
    assert me.status == 200 and (await me.json())["id"] == bob.id


async def test_a_bearer_credential_wins_over_the_session_cookie(client, backend, make_user):
    alice, bob = await make_user(), await make_user()
    await logged_in_token(client, alice)
    me = await client.get("/api/auth/me", headers=bob.auth)
    assert (await me.json())["id"] == bob.id
