"""The per-process API-key cache: a valid key costs no query for a moment; a revocation
made anywhere takes effect within that moment, and at once in the revoking process."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import update

from imagehost.accounts import keycache, store
from imagehost.db import utcnow
from imagehost.tables import api_keys
from imagehost.typedefs import ENGINE
from tests.support.accounts import ACCOUNT_TIERS

TIERS = pytest.mark.tiers(*ACCOUNT_TIERS)


@pytest.fixture
def lookups(monkeypatch):
    """How many times the database was asked about a key."""
    calls: list[str] = []
    real = store.authenticate_key

    async def counting(conn, secret):
        calls.append(secret)
        return await real(conn, secret)

    monkeypatch.setattr(store, "authenticate_key", counting)
    return calls


@TIERS
async def test_a_valid_key_is_looked_up_once_in_a_burst(client, backend, make_user, lookups):
    user = await make_user()
    keycache.clear()
    for _ in range(5):
        assert (await client.get("/api/auth/me", headers=user.auth)).status == 200
    assert lookups == [user.api_key]


@TIERS
async def test_a_key_revoked_by_another_process_is_refused_within_the_cache_lifetime(client, backend, make_user):
    user = await make_user()
    assert (await client.get("/api/auth/me", headers=user.auth)).status == 200  # cached now
    # Another process revokes it: this process's cache is not told.
    async with client.server.app[ENGINE].begin() as conn:
        await conn.execute(update(api_keys).values(revoked_at=utcnow()))
    deadline = time.monotonic() + 10 * keycache.TTL
    while (await client.get("/api/auth/me", headers=user.auth)).status != 401:
        assert time.monotonic() < deadline, "a revoked key was still accepted"
        await asyncio.sleep(0.05)
    assert (await client.get("/api/auth/me", headers=user.auth)).status == 401


@TIERS
async def test_a_revocation_in_this_process_is_seen_at_the_next_request(client, backend, make_user, lookups):
    user = await make_user()
    assert (await client.get("/api/auth/me", headers=user.auth)).status == 200
    keys = await (await client.get("/api/keys", headers=user.auth)).json()
    assert (await client.delete(f"/api/keys/{keys['keys'][0]['id']}", headers=user.auth)).status == 204
    assert (await client.get("/api/auth/me", headers=user.auth)).status == 401


@TIERS
async def test_unknown_keys_are_never_cached(client, backend, make_user, lookups):
    await make_user()
    bogus = {"Authorization": "Bearer ih_" + "B" * 43}
    for _ in range(3):
        assert (await client.get("/api/auth/me", headers=bogus)).status == 401
    assert len(lookups) == 3


def test_entries_expire_are_bounded_and_never_hold_the_secret(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(keycache.time, "monotonic", lambda: now[0])
    cache: keycache.KeyCache[str] = keycache.KeyCache(ttl=1.0, size=2)
    cache.put("ih_secret_a", "a", since=100.0)
    assert cache.get("ih_secret_a") == "a"
    now[0] = 100.99
    assert cache.get("ih_secret_a") == "a"
    now[0] = 101.0
    assert cache.get("ih_secret_a") is None
    for name in ("a", "b", "c"):
        cache.put(f"ih_secret_{name}", name, since=now[0])
    assert cache.get("ih_secret_a") is None and cache.get("ih_secret_c") == "c"
    assert all(b"ih_secret" not in k for k in cache._items)
