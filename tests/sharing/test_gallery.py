"""The gallery and detail pages and sharing: the uploader's expiry picker starts at the
user's default, expiring images show their time left (server-rendered), and the share
page is one of the link formats."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import update

from imagehost.tables import users
from imagehost.typedefs import ENGINE
from tests.support.accounts import logged_in_token
from tests.support.uploads import image_bytes, upload, uploaded

from .support import parse

pytestmark = pytest.mark.tiers("sqlite-local", "pg-local")


def _picker(html: str) -> list[tuple[str, bool]]:
    tags = parse(html)
    options, inside = [], False
    for tag, attrs in tags.tags:
        if tag == "select":
            inside = "data-expiry" in attrs
        elif tag == "option" and inside:
            options.append((attrs["value"], "selected" in attrs))
    return options


async def test_the_expiry_picker_offers_the_choices_and_starts_at_the_users_default(client, backend, make_user):
    user = await make_user()
    token = {"X-CSRF-Token": await logged_in_token(client, user)}
    html = await (await client.get("/gallery")).text()
    assert _picker(html) == [
        ("", True),
        ("600", False),
        ("3600", False),
        ("86400", False),
        ("604800", False),
        ("2592000", False),
    ]  # no default: "Never"
    assert ">Never</option>" in html
    resp = await client.patch("/api/account/preferences", headers=token, json={"default_expiry_seconds": 86400})
    assert resp.status == 200
    assert ("86400", True) in _picker(await (await client.get("/gallery")).text())
    # a default set through the API that is not one of the choices is offered too
    resp = await client.patch("/api/account/preferences", headers=token, json={"default_expiry_seconds": 7200})
    assert resp.status == 200
    picker = _picker(await (await client.get("/gallery")).text())
    assert ("7200", True) in picker and picker.index(("7200", True)) == 3  # between 1 hour and 1 day


@pytest.mark.parametrize("settings_overrides", [{"expiry_max_seconds": 86400}])
async def test_the_picker_offers_only_what_the_server_allows(client, backend, make_user, settings_overrides):
    user = await make_user()
    await logged_in_token(client, user)
    values = [v for v, _ in _picker(await (await client.get("/gallery")).text())]
    assert values == ["", "600", "3600", "86400"]


async def test_expiring_images_show_their_time_left_on_the_tile_and_the_detail_page(client, backend, make_user):
    user = await make_user()
    expiring = await (await upload(client, user, image_bytes(), params={"expires_in": "1h"})).json()
    forever = await uploaded(client, user)
    await logged_in_token(client, user)
    html = await (await client.get("/gallery")).text()
    badge = r'data-image-id="([^"]+)"[^>]*>.*?(<span class="tile-badge tile-expiry"[^>]*>[^<]*)'
    tiles = dict(re.findall(badge, html, re.S))
    when = re.escape(expiring["expires_at"])
    assert re.search(r'data-expires-at="' + when + r'"[^>]*>(59|60) min left$', tiles[expiring["id"]])
    assert re.search(r'data-expires-at=""[^>]*hidden>$', tiles[forever["id"]])
    # the tile carries the share page's link for the copy menu, which offers it
    assert f'data-page-url="{expiring["page_url"]}"' in html
    assert 'data-copy-format="page"' in html
    detail = await (await client.get(f"/images/{expiring['id']}")).text()
    assert re.search(r'data-testid="time-left">(59|60) min left</span>', detail)
    inputs = {a["id"]: a["value"] for t, a in parse(detail).tags if t == "input" and "readonly" in a}
    assert inputs["link-page"] == expiring["page_url"]
    plain = await (await client.get(f"/images/{forever['id']}")).text()
    assert "time-left" not in plain


@pytest.mark.parametrize("settings_overrides", [{"expiry_max_seconds": 86400}])
async def test_a_default_the_limits_no_longer_allow_is_not_offered(client, backend, make_user, settings_overrides):
    user = await make_user()
    async with client.server.app[ENGINE].begin() as conn:
        await conn.execute(update(users).where(users.c.id == user.id).values(default_expiry_seconds=604800))
    await logged_in_token(client, user)
    picker = _picker(await (await client.get("/gallery")).text())
    assert picker == [("", True), ("600", False), ("3600", False), ("86400", False)]
