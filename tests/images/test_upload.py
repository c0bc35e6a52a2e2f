"""POST /api/upload: streamed, sniffed, verified; nothing left behind on any failure."""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace

import pytest
from sqlalchemy.exc import OperationalError

from imagehost.images import store
from imagehost.images.service import clean_filename
from imagehost.storage import StorageError
from imagehost.tables import images
from imagehost.typedefs import ENGINE, ENV, STORAGE
from tests.support.uploads import (
    EXT,
    FORMATS,
    error_of,
    form,
    image_bytes,
    pixel_flood_png,
    png_of_size,
    snapshot,
    upload,
    uploaded,
    used_bytes,
)


async def _rows(client) -> list:
    async with client.server.app[ENGINE].connect() as conn:
        return list(await conn.execute(images.select()))


# --------------------------------------------------------------------------- the happy path


@pytest.mark.parametrize("fmt", list(FORMATS))
async def test_upload_stores_the_verified_bytes_and_answers_image_json(client, backend, make_user, fmt):
    user = await make_user()
    data = image_bytes(fmt, (120, 80), noise=True)
    body = await uploaded(client, user, data, filename=f"holiday.{fmt.lower()}")

    ctype = FORMATS[fmt]
    assert set(body) == {
        "id",
        "filename",
        "content_type",
        "size_bytes",
        "width",
        "height",
        "public_url",
        "thumbnail_url",
        "thumbnail_width",
        "thumbnail_height",
        "display_url",
        "page_url",
        "animated",
        "expires_at",
        "deletion_url",
        "created_at",
    }
    assert body["expires_at"] is None  # no expiry was asked for
    assert body["page_url"] == f"http://localhost:8000/v/{body['id']}"  # the share page
    assert body["content_type"] == ctype
    assert (body["width"], body["height"]) == (120, 80)
    assert body["size_bytes"] == len(data)
    assert body["filename"] == f"holiday.{fmt.lower()}"
    key = body["public_url"].rsplit("/", 1)[-1]
    assert re.fullmatch(r"[A-Za-z0-9_-]{16}\." + EXT[ctype], key)
    assert body["id"] not in key and len(body["id"]) >= 16
    assert re.fullmatch(r"http://localhost:8000/d/[A-Za-z0-9_-]+/[A-Za-z0-9_-]{32}", body["deletion_url"])
    assert body["created_at"].endswith("Z")
    thumb = body["thumbnail_url"].rsplit("/", 1)[-1]
    assert re.fullmatch(r"[A-Za-z0-9_-]{16}\.webp", thumb) and thumb != key
    assert (body["thumbnail_width"], body["thumbnail_height"]) == (120, 80)  # never upscaled
    assert body["display_url"] == body["public_url"]  # small: the original is the display size
    assert backend.objects() == {key, thumb}
    assert backend.read_object(thumb)[8:12] == b"WEBP"
    assert backend.read_object(key) == data
    if backend.storage_kind == "s3":
        assert body["public_url"] == f"{backend.settings.r2_public_url}/{key}"
        head = backend.s3.head_object(Bucket=backend.settings.r2_bucket_name, Key=key)
        assert head["ContentType"] == ctype
    else:
        assert body["public_url"] == f"http://localhost:8000/i/{key}"
    rows = await _rows(client)
    assert len(rows) == 1 and rows[0].status == "active" and rows[0].expires_at is None
    assert await used_bytes(client, user.id) == len(data)


async def test_upload_answers_the_bare_url_as_text_when_asked(client, backend, make_user):
    user = await make_user()
    for kwargs in ({"params": {"format": "text"}}, {"headers": {**user.auth, "Accept": "text/plain"}}):
        resp = await upload(client, user, image_bytes(), **kwargs)
        assert resp.status == 201
        assert resp.content_type == "text/plain"
        text = await resp.text()
        assert text.endswith("\n") and text.count("\n") == 1
        assert text.strip().rsplit("/", 1)[-1] in backend.objects()


async def test_the_key_extension_comes_from_the_sniffed_type_not_the_name(client, backend, make_user):
    user = await make_user()
    body = await uploaded(client, user, image_bytes("GIF"), filename="fake.png")
    assert body["content_type"] == "image/gif"
    assert body["public_url"].endswith(".gif")
    assert body["filename"] == "fake.png"


