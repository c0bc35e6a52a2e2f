"""Presigned uploads: upload-url → PUT → confirm. The checks at confirm are the real
guard: moto enforces none of the signed terms, and an S3 peer we do not control may not
either. The strict peer (tier s3-strict, LocalStack) refuses a PUT off the signed terms."""

from __future__ import annotations

import time
from datetime import timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import pytest
from sqlalchemy import update

from imagehost.db import utcnow
from imagehost.images import sweep
from imagehost.tables import images
from imagehost.typedefs import ENGINE, ENV, STORAGE
from tests.support.uploads import error_of, image_bytes, snapshot, used_bytes

# The tests that PUT to the URL also run against the strict S3 peer.
WITH_STRICT_PEER = pytest.mark.tiers("sqlite-local", "sqlite-s3", "pg-local", "pg-s3", "s3-strict")


async def ask(
    client, user, data: bytes, content_type: str = "image/png", filename: str = "shot.png", size: int | None = None
):
    return await client.post(
        "/api/images/upload-url",
        headers=user.auth,
        json={"filename": filename, "content_type": content_type, "size_bytes": len(data) if size is None else size},
    )


async def put(client, backend, ticket: dict, data: bytes, headers: dict | None = None):
    """PUT the bytes the way a browser would: to the URL, with the headers we were given."""
    hdrs = dict(ticket["headers"]) if headers is None else headers
    url = ticket["upload_url"]
    if backend.storage_kind == "local":
        parts = urlsplit(url)
        assert f"{parts.scheme}://{parts.netloc}" == backend.settings.public_base_url
        resp = await client.put(f"{parts.path}?{parts.query}", data=data, headers=hdrs)
        return resp.status
    async with aiohttp.ClientSession() as session, session.put(url, data=data, headers=hdrs) as resp:
        return resp.status


async def confirm(client, user, key: str):
    return await client.post("/api/images/confirm", headers=user.auth, json={"r2_key": key})


@WITH_STRICT_PEER
async def test_presigned_upload_round_trip(client, backend, make_user):
    user = await make_user()
    data = image_bytes("JPEG", (90, 60), noise=True)
    resp = await ask(client, user, data, "image/jpeg", "cat.jpg")
    ticket = await resp.json()
    assert resp.status == 201, ticket
    assert set(ticket) == {"upload_url", "r2_key", "public_url", "expires_at", "headers"}
    assert ticket["r2_key"].startswith("pending/") and ticket["r2_key"].endswith(".jpg")
    assert ticket["headers"] == {"Content-Type": "image/jpeg"}
    assert await used_bytes(client, user.id) == len(data)  # reserved at once
    assert await put(client, backend, ticket, data) == 200
    assert backend.objects() == {ticket["r2_key"]}

    resp = await confirm(client, user, ticket["r2_key"])
    body = await resp.json()
    assert resp.status == 201, body
    assert body["public_url"] == ticket["public_url"]
    assert (body["content_type"], body["width"], body["height"], body["size_bytes"]) == (
        "image/jpeg",
        90,
        60,
        len(data),
    )
    final = body["public_url"].rsplit("/", 1)[-1]
    thumb = body["thumbnail_url"].rsplit("/", 1)[-1]
    assert backend.objects() == {final, thumb}  # the temporary object is gone
    assert backend.read_object(final) == data
    assert await used_bytes(client, user.id) == len(data)

    again = await confirm(client, user, ticket["r2_key"])  # idempotent
    assert again.status == 200
    assert (await again.json())["id"] == body["id"]
    # The still-valid URL can never change the confirmed image.
    status = await put(client, backend, ticket, data[::-1])
    if backend.storage_kind == "local":
        assert status == 404  # the local URL only works while its upload is pending
    assert backend.read_object(final) == data


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        ({"filename": "a.svg", "content_type": "image/svg+xml", "size_bytes": 100}, 415),
        ({"filename": "a.html", "content_type": "text/html", "size_bytes": 100}, 415),
        ({"filename": "a.png", "content_type": "image/png", "size_bytes": 26 * 1024 * 1024}, 413),
        ({"filename": "a.png", "content_type": "image/png", "size_bytes": 0}, 422),
        ({"filename": "a.png", "content_type": "image/png", "size_bytes": "12"}, 422),
        ({"filename": "a.png", "size_bytes": 12}, 422),
    ],
)
async def test_upload_url_refuses_bad_declarations_and_writes_nothing(client, backend, make_user, payload, status):
    user = await make_user()
    before = await snapshot(client, backend)
    resp = await client.post("/api/images/upload-url", headers=user.auth, json=payload)
    assert resp.status == status
    assert error_of(await resp.json())
    assert await snapshot(client, backend) == before


