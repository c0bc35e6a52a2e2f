"""Export: `GET /api/export` streams the caller's live images and a JSON file of their
metadata as one ZIP, with its exact length announced, from either storage backend."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import zipfile

import aiohttp
import pytest
from sqlalchemy import update

from imagehost.db import utcnow
from imagehost.images.export import archive_names, content_disposition, safe_name
from imagehost.images.store import ACTIVE, ImageRow
from imagehost.tables import images
from imagehost.typedefs import ENGINE
from tests.images.test_expiry import _age
from tests.support.accounts import logged_in_token
from tests.support.uploads import error_of, image_bytes, png_of_size, snapshot, upload, uploaded

BASE = "http://localhost:8000"


def _key(image: dict) -> str:
    return image["public_url"].rsplit("/", 1)[-1]


async def _export(client, account) -> tuple[aiohttp.ClientResponse, bytes]:
    resp = await client.get("/api/export", headers=account.auth)
    return resp, await resp.read()


def _open(body: bytes) -> zipfile.ZipFile:
    archive = zipfile.ZipFile(io.BytesIO(body))
    assert archive.testzip() is None  # every entry's CRC matches its bytes
    return archive


async def test_export_holds_exactly_the_callers_live_images_with_their_bytes_and_metadata(client, backend, make_user):
    owner, other = await make_user(), await make_user()
    mine = [
        await uploaded(client, owner, image_bytes("PNG"), "first.png"),
        await uploaded(client, owner, image_bytes("JPEG", (80, 60)), "holiday-photo.jpg"),
        # larger than one read (1 MiB), so an entry is streamed in several chunks
        await uploaded(client, owner, png_of_size(1_500_000), "big.png"),
    ]
    theirs = await uploaded(client, other, image_bytes("GIF"), "secret.gif")

    started = utcnow().strftime("%Y-%m-%d")
    resp, body = await _export(client, owner)
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "application/zip"
    days = {started, utcnow().strftime("%Y-%m-%d")}  # the request may straddle midnight
    assert resp.headers["Content-Disposition"] in {
        f'attachment; filename="imagehost-export-{owner.username}-{day}.zip"' for day in days
    }
    assert int(resp.headers["Content-Length"]) == len(body)
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"

    archive = _open(body)
    assert sorted(archive.namelist()) == sorted(
        ["metadata.json", "images/first.png", "images/holiday-photo.jpg", "images/big.png"]
    )
    meta = json.loads(archive.read("metadata.json"))
    assert meta["owner"] == {"id": owner.id, "username": owner.username}
    assert meta["count"] == 3
    by_id = {m["id"]: m for m in meta["images"]}
    assert set(by_id) == {m["id"] for m in mine} and theirs["id"] not in by_id
    listing = (await (await client.get("/api/images/", headers=owner.auth)).json())["images"]
    for image in listing:
        entry = by_id[image["id"]]
        assert {k: v for k, v in entry.items() if k != "path"} == image  # the image JSON, as the API gives it
        assert archive.read(entry["path"]) == backend.read_object(_key(image))  # the stored original, byte for byte
    assert by_id[mine[1]["id"]]["filename"] == "holiday-photo.jpg"
    assert all(secret not in body for secret in (theirs["id"].encode(), b"secret.gif"))


async def test_another_users_export_never_holds_my_images(client, make_user):
    owner, other = await make_user(), await make_user()
    await uploaded(client, owner, image_bytes(), "mine.png")
    resp, body = await _export(client, other)
    assert resp.status == 200
    archive = _open(body)
    assert archive.namelist() == ["metadata.json"]
    assert json.loads(archive.read("metadata.json"))["images"] == []


async def test_expired_images_are_not_exported(client, make_user):
    owner = await make_user()
    kept = await uploaded(client, owner, image_bytes(), "kept.png")
    resp = await upload(client, owner, image_bytes("JPEG"), "fleeting.jpg", headers={"X-Expires-In": "60"})
    assert resp.status == 201
    await _age(client, 61)
    _resp, body = await _export(client, owner)
    archive = _open(body)
    assert archive.namelist() == ["images/kept.png", "metadata.json"]
    assert [m["id"] for m in json.loads(archive.read("metadata.json"))["images"]] == [kept["id"]]


async def test_an_empty_export_is_a_valid_zip_with_only_the_metadata(client, make_user):
    owner = await make_user()
    resp, body = await _export(client, owner)
    assert resp.status == 200 and int(resp.headers["Content-Length"]) == len(body)
    archive = _open(body)
    assert archive.namelist() == ["metadata.json"]
    meta = json.loads(archive.read("metadata.json"))
    assert (meta["count"], meta["images"]) == (0, [])


async def _upload_named(client, account, filename: str) -> None:
    """An upload whose part header carries `filename` as is (aiohttp's client would
    percent-encode it), as a browser or curl sends it."""
    head = f'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
    body = head.encode() + b"Content-Type: image/png\r\n\r\n" + image_bytes() + b"\r\n--b0undary--\r\n"
    headers = {**account.auth, "Content-Type": "multipart/form-data; boundary=b0undary"}
    resp = await client.post("/api/upload", data=body, headers=headers)
    assert resp.status == 201, await resp.text()


async def test_export_names_are_safe_and_unique(client, make_user):
    owner = await make_user()
    for name in ("../../etc/shot.png", "shot.png", "SHOT.png", "shot (2).png", "CON.png", "noext", ".hidden.png"):
        await _upload_named(client, owner, name)
    _resp, body = await _export(client, owner)
    names = _open(body).namelist()
    # oldest first; "SHOT.png" meets "shot.png" on a case-insensitive disk
    assert names == [
        "images/shot.png",
        "images/shot (2).png",
        "images/SHOT (3).png",
        "images/shot (2) (2).png",
        "images/_CON.png",
        "images/noext.png",
        "images/hidden.png",
        "metadata.json",
    ]


async def test_export_without_credentials_is_401_and_streams_nothing(client, make_user):
    owner = await make_user()
    await uploaded(client, owner, image_bytes())
    resp = await client.get("/api/export")
    assert resp.status == 401
    assert resp.headers["Content-Type"].startswith("application/json")
    error_of(await resp.json())
    bad = await client.get("/api/export", headers={"Authorization": "Bearer ih_not_a_key"})
    assert bad.status == 401


async def test_export_works_with_the_browser_session(client, make_user):
    owner = await make_user()
    await uploaded(client, owner, image_bytes(), "session.png")
    await logged_in_token(client, owner)
    resp = await client.get("/api/export")
    assert resp.status == 200
    assert _open(await resp.read()).namelist() == ["images/session.png", "metadata.json"]


async def test_head_announces_the_length_without_a_body(client, make_user):
    owner = await make_user()
    await uploaded(client, owner, image_bytes())
    _resp, body = await _export(client, owner)
    head = await client.head("/api/export", headers=owner.auth)
    assert head.status == 200
    assert int(head.headers["Content-Length"]) == len(body)
    assert await head.read() == b""


async def test_an_image_that_vanishes_mid_export_fails_the_download_and_changes_nothing(
    client, backend, storage, make_user
):
    """The list is taken at the start and its sizes promised in Content-Length: an object
    gone when its entry begins cuts the response short, never a silently wrong archive."""
    owner = await make_user()
    await uploaded(client, owner, image_bytes(), "first.png")
    second = await uploaded(client, owner, image_bytes("JPEG"), "second.jpg")
    await storage.delete(_key(second))  # its row stays: as if deleted between list and read
    before = await snapshot(client, backend)
    resp = await client.get("/api/export", headers=owner.auth)
    assert resp.status == 200
    announced = int(resp.headers["Content-Length"])
    received = bytearray()
    with pytest.raises(aiohttp.ClientPayloadError):
        async for chunk in resp.content.iter_any():
            received += chunk
    assert len(received) < announced
    assert await snapshot(client, backend) == before
    # The server is fine: the next request is answered.
    assert (await client.get("/api/images/", headers=owner.auth)).status == 200


# --------------------------------------------------------------------------- names, without a server


def _row(filename: str, content_type: str = "image/png") -> ImageRow:
    now = utcnow()
    return ImageRow("i", "o", ACTIVE, "k.png", None, filename, content_type, 1, 1, 1, "h", now, None)


@pytest.mark.parametrize(
    ("filename", "content_type", "expected"),
    [
        ("../../../etc/passwd", "image/png", "passwd.png"),
        ("..\\..\\windows\\win.ini.jpg", "image/jpeg", "win.ini.jpg"),
        ("/absolute.png", "image/png", "absolute.png"),
        ("..", "image/png", "image.png"),
        ("", "image/gif", "image.gif"),
        ('a<b>c:d"e|f?g*h.png', "image/png", "a_b_c_d_e_f_g_h.png"),
        ("tab\there\x00nul.png", "image/png", "tabherenul.png"),
        ("right\u202eto-left.png", "image/png", "rightto-left.png"),
        ("photo.JPEG", "image/jpeg", "photo.JPEG"),
        ("photo.png", "image/jpeg", "photo.png.jpg"),
        ("trailing dots...", "image/webp", "trailing dots.webp"),
        ("lpt1.png", "image/png", "_lpt1.png"),
        ("x" * 300 + ".png", "image/png", "x" * 200 + ".png"),
        ("café.png", "image/png", "café.png"),
    ],
)
def test_safe_name(filename, content_type, expected):
    assert safe_name(filename, content_type) == expected


def test_archive_names_are_unique_whatever_the_case():
    rows = [_row(n) for n in ("a.png", "A.PNG", "a.png", "a (2).png")]
    assert archive_names(rows) == ["images/a.png", "images/A (2).PNG", "images/a (3).png", "images/a (2) (2).png"]


def test_content_disposition_keeps_plain_names_and_encodes_others():
    assert content_disposition("imagehost-export-bob-2026-01-02.zip") == (
        'attachment; filename="imagehost-export-bob-2026-01-02.zip"'
    )
    assert content_disposition('Holiday "2026"; Ω/../x') == ('attachment; filename="x.zip"')
    assert content_disposition("Été 2026") == (
        "attachment; filename=\"_t_ 2026.zip\"; filename*=UTF-8''%C3%89t%C3%A9%202026.zip"
    )


@pytest.mark.parametrize("change", [b"", b"one byte more"], ids=["shorter", "longer"])
async def test_an_original_of_another_size_than_promised_fails_the_download(
    client, backend, storage, make_user, change
):
    """An original rewritten meanwhile (the backfill strips older ones in place) no longer
    has the length promised: the response is cut short rather than made inconsistent."""
    owner = await make_user()
    image = await uploaded(client, owner, image_bytes(), "changed.png")
    stored = backend.read_object(_key(image))
    replaced = stored[:-1] if not change else stored + change

    async def chunks():
        yield replaced

    await storage.put_stream(_key(image), chunks(), "image/png", replace=True)
    resp = await client.get("/api/export", headers=owner.auth)
    assert resp.status == 200
    with pytest.raises(aiohttp.ClientPayloadError):
        await resp.read()


@pytest.mark.tiers("sqlite-local", "pg-local")
async def test_a_client_that_leaves_mid_export_leaves_no_open_file(client, backend, storage, make_user):
    owner = await make_user()
    image = await uploaded(client, owner, image_bytes(), "big.png")
    key = _key(image)
    big = os.urandom(24 * 1024 * 1024)  # far more than the sockets' buffers hold

    async def chunks():
        yield big

    await storage.put_stream(key, chunks(), "image/png", replace=True)
    async with client.server.app[ENGINE].begin() as conn:
        await conn.execute(update(images).where(images.c.id == image["id"]).values(size_bytes=len(big)))
    path = str(backend.settings.local_storage_path / key)

    def open_files() -> list[str]:
        found = []
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(FileNotFoundError):  # closed since it was listed
                if os.readlink(f"/proc/self/fd/{fd}") == path:
                    found.append(path)
        return found

    resp = await client.get("/api/export", headers=owner.auth)
    assert resp.status == 200
    await resp.content.readexactly(1024 * 1024)
    assert open_files() == [path]  # the server is reading it
    resp.close()  # the client goes away mid-entry
    deadline = asyncio.get_running_loop().time() + 10
    # No event says the server saw the hang-up: it notices at its next write. Poll.
    while open_files() and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    assert open_files() == []
    assert (await client.get("/api/images/", headers=owner.auth)).status == 200
