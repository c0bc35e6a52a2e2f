"""GET /i/<key> in local mode; verified Content-Type in S3 mode."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from imagehost.tables import images
from imagehost.typedefs import ENGINE
from tests.support.uploads import image_bytes, uploaded

LOCAL = pytest.mark.tiers("sqlite-local", "pg-local")


def _path(img: dict) -> str:
    return "/i/" + img["public_url"].rsplit("/", 1)[-1]


@LOCAL
async def test_image_is_served_with_its_verified_type_sandboxed_and_cached(client, backend, make_user):
    user = await make_user()
    data = image_bytes("GIF", (40, 40), noise=True)
    img = await uploaded(client, user, data, "looks-like.png")
    resp = await client.get(_path(img))
    assert resp.status == 200
    assert await resp.read() == data
    assert resp.headers["Content-Type"] == "image/gif"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert resp.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert "Set-Cookie" not in resp.headers
    etag = resp.headers["ETag"]
    again = await client.get(_path(img), headers={"If-None-Match": etag})
    assert again.status == 304
    part = await client.get(_path(img), headers={"Range": "bytes=0-5"})
    assert part.status == 206 and await part.read() == data[:6]
    head = await client.head(_path(img))
    assert head.status == 200 and int(head.headers["Content-Length"]) == len(data)


@LOCAL
async def test_only_active_images_are_served(client, backend, make_user):
    user = await make_user()
    img = await uploaded(client, user, image_bytes())
    async with client.server.app[ENGINE].begin() as conn:
        await conn.execute(update(images).values(status="pending"))
    assert (await client.get(_path(img))).status == 404
    for path in ("/i/nothing-here.png", "/i/AAAAAAAAAAAAAAAA.png", "/i/..%2F..%2Fetc%2Fpasswd", "/i/pending"):
        assert (await client.get(path)).status == 404, path


@LOCAL
async def test_deleted_image_is_no_longer_served(client, backend, make_user):
    user = await make_user()
    img = await uploaded(client, user, image_bytes())
    assert (await client.get(_path(img))).status == 200  # now in the active-key cache
    assert (await client.delete(f"/api/images/{img['id']}", headers=user.auth)).status == 204
    assert (await client.get(_path(img))).status == 404


@pytest.mark.tiers("sqlite-s3", "pg-s3")
async def test_s3_objects_carry_the_verified_type_and_public_url(client, backend, make_user):
    user = await make_user()
    img = await uploaded(client, user, image_bytes("WEBP"), "x.png")
    key = img["public_url"].rsplit("/", 1)[-1]
    assert img["public_url"] == f"{backend.settings.r2_public_url}/{key}"
    head = backend.s3.head_object(Bucket=backend.settings.r2_bucket_name, Key=key)
    assert head["ContentType"] == "image/webp"
    assert (await client.get(f"/i/{key}")).status == 404  # the app serves no bytes in S3 mode