async def test_upload_url_needs_a_json_object_and_a_user(client, backend, make_user):
    user = await make_user()
    resp = await client.post("/api/images/upload-url", headers=user.auth, data=b"[1,2]")
    assert resp.status == 400
    resp = await client.post("/api/images/upload-url", json={"content_type": "image/png", "size_bytes": 1})
    assert resp.status == 401


CHEATS = [
    pytest.param("other-bytes", id="html-bytes-of-the-signed-length"),
    pytest.param("longer", id="more-bytes-than-signed"),
    pytest.param("shorter", id="fewer-bytes-than-signed"),
    pytest.param("other-type", id="gif-bytes-declared-png"),
    pytest.param("other-type-header", id="other-content-type-header"),
]


@WITH_STRICT_PEER
@pytest.mark.parametrize("cheat", CHEATS)
async def test_confirm_refuses_what_was_not_signed_and_removes_it(client, backend, make_user, db_count, cheat):
    user = await make_user()
    good = image_bytes("PNG", (80, 80), noise=True)
    gif = image_bytes("GIF", (80, 80), noise=True)
    before = await snapshot(client, backend)
    # For "other-type", a PNG of the GIF's exact length is declared, so only the type differs.
    ticket = await (await ask(client, user, gif if cheat == "other-type" else good)).json()
    headers = dict(ticket["headers"])
    if cheat == "other-bytes":
        body = b"<html><script>alert(1)</script></html>".ljust(len(good), b" ")
    elif cheat == "longer":
        body = good + b"\x00" * 1000
    elif cheat == "shorter":
        body = good[:-100]
    elif cheat == "other-type":
        body = gif
    else:
        body = good
        headers = {"Content-Type": "image/gif"}
    status = await put(client, backend, ticket, body, headers)
    expected = {"other-bytes": 415, "longer": 422, "shorter": 422, "other-type": 415, "other-type-header": 415}
    if cheat in ("longer", "shorter", "other-type-header") and backend.tier not in ("sqlite-s3", "pg-s3"):
        # Refused at the PUT already: by the app's own signed URL, or by a strict S3 peer
        # (the signature covers Content-Type and Content-Length). Moto takes them.
        assert status in ((400, 413, 415) if backend.storage_kind == "local" else (403,))
        resp = await confirm(client, user, ticket["r2_key"])
        assert resp.status == 422
        assert "nothing has been uploaded" in error_of(await resp.json())
        # Nothing stored, under pending/ or the final key; nothing confirmed.
        assert (await snapshot(client, backend)).objects == before.objects
        assert await db_count("images", status="active") == 0
        # ... and once the URL has expired, the sweep leaves nothing behind at all.
        await expire_and_sweep(client)
        assert await snapshot(client, backend) == before
        return
    assert status == 200  # moto took it; the others took the signed length and type
    resp = await confirm(client, user, ticket["r2_key"])
    payload = await resp.json()
    if cheat == "other-type-header":
        assert resp.status in (201, 415)  # moto stored the PNG bytes: the sniffed type is what counts
        if resp.status == 201:
            assert payload["content_type"] == "image/png"
            return
    else:
        assert resp.status == expected[cheat], payload
    assert error_of(payload)
    after = await snapshot(client, backend)
    assert after.objects == before.objects and after.images == before.images and after.used == before.used
    # The upload's key stays tracked until its URL is dead, so a late PUT there is swept.
    assert after.orphans == before.orphans + 1
    assert await db_count("storage_orphans", storage_key=ticket["r2_key"]) == 1
    # ... and the row is gone: another confirm finds nothing.
    assert (await confirm(client, user, ticket["r2_key"])).status == 404