async def test_upload_requires_a_credential(client, backend):
    resp = await client.post("/api/upload", data=form(image_bytes()))
    assert resp.status == 401
    assert error_of(await resp.json())
    assert backend.objects() == set()


async def test_upload_with_a_jwt_works_too(client, backend, make_user):
    from imagehost.accounts import tokens
    from imagehost.typedefs import SETTINGS

    user = await make_user()
    settings = client.server.app[SETTINGS]
    jwt = tokens.issue_access_token(settings.secret_key, user.id, settings.jwt_expiration_minutes)
    resp = await client.post("/api/upload", data=form(image_bytes()), headers={"Authorization": f"Bearer {jwt}"})
    assert resp.status == 201


# --------------------------------------------------------------------------- bad files

POLYGLOT = b"GIF89a<html><body><script>alert(document.cookie)</script></body></html>"
# A GIF whose blocks are valid (a comment extension carries the markup) — structure alone
# would pass it; the markup check refuses it.
POLYGLOT_VALID_GIF = (
    b"GIF89a\x01\x00\x01\x00\x00\x00\x00"
    + b"\x21\xfe"
    + bytes([40])
    + b"<script>alert(1)</script>".ljust(40, b" ")
    + b"\x00"
    + b"\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00"
    + b"\x3b"
)
SVG = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'


def _truncated_png() -> bytes:
    data = image_bytes("PNG", (200, 200), noise=True)
    return data[: len(data) // 2]


BAD_FILES = [
    pytest.param(b"", "empty.png", "image/png", 422, id="empty"),
    pytest.param(b"hello, this is text\n" * 20, "notes.png", "image/png", 415, id="text-as-png"),
    pytest.param(b"<!doctype html><html><body>hi</body></html>", "page.png", "image/png", 415, id="html-as-png"),
    pytest.param(SVG, "vector.svg", "image/svg+xml", 415, id="svg-with-script"),
    pytest.param(POLYGLOT, "poly.gif", "image/gif", 415, id="gif-html-polyglot"),
    pytest.param(POLYGLOT_VALID_GIF, "poly2.gif", "image/gif", 415, id="gif-comment-polyglot"),
    pytest.param(_truncated_png(), "cut.png", "image/png", 422, id="truncated-png"),
    pytest.param(image_bytes("PNG") + b"<script>x</script>", "tail.png", "image/png", 415, id="png-trailing-data"),
    pytest.param(pixel_flood_png(), "flood.png", "image/png", 422, id="pixel-flood"),
    pytest.param(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n" + b"0" * 200, "doc.png", "image/png", 415, id="pdf"),
]


@pytest.mark.parametrize(("data", "filename", "ctype", "status"), BAD_FILES)
async def test_bad_file_is_refused_and_leaves_nothing(client, backend, make_user, data, filename, ctype, status):
    user = await make_user()
    before = await snapshot(client, backend)
    resp = await upload(client, user, data, filename, ctype)
    body = await resp.json()
    assert resp.status == status, body
    assert error_of(body)
    assert await snapshot(client, backend) == before
    assert await used_bytes(client, user.id) == 0


async def test_png_with_data_after_iend_is_refused(client, backend, make_user):
    user = await make_user()
    resp = await upload(client, user, image_bytes("PNG") + b"\x00" * 100)
    assert resp.status == 422
    assert "after the end" in (await resp.json())["error"]
    assert backend.objects() == set()


# --------------------------------------------------------------------------- bad forms


async def _raw_post(client, user, body: bytes, content_type: str):
    return await client.post("/api/upload", data=body, headers={**user.auth, "Content-Type": content_type})


def _multipart(*parts: tuple[str, str | None, bytes], boundary: str = "XyZb0undary") -> bytes:
    """A multipart body written by hand: filenames go raw (UTF-8), as browsers and curl send them."""
    out = b""
    for name, filename, data in parts:
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        out += f"--{boundary}\r\nContent-Disposition: {disp}\r\nContent-Type: image/png\r\n\r\n".encode()
        out += data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


MP = "multipart/form-data; boundary=XyZb0undary"
BAD_FORMS = [
    pytest.param(_multipart(("title", None, b"hello")), MP, "no file", id="missing-file-field"),
    pytest.param(
        _multipart(("file", "a.png", image_bytes()), ("file", "b.png", image_bytes())),
        MP,
        "exactly one",
        id="two-files",
    ),
    pytest.param(
        _multipart(("file", "a.png", image_bytes()), ("other", "b.png", image_bytes())),
        MP,
        "exactly one",
        id="second-file-other-field",
    ),
    pytest.param(_multipart(("image", "a.png", image_bytes())), MP, "field named 'file'", id="wrong-field-name"),
    pytest.param(
        b'--XyZb0undary\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
        + image_bytes()
        + b"\r\n--notTheBoundary--\r\n",
        MP,
        "",
        id="garbled-no-closing-boundary",
    ),
    pytest.param(
        b'--XyZb0undary\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
        + b"X" * 40_000
        + b"\r\n\r\n"
        + image_bytes()
        + b"\r\n--XyZb0undary--\r\n",
        MP,
        "malformed",
        id="garbled-huge-part-header",
    ),
    pytest.param(b"this is not multipart at all", MP, "malformed", id="garbled-no-boundary-in-body"),
    pytest.param(
        _multipart(("file", "a.png", image_bytes())), "multipart/form-data", "malformed", id="no-boundary-parameter"
    ),
    pytest.param(image_bytes(), "image/png", "malformed", id="not-multipart"),
    pytest.param(b"", MP, "malformed", id="empty-body"),
]


@pytest.mark.parametrize(("body", "ctype", "message"), BAD_FORMS)
async def test_bad_form_is_refused_and_leaves_nothing(client, backend, make_user, body, ctype, message):
    user = await make_user()
    before = await snapshot(client, backend)
    resp = await _raw_post(client, user, body, ctype)
    payload = await resp.json()
    # A body cut off without its closing boundary reaches the image check with the
    # boundary bytes in it: that is a broken image (422); everything else is a bad form.
    assert resp.status == (400 if message else 422), payload
    assert message in error_of(payload)
    assert await snapshot(client, backend) == before


async def test_small_extra_fields_before_the_file_are_ignored(client, backend, make_user):
    user = await make_user()
    body = _multipart(("title", None, b"my shot"), ("file", "a.png", image_bytes()), ("note", None, b"x"))
    resp = await _raw_post(client, user, body, MP)
    assert resp.status == 201, await resp.text()


# --------------------------------------------------------------------------- filenames


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("../../x", "x"),
        ("photo\u202egnp.exe", "photognp.exe"),
        ("\u200bzero\u2066width\u2069.png", "zerowidth.png"),
        ("x" * 10_000, "x" * 255),
        ("..", "image"),
        ("<script>alert(1)</script>.png", "script>.png"),
    ],
)
async def test_filename_is_kept_only_as_clean_clipped_display_text(client, backend, make_user, given, shown):
    user = await make_user()
    resp = await _raw_post(client, user, _multipart(("file", given, image_bytes())), MP)
    body = await resp.json()
    assert resp.status == 201, body
    assert body["filename"] == shown
    (key,) = {k for k in backend.objects() if not k.endswith(".webp")}  # beside the thumbnail
    assert re.fullmatch(r"[A-Za-z0-9_-]{16}\.png", key)


