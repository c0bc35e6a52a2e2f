"""MAX_USER_STORAGE_MB: reserved atomically (parallel uploads cannot overshoot),
released on failure and on delete."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.uploads import image_bytes, png_of_size, snapshot, upload, used_bytes

QUOTA = 1024 * 1024


@pytest.fixture
def settings_overrides():
    return {"max_user_storage_mb": 1}


async def test_twenty_parallel_uploads_cannot_overshoot_the_quota(client, backend, make_user):
    user = await make_user()
    data = png_of_size(150_000)
    results = await asyncio.gather(*(upload(client, user, data) for _ in range(20)))
    statuses = [r.status for r in results]
    ok = statuses.count(201)
    assert set(statuses) <= {201, 413}
    assert 1 <= ok <= QUOTA // len(data)
    assert statuses.count(413) == 20 - ok
    used = await used_bytes(client, user.id)
    assert used == ok * len(data) <= QUOTA
    snap = await snapshot(client, backend)
    assert len(snap.objects) == 2 * ok and snap.images == ok  # each original and its thumbnail
    refused = next(r for r in results if r.status == 413)
    body = await refused.json()
    assert body["error"] == "storage quota exceeded" and body["detail"]["quota_bytes"] == QUOTA


async def test_quota_comes_back_after_failure_and_delete(client, backend, make_user):
    user = await make_user()
    resp = await upload(client, user, b"not an image at all")
    assert resp.status == 415
    assert await used_bytes(client, user.id) == 0
    body = await (await upload(client, user, image_bytes())).json()
    assert await used_bytes(client, user.id) == body["size_bytes"]
    assert (await client.delete(f"/api/images/{body['id']}", headers=user.auth)).status == 204
    assert await used_bytes(client, user.id) == 0


async def test_presigned_upload_url_reserves_quota(client, backend, make_user):
    user = await make_user()
    ask = {"filename": "a.png", "content_type": "image/png", "size_bytes": 700_000}
    first = await client.post("/api/images/upload-url", headers=user.auth, json=ask)
    assert first.status == 201
    second = await client.post("/api/images/upload-url", headers=user.auth, json=ask)
    assert second.status == 413
    assert await used_bytes(client, user.id) == 700_000
