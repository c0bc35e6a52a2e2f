"""The image pipeline end to end: what is public carries no location or camera data,
keeps its pixels and its orientation; thumbnails and display sizes exist when the answer
says so and go with the image; a file libvips cannot decode is refused and leaves
nothing; the backfill brings older images up to date."""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image
from sqlalchemy import select, update

from imagehost.images import pipeline, store
from imagehost.tables import images
from imagehost.typedefs import ENGINE, ENV
from tests.images.test_presigned import ask, confirm, put
from tests.support.uploads import snapshot, upload, used_bytes

SERIAL, OWNER = "SN-0042-SECRET", "Jane Q. Photographer"
EVERY = pytest.mark.tiers("sqlite-local", "sqlite-s3", "pg-local", "pg-s3")


def phone_photo(size: tuple[int, int] = (600, 400), orientation: int = 6) -> bytes:
    """A JPEG as a phone writes it: GPS position and altitude, serial number, owner,
    capture time, and an orientation to apply."""
    im = Image.effect_noise(size, 50).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x013B] = OWNER  # Artist
    exif[0x010F], exif[0x0110] = "PhoneMaker", "Phone 9"
    ifd = exif.get_ifd(0x8769)
    ifd[0xA431] = SERIAL  # BodySerialNumber
    ifd[0x9003] = "2026:11:30 12:34:56"  # DateTimeOriginal
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (48.0, 51.0, 29.0)
    gps[3], gps[4] = "E", (2.0, 17.0, 40.0)
    gps[6] = 35.0  # altitude
    buf = io.BytesIO()
    im.save(buf, "JPEG", exif=exif, quality=90)
    data = buf.getvalue()
    assert SERIAL.encode() in data and OWNER.encode() in data
    return data


def assert_nothing_private(served: bytes, original: bytes) -> None:
    assert SERIAL.encode() not in served and OWNER.encode() not in served
    assert b"PhoneMaker" not in served and b"2026:11:30" not in served
    im = Image.open(io.BytesIO(served))
    exif = im.getexif()
    assert exif.get_ifd(0x8825) == {} and 0x8825 not in exif  # no GPS at all
    assert exif.get(0x0112) == 6  # still displays upright
    assert set(exif) == {0x0112}
    # Lossless: the same pixels as the upload.
    assert im.tobytes() == Image.open(io.BytesIO(original)).tobytes()


@EVERY
async def test_a_phone_photo_is_served_without_location_or_camera_data_on_the_streamed_path(client, backend, make_user):
    user = await make_user()
    photo = phone_photo()
    resp = await upload(client, user, photo, "IMG_0001.jpg", "image/jpeg")
    body = await resp.json()
    assert resp.status == 201, body
    key = body["public_url"].rsplit("/", 1)[-1]
    served = backend.read_object(key)
    assert_nothing_private(served, photo)
    assert body["size_bytes"] == len(served) < len(photo)  # the stored size is what counts
    assert await used_bytes(client, user.id) == len(served)
    # Orientation 6: shown as a portrait, and the thumbnail is made upright.
    assert (body["width"], body["height"]) == (400, 600)
    assert (body["thumbnail_width"], body["thumbnail_height"]) == (400, 600)
    thumb = Image.open(io.BytesIO(backend.read_object(body["thumbnail_url"].rsplit("/", 1)[-1])))
    assert thumb.format == "WEBP" and thumb.size == (400, 600) and not thumb.getexif()


@EVERY
async def test_a_phone_photo_is_served_without_location_or_camera_data_on_the_presigned_path(
    client, backend, make_user
):
    user = await make_user()
    photo = phone_photo()
    ticket = await (await ask(client, user, photo, "image/jpeg", "IMG_0002.jpg")).json()
    assert await put(client, backend, ticket, photo) == 200
    resp = await confirm(client, user, ticket["r2_key"])
    body = await resp.json()
    assert resp.status == 201, body
    served = backend.read_object(body["public_url"].rsplit("/", 1)[-1])
    assert_nothing_private(served, photo)
    assert body["size_bytes"] == len(served)
    assert await used_bytes(client, user.id) == len(served)