async def test_nul_in_a_filename_is_dropped_or_the_form_refused(client, backend, make_user):
    user = await make_user()
    # Percent-encoded (RFC 5987 filename*): decoded, then cleaned.
    body = (
        b"--XyZb0undary\r\nContent-Disposition: form-data; name=\"file\"; filename*=UTF-8''a%00b%E2%80%AE.png"
        b"\r\nContent-Type: image/png\r\n\r\n" + image_bytes() + b"\r\n--XyZb0undary--\r\n"
    )
    resp = await _raw_post(client, user, body, MP)
    assert resp.status == 201
    assert (await resp.json())["filename"] == "ab.png"
    # A raw NUL byte in a part header: the multipart parser refuses the form.
    before = await snapshot(client, backend)
    resp = await _raw_post(client, user, _multipart(("file", "a\x00b.png", image_bytes())), MP)
    assert resp.status == 400
    assert await snapshot(client, backend) == before


def test_clean_filename_strips_windows_paths_and_controls():
    assert clean_filename("C:\\Users\\me\\..\\evil.png") == "evil.png"
    assert clean_filename("a\tb\r\nc.png") == "abc.png"
    assert clean_filename("  .hidden  ") == "hidden"
    assert clean_filename(None) == "image"
    assert len(clean_filename("é" * 1000)) == 255


# --------------------------------------------------------------------------- failures along the way


