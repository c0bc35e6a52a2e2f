"""The ShareX file and sharing: `?link=page` copies the share page's link (direct stays
the default), and the user's default expiry travels as `X-Expires-In`."""

from __future__ import annotations

import io
import json
from datetime import datetime
from urllib.parse import urlsplit

import aiohttp
import pytest
from sqlalchemy import update

from imagehost.db import utcnow
from imagehost.tables import users
from imagehost.typedefs import ENGINE
from tests.support.uploads import image_bytes

from .test_sharex import resolve

pytestmark = pytest.mark.tiers("sqlite-local", "pg-s3")


async def _sxcu(client, user, **params) -> dict:
    resp = await client.get("/api/sharex.sxcu", headers=user.auth, params=params)
    assert resp.status == 200, await resp.text()
    return json.loads(await resp.text())


async def _upload_as_sharex(client, config: dict) -> dict:
    form = aiohttp.FormData()
    form.add_field(config["FileFormName"], io.BytesIO(image_bytes()), filename="shot.png", content_type="image/png")
    resp = await client.post(urlsplit(config["RequestURL"]).path, data=form, headers=config["Headers"])
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def test_link_page_makes_sharex_copy_the_share_page(client, backend, make_user):
    user = await make_user()
    direct = await _sxcu(client, user)
    assert direct["URL"] == "{json:public_url}" == (await _sxcu(client, user, link="direct"))["URL"]
    page = await _sxcu(client, user, link="page")
    assert page["URL"] == "{json:page_url}"
    assert {k: v for k, v in page.items() if k not in ("URL", "Headers")} == {
        k: v for k, v in direct.items() if k not in ("URL", "Headers")
    }
    answer = await _upload_as_sharex(client, page)
    copied = resolve(page["URL"], answer)
    assert copied == answer["page_url"] == f"http://localhost:8000/v/{answer['id']}"
    client.session.cookie_jar.clear()
    assert (await client.get(urlsplit(copied).path)).status == 200  # the link works for anyone
    assert "X-Expires-In" not in page["Headers"]  # no default expiry: uploads never expire
    assert answer["expires_at"] is None


async def test_the_users_default_expiry_travels_with_the_sharex_file(client, backend, make_user):
    user = await make_user()
    resp = await client.patch("/api/account/preferences", headers=user.auth, json={"default_expiry_seconds": 86400})
    assert resp.status == 200
    config = await _sxcu(client, user)
    assert config["Headers"]["X-Expires-In"] == "86400"
    answer = await _upload_as_sharex(client, config)
    left = (datetime.fromisoformat(answer["expires_at"].removesuffix("Z")) - utcnow()).total_seconds()
    assert 86400 - 60 < left <= 86400


async def test_an_unknown_link_kind_is_refused_and_makes_no_key(client, backend, make_user, db_count):
    user = await make_user()
    keys = await db_count("api_keys", user_id=user.id)
    for bad in ("thumbnail", "PAGE", "page "):
        resp = await client.get("/api/sharex.sxcu", headers=user.auth, params={"link": bad})
        answer = await resp.json()
        assert resp.status == 422 and answer["code"] == "invalid_input" and answer["detail"]["field"] == "link"
    assert await db_count("api_keys", user_id=user.id) == keys


@pytest.mark.parametrize("settings_overrides", [{"expiry_max_seconds": 86400}])
async def test_a_default_the_limits_no_longer_allow_is_not_sent(client, backend, make_user, settings_overrides):
    """Set while the server allowed 7 days, now it allows 1: a file sending it would have
    every upload refused, so it sends none."""
    user = await make_user()
    async with client.server.app[ENGINE].begin() as conn:
        await conn.execute(update(users).where(users.c.id == user.id).values(default_expiry_seconds=604800))
    config = await _sxcu(client, user)
    assert "X-Expires-In" not in config["Headers"]
    assert (await _upload_as_sharex(client, config))["expires_at"] is None