@pytest.mark.tiers("sqlite-local", "sqlite-s3")
async def test_a_large_photo_gets_a_display_size_right_after_the_answer_and_loses_it_with_the_image(
    client, backend, make_user
):
    user = await make_user()
    photo = phone_photo((3000, 2000), orientation=1)
    resp = await upload(client, user, photo, "big.jpg", "image/jpeg")
    body = await resp.json()
    assert resp.status == 201, body
    assert body["display_url"] == body["public_url"]  # the original until the display exists
    await client.server.app[ENV].background.drain()
    got = await (await client.get(f"/api/images/{body['id']}", headers=user.auth)).json()
    display = got["display_url"].rsplit("/", 1)[-1]
    assert display != body["public_url"].rsplit("/", 1)[-1] and display.endswith(".webp")
    im = Image.open(io.BytesIO(backend.read_object(display)))
    assert im.format == "WEBP" and im.size == (2048, 1365)
    assert (got["thumbnail_width"], got["thumbnail_height"]) == (640, 427)
    async with client.server.app[ENGINE].connect() as conn:
        q = select(images.c.pipeline_version).where(images.c.id == body["id"])
        row = (await conn.execute(q)).scalar_one()
    assert row == store.PIPELINE_VERSION
    assert len(backend.objects()) == 3
    assert (await client.delete(f"/api/images/{body['id']}", headers=user.auth)).status == 204
    snap = await snapshot(client, backend)
    assert (snap.objects, snap.images, snap.orphans) == (frozenset(), 0, 0)


@pytest.mark.tiers("sqlite-local", "sqlite-s3")
async def test_derivatives_are_served_with_the_image_headers(client, backend, make_user):
    user = await make_user()
    body = await (await upload(client, user, phone_photo(), "a.jpg", "image/jpeg")).json()
    if backend.storage_kind == "s3":
        assert body["thumbnail_url"].startswith(backend.settings.r2_public_url)
        head = backend.s3.head_object(Bucket=backend.settings.r2_bucket_name, Key=body["thumbnail_url"].rsplit("/")[-1])
        assert head["ContentType"] == "image/webp"
        return
    resp = await client.get(body["thumbnail_url"].removeprefix("http://localhost:8000"))
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "image/webp"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert (await resp.read())[8:12] == b"WEBP"


def _undecodable_png() -> bytes:
    """Every chunk well-formed (the structure check passes), the pixel data garbage."""
    import os
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", 64, 64, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", os.urandom(500)) + chunk(b"IEND", b"")


@EVERY
async def test_a_file_libvips_cannot_decode_is_refused_and_leaves_nothing(client, backend, make_user):
    user = await make_user()
    before = await snapshot(client, backend)
    resp = await upload(client, user, _undecodable_png())
    body = await resp.json()
    assert resp.status == 422, body
    assert body["code"] == "invalid_image"
    assert await snapshot(client, backend) == before
    assert await used_bytes(client, user.id) == 0


@pytest.mark.tiers("sqlite-local", "sqlite-s3")
async def test_the_backfill_strips_and_makes_derivatives_for_older_images(client, backend, make_user):
    """An image stored before the pipeline (metadata and all, no thumbnail) is stripped
    in place and gets its derivatives; its public URL stays; a second run has nothing to do."""
    user = await make_user()
    app = client.server.app
    env = app[ENV]
    photo = phone_photo((2400, 1600))
    # What the old code stored: the bytes as uploaded, a row without derivatives.
    env_plain = env.__class__(**{**env.__dict__, "settings": env.settings.model_copy(update={"strip_metadata": False})})
    app._state[ENV] = env_plain
    try:
        body = await (await upload(client, user, photo, "old.jpg", "image/jpeg")).json()
        await env_plain.background.drain()
    finally:
        app._state[ENV] = env
    key = body["public_url"].rsplit("/", 1)[-1]
    assert backend.read_object(key) == photo
    async with app[ENGINE].begin() as conn:
        row = await store.get(conn, body["id"])
        assert row is not None
        await env.storage.delete(row.thumb_key)
        if row.display_key:
            await env.storage.delete(row.display_key)
        await conn.execute(
            update(images)
            .where(images.c.id == body["id"])
            .values(thumb_key=None, display_key=None, thumb_width=None, thumb_height=None, pipeline_version=0)
        )
    assert backend.objects() == {key}

    assert await pipeline.backfill(env) == {"processed": 1, "failed": 0}
    got = await (await client.get(f"/api/images/{body['id']}", headers=user.auth)).json()
    assert got["public_url"] == body["public_url"]  # stripped in place
    served = backend.read_object(key)
    assert_nothing_private(served, photo)
    assert got["size_bytes"] == len(served) and await used_bytes(client, user.id) == len(served)
    assert (got["width"], got["height"]) == (1600, 2400)
    assert got["thumbnail_url"] != got["public_url"] and got["display_url"] != got["public_url"]
    assert len(backend.objects()) == 3
    assert (await snapshot(client, backend)).orphans == 0
    assert await pipeline.backfill(env) == {"processed": 0, "failed": 0}