class FailingStorage:
    """The real storage, except that put_stream dies after the first chunk."""

    def __init__(self, real) -> None:
        self.real = real
        self.name = real.name

    def __getattr__(self, name):
        return getattr(self.real, name)

    async def put_stream(self, key, chunks, content_type):
        async def first_then_fail():
            async for chunk in chunks:
                yield chunk
                raise StorageError("connection reset by peer")

        return await self.real.put_stream(key, first_then_fail(), content_type)


async def test_storage_failing_mid_upload_answers_503_and_leaves_nothing(client, backend, make_user):
    user = await make_user()
    before = await snapshot(client, backend)
    app = client.server.app
    real = app[STORAGE]
    app._state[ENV] = replace(app[ENV], storage=FailingStorage(real))
    try:
        resp = await upload(client, user, image_bytes("PNG", (400, 400), noise=True))
    finally:
        app._state[ENV] = replace(app[ENV], storage=real)
    assert resp.status == 503
    assert error_of(await resp.json()) == "storage unavailable"
    assert await snapshot(client, backend) == before
    assert await used_bytes(client, user.id) == 0


@pytest.mark.tiers("sqlite-s3", "pg-s3")
async def test_s3_unreachable_during_upload_answers_503_and_leaves_nothing(client, backend, make_user):
    from contextlib import AsyncExitStack

    from imagehost.storage import S3Storage
    from tests.conftest import free_port

    user = await make_user()
    before = await snapshot(client, backend)
    app = client.server.app
    real = app[STORAGE]
    dead_settings = backend.settings.model_copy(update={"s3_endpoint_url": f"http://127.0.0.1:{free_port()}"})
    async with AsyncExitStack() as stack:
        app._state[ENV] = replace(app[ENV], storage=await S3Storage.open(dead_settings, stack))
        try:
            resp = await upload(client, user, image_bytes())
        finally:
            app._state[ENV] = replace(app[ENV], storage=real)
    assert resp.status == 503
    after = await snapshot(client, backend)
    assert (after.objects, after.images, after.used) == (before.objects, before.images, before.used)


async def test_database_failure_after_the_bytes_are_stored_removes_the_object(client, backend, make_user, monkeypatch):
    user = await make_user()
    before = await snapshot(client, backend)
    seen: list[set[str]] = []

    async def broken_activate(conn, row, **kwargs):
        seen.append(backend.objects())  # the bytes are in storage at this point
        raise OperationalError("UPDATE images", {}, Exception("server closed the connection"))

    monkeypatch.setattr(store, "activate", broken_activate)
    resp = await upload(client, user, image_bytes())
    assert resp.status == 503
    assert error_of(await resp.json()) == "database unavailable"
    assert seen and len(seen[0]) == 2  # the original and its thumbnail
    assert await snapshot(client, backend) == before


async def test_client_disconnecting_mid_upload_leaves_nothing(client, backend, make_user):
    user = await make_user()
    before = await snapshot(client, backend)
    data = png_of_size(2_000_000)  # more than the sniffed head
    boundary = "disc0nnect"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    body = head + data + f"\r\n--{boundary}--\r\n".encode()
    partial = body[: len(head) + len(data) * 3 // 4]
    _reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    request = (
        f"POST /api/upload HTTP/1.1\r\nHost: {client.server.host}\r\n"
        f"Authorization: Bearer {user.api_key}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    writer.write(request + partial)
    await writer.drain()
    # Wait until the server has the pending row (it read the head), then vanish.
    # (generous deadlines: a loaded CI machine can be slow; the loops end as soon as they can)
    deadline = asyncio.get_running_loop().time() + 30
    while not (await snapshot(client, backend)).images:
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail("the server never started storing the upload")
        await asyncio.sleep(0.02)
    writer.close()
    await writer.wait_closed()
    deadline = asyncio.get_running_loop().time() + 30
    while await snapshot(client, backend) != before:  # the server notices and cleans up
        if asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.05)
    assert await snapshot(client, backend) == before


@pytest.mark.tiers("sqlite-local")
async def test_a_file_piped_from_stdin_is_named_after_the_time_of_upload(client, backend, make_user):
    """`curl -F file=@-` sends the filename "-": not a name anyone wants to see."""
    user = await make_user()
    resp = await upload(client, user, image_bytes(), "-")
    body = await resp.json()
    assert resp.status == 201, body
    assert re.fullmatch(r"upload-\d{4}-\d{2}-\d{2}-\d{6}\.png", body["filename"])
