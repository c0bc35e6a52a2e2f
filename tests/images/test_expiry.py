"""Expiring uploads: an upload may ask to be deleted after a while; past that time it is
gone at once through every route the app serves, and the sweep deletes its objects."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, update

from imagehost.db import utcnow
from imagehost.images import sweep
from imagehost.images.files import ActiveKeys
from imagehost.images.store import ServedType
from imagehost.tables import images
from imagehost.typedefs import ACTIVE_KEYS, ENGINE, ENV
from tests.images.test_presigned import confirm, put
from tests.support.uploads import image_bytes, snapshot, upload, used_bytes


async def _age(client, seconds: float) -> None:
    """Move every image's expiry `seconds` into the past, as time passing would."""
    async with client.server.app[ENGINE].begin() as conn:
        q = select(images.c.id, images.c.expires_at).where(images.c.expires_at.is_not(None))
        for image_id, expires_at in (await conn.execute(q)).all():
            moved = expires_at - timedelta(seconds=seconds)
            await conn.execute(update(images).where(images.c.id == image_id).values(expires_at=moved))


async def test_an_upload_with_x_expires_in_is_gone_everywhere_then_swept(client, backend, make_user):
    user = await make_user()
    resp = await upload(client, user, image_bytes(), headers={"X-Expires-In": "60"})
    body = await resp.json()
    assert resp.status == 201, body
    seconds = (datetime.fromisoformat(body["expires_at"].removesuffix("Z")) - utcnow()).total_seconds()
    assert 0 < seconds <= 60 and body["expires_at"].endswith("Z")
    # Before: it is there.
    assert (await client.get(f"/api/images/{body['id']}", headers=user.auth)).status == 200
    deletion = body["deletion_url"].removeprefix("http://localhost:8000")
    assert (await client.get(deletion)).status == 200

    await _age(client, 61)
    assert (await client.get(f"/api/images/{body['id']}", headers=user.auth)).status == 404
    listing = await (await client.get("/api/images/", headers=user.auth)).json()
    assert listing["images"] == []
    assert (await client.get(f"/images/{body['id']}", headers=user.auth)).status == 404
    assert (await client.get(deletion)).status == 404
    if backend.storage_kind == "local":
        for url in (body["public_url"], body["thumbnail_url"]):
            assert (await client.get(url.removeprefix("http://localhost:8000"))).status == 404

    # The sweep deletes the row and every object, and gives the quota back.
    assert await sweep.sweep_expired(client.server.app[ENV]) == {"expired_removed": 1}
    snap = await snapshot(client, backend)
    assert (snap.objects, snap.images, snap.orphans) == (frozenset(), 0, 0)
    assert await used_bytes(client, user.id) == 0
    assert await sweep.sweep_expired(client.server.app[ENV]) == {"expired_removed": 0}


@pytest.mark.tiers("sqlite-local")
async def test_a_served_expiring_image_is_never_cached_past_its_expiry(client, backend, make_user):
    user = await make_user()
    body = await (await upload(client, user, image_bytes(), params={"expires_in": "10m"})).json()
    resp = await client.get(body["public_url"].removeprefix("http://localhost:8000"))
    assert resp.status == 200
    max_age = int(resp.headers["Cache-Control"].split("max-age=")[1])
    assert 590 <= max_age <= 600
    await _age(client, 601)
    # Time passing would also end the per-process cache's entry at the expiry (see the
    # next test); moving the database's clock alone does not, so start it afresh.
    client.server.app[ACTIVE_KEYS]._items.clear()
    assert (await client.get(body["public_url"].removeprefix("http://localhost:8000"))).status == 404


def test_the_served_type_cache_never_keeps_an_answer_past_the_images_expiry():
    cache = ActiveKeys(ttl=60)
    later = utcnow() + timedelta(hours=1)
    cache.put("a.png", ServedType("image/png", utcnow() - timedelta(seconds=1)))
    cache.put("b.png", ServedType("image/png", later))
    cache.put("c.png", ServedType("image/png", None))
    assert cache.get("a.png") is None
    assert cache.get("b.png") == ServedType("image/png", later)
    assert cache.get("c.png") == ServedType("image/png", None)


@pytest.mark.tiers("sqlite-local", "sqlite-s3")
async def test_a_presigned_upload_carries_its_expiry_to_the_image(client, backend, make_user):
    user = await make_user()
    data = image_bytes()
    resp = await client.post(
        "/api/images/upload-url",
        headers=user.auth,
        json={"filename": "a.png", "content_type": "image/png", "size_bytes": len(data), "expires_in": "1h"},
    )
    ticket = await resp.json()
    assert resp.status == 201, ticket
    assert await put(client, backend, ticket, data) == 200
    image = await (await confirm(client, user, ticket["r2_key"])).json()
    assert image["expires_at"] is not None
    await _age(client, 3601)
    assert (await client.get(f"/api/images/{image['id']}", headers=user.auth)).status == 404


@pytest.mark.tiers("sqlite-local")
@pytest.mark.parametrize("value", ["0", "-5", "10x", "1w", "59", "400d", "1.5h", "1e3", "", " 1h; drop"])
async def test_an_invalid_or_out_of_range_expiry_is_refused_and_stores_nothing(client, backend, make_user, value):
    user = await make_user()
    before = await snapshot(client, backend)
    resp = await upload(client, user, image_bytes(), headers={"X-Expires-In": value})
    body = await resp.json()
    if value == "":  # an empty header is no expiry at all
        assert resp.status == 201 and body["expires_at"] is None
        return
    assert resp.status == 422, body
    assert body["code"] == "invalid_input" and body["detail"]["field"] == "expires_in"
    assert await snapshot(client, backend) == before
    resp = await client.post(
        "/api/images/upload-url",
        headers=user.auth,
        json={"content_type": "image/png", "size_bytes": 100, "expires_in": value},
    )
    assert resp.status == 422
    assert await snapshot(client, backend) == before


@pytest.mark.tiers("sqlite-local")
async def test_the_expiry_may_come_as_a_form_field_before_the_file(client, backend, make_user):
    import aiohttp

    user = await make_user()
    form = aiohttp.FormData()
    form.add_field("expires_in", "7d")
    form.add_field("file", image_bytes(), filename="a.png", content_type="image/png")
    body = await (await client.post("/api/upload", data=form, headers=user.auth)).json()
    assert body["expires_at"] is not None
    seconds = (datetime.fromisoformat(body["expires_at"].removesuffix("Z")) - utcnow()).total_seconds()
    assert 7 * 86400 - 120 < seconds <= 7 * 86400