async def test_confirm_of_a_key_never_issued_is_404(client, backend, make_user):
    user = await make_user()
    for key in ("pending/AAAAAAAAAAAAAAAAAAAAAA.png", "../etc/passwd", "", None, 12, "pending/x"):
        resp = await confirm(client, user, key)  # type: ignore[arg-type]
        assert resp.status == 404, key
        assert error_of(await resp.json())


@WITH_STRICT_PEER
async def test_confirm_before_the_put_keeps_the_upload_open(client, backend, make_user):
    user = await make_user()
    data = image_bytes()
    ticket = await (await ask(client, user, data)).json()
    resp = await confirm(client, user, ticket["r2_key"])
    assert resp.status == 422
    assert "nothing has been uploaded" in error_of(await resp.json())
    assert await put(client, backend, ticket, data) == 200
    assert (await confirm(client, user, ticket["r2_key"])).status == 201


async def test_confirm_of_another_users_upload_is_404_and_changes_nothing(client, backend, make_user):
    alice, mallory = await make_user(), await make_user()
    data = image_bytes()
    ticket = await (await ask(client, alice, data)).json()
    assert await put(client, backend, ticket, data) == 200
    before = await snapshot(client, backend)
    resp = await confirm(client, mallory, ticket["r2_key"])
    assert resp.status == 404
    assert await snapshot(client, backend) == before
    assert (await confirm(client, alice, ticket["r2_key"])).status == 201


async def expire_and_sweep(client) -> dict[str, int]:
    app = client.server.app
    async with app[ENGINE].begin() as conn:
        await conn.execute(update(images).values(expires_at=utcnow() - timedelta(seconds=1)))
    return await sweep.sweep(app[ENV])


@WITH_STRICT_PEER
async def test_an_unconfirmed_upload_is_swept_with_its_object_and_quota(client, backend, make_user):
    user = await make_user()
    data = image_bytes()
    ticket = await (await ask(client, user, data)).json()
    assert await put(client, backend, ticket, data) == 200
    result = await expire_and_sweep(client)
    # The upload's key, its final key and its thumbnail's: recorded, then swept.
    assert result["pending_removed"] == 1 and result["orphans_removed"] == 3
    after = await snapshot(client, backend)
    assert (after.objects, after.images, after.orphans) == (frozenset(), 0, 0)
    assert await used_bytes(client, user.id) == 0
    assert (await confirm(client, user, ticket["r2_key"])).status == 404


# --------------------------------------------------------------------------- the local signed URL


@pytest.mark.tiers("sqlite-local", "pg-local")
async def test_local_upload_url_enforces_signature_expiry_and_single_use(client, backend, make_user):
    user = await make_user()
    data = image_bytes()
    ticket = await (await ask(client, user, data)).json()
    parts = urlsplit(ticket["upload_url"])
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    hdrs = {"Content-Type": "image/png"}

    forged = urlencode({**query, "len": str(len(data) + 1)})
    assert (await client.put(f"{parts.path}?{forged}", data=data + b"x", headers=hdrs)).status == 403
    other_key = parts.path.replace(ticket["r2_key"].split("/")[1], "BBBBBBBBBBBBBBBBBBBBBB.png")
    assert (await client.put(f"{other_key}?{parts.query}", data=data, headers=hdrs)).status == 403
    assert (await client.put(f"{parts.path}", data=data, headers=hdrs)).status == 403

    assert (await client.put(f"{parts.path}?{parts.query}", data=data, headers=hdrs)).status == 200
    resp = await client.put(f"{parts.path}?{parts.query}", data=data, headers=hdrs)
    assert resp.status == 409  # single use
    assert backend.objects() == {ticket["r2_key"]}

    # An expired URL (signed correctly) is refused.
    storage = client.server.app[STORAGE]
    ticket2 = await (await ask(client, user, data)).json()
    key2 = ticket2["r2_key"]
    old = await storage.presign_put(key2, "image/png", len(data), -10)
    p2 = urlsplit(old.url)
    assert (await client.put(f"{p2.path}?{p2.query}", data=data, headers=hdrs)).status == 403
    assert int(time.time()) > 0
