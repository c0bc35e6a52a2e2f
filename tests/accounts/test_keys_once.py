"""The keys page shows a new key's secret exactly once, and reloading it creates nothing
(post/redirect/get; imagehost issue 11)."""

from __future__ import annotations

import re

import pytest

from tests.support.accounts import ACCOUNT_TIERS, logged_in_token

pytestmark = pytest.mark.tiers(*ACCOUNT_TIERS)
SECRET = re.compile(r'value="(ih_[A-Za-z0-9_-]{43})"')


async def test_creating_a_key_redirects_and_reloading_creates_no_other(client, backend, make_user, db_count):
    account = await make_user()  # it has one key already ("tests")
    token = await logged_in_token(client, account)
    resp = await client.post("/keys", data={"name": "Laptop", "csrf_token": token}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/keys"
    assert await db_count("api_keys", user_id=account.id) == 2

    shown = await client.get("/keys")
    assert shown.status == 200 and shown.headers["Cache-Control"] == "no-store"
    html = await shown.text()
    secret = SECRET.search(html).group(1)
    assert "New key “Laptop”" in html
    me = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {secret}"})
    assert (await me.json())["id"] == account.id

    for _ in range(2):  # reload, twice: the secret is gone and no key is made
        again = await client.get("/keys")
        text = await again.text()
        assert again.status == 200 and secret not in text and not SECRET.search(text)
        assert "Laptop" in text  # still listed, by name and prefix
    assert await db_count("api_keys", user_id=account.id) == 2


async def test_the_secret_is_not_left_in_a_session_that_showed_it(client, backend, make_user):
    """After the one GET, even the (encrypted) cookie no longer holds the secret: a copy
    of the cookie taken later cannot bring it back."""
    account = await make_user()
    token = await logged_in_token(client, account)
    await client.post("/keys", data={"name": "Desk", "csrf_token": token}, allow_redirects=False)
    before = client.session.cookie_jar.filter_cookies(client.make_url("/"))["imagehost_session"].value
    secret = SECRET.search(await (await client.get("/keys")).text()).group(1)
    after = client.session.cookie_jar.filter_cookies(client.make_url("/"))["imagehost_session"].value
    assert after != before
    client.session.cookie_jar.clear()
    replay = await client.get("/keys", cookies={"imagehost_session": after})
    assert secret not in await replay.text()


async def test_a_refused_name_creates_nothing_and_shows_the_form_again(client, backend, make_user, db_count):
    account = await make_user()
    token = await logged_in_token(client, account)
    resp = await client.post("/keys", data={"name": "", "csrf_token": token}, allow_redirects=False)
    assert resp.status == 422 and 'id="key-error"' in await resp.text()
    assert await db_count("api_keys", user_id=account.id) == 1