@pytest.mark.tiers("sqlite-local")
async def test_the_backfill_gives_up_on_an_image_it_cannot_decode_after_its_attempts(client, backend, make_user):
    user = await make_user()
    app = client.server.app
    env = app[ENV]
    body = await (await upload(client, user, phone_photo(), "x.jpg", "image/jpeg")).json()
    key = body["public_url"].rsplit("/", 1)[-1]
    (backend.settings.local_storage_path / key).write_bytes(_undecodable_png())  # rotted on disk
    async with app[ENGINE].begin() as conn:
        await conn.execute(update(images).values(pipeline_version=0, content_type="image/png"))
    for _ in range(pipeline.MAX_ATTEMPTS):
        assert await pipeline.backfill(env) == {"processed": 0, "failed": 1}
    assert await pipeline.backfill(env) == {"processed": 0, "failed": 0}  # left alone now
    got = await (await client.get(f"/api/images/{body['id']}", headers=user.auth)).json()
    assert got["thumbnail_url"] != got["public_url"]  # its earlier derivatives still stand
    assert (await snapshot(client, backend)).orphans == 0
    assert list((backend.settings.data_dir / "work").glob("*")) == []


def _flat_png(width: int, height: int) -> bytes:
    """A decompression bomb under the pixel limit: one colour, so a few KB on disk,
    width × height × 3 bytes once decoded."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" + b"\x00" * (width * 3)
    raw = zlib.compressobj(9)
    idat = b"".join(raw.compress(row) for _ in range(height)) + raw.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.tiers("sqlite-local", "sqlite-s3")
async def test_a_decompression_bomb_under_the_pixel_limit_is_handled_in_the_worker(client, backend, make_user):
    """48 MP of one colour, a few KB: the worker reads it sequentially (its memory stays
    bounded) and makes the thumbnail; nothing of it is decoded in the server."""
    user = await make_user()
    resp = await upload(client, user, _flat_png(8000, 6000), "flat.png")
    body = await resp.json()
    assert resp.status == 201, body
    assert (body["thumbnail_width"], body["thumbnail_height"]) == (640, 480)


@pytest.mark.tiers("sqlite-local", "sqlite-s3")
@pytest.mark.parametrize("settings_overrides", [{"derivative_timeout_seconds": 0.05}], ids=["time-limit"])
async def test_a_file_that_hangs_the_decoder_is_refused_and_the_server_goes_on(
    client, backend, make_user, settings_overrides
):
    user = await make_user()
    before = await snapshot(client, backend)
    bomb = _flat_png(8000, 6000)  # 48 MP: within the pixel limit, ~144 MB decoded
    assert len(bomb) < 200_000
    resp = await upload(client, user, bomb, "bomb.png")
    body = await resp.json()
    assert resp.status == 422, body
    assert body["code"] == "invalid_image" and body["detail"]["reason"] == "timeout"
    assert await snapshot(client, backend) == before
    assert await used_bytes(client, user.id) == 0
    # The server goes on (the worker that was killed is replaced in the background).
    assert (await client.get("/api/health")).status == 200


@pytest.mark.tiers("sqlite-local")
async def test_an_animated_gif_has_a_still_thumbnail_and_its_tile_says_animated(client, backend, make_user):
    user = await make_user()
    frames = [Image.new("RGB", (120, 90), c) for c in ((200, 30, 30), (30, 200, 30), (30, 30, 200))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    body = await (await upload(client, user, buf.getvalue(), "spin.gif", "image/gif")).json()
    assert body["animated"] is True
    thumb = Image.open(io.BytesIO(backend.read_object(body["thumbnail_url"].rsplit("/", 1)[-1])))
    assert thumb.format == "WEBP" and getattr(thumb, "n_frames", 1) == 1
    assert body["display_url"] == body["public_url"]  # small: the animated original is shown
    still = await (await upload(client, user, phone_photo((300, 200)), "still.jpg", "image/jpeg")).json()
    page = await (await client.get("/gallery", headers={**user.auth})).text()
    badge = re.compile(r'data-image-id="([^"]+)".*?<span class="tile-badge" data-animated( hidden)?>', re.S)
    tiles = dict(badge.findall(page))
    assert tiles == {body["id"]: "", still["id"]: " hidden"}
