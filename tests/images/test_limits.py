"""MAX_UPLOAD_MB is enforced while reading: 413 as soon as it is passed, with the
partial object, the S3 multipart upload and the pending row removed."""

from __future__ import annotations

import os
import struct
import zlib

import pytest

from tests.support.uploads import error_of, png_chunk, png_of_size, snapshot, upload, used_bytes

MAX_MB = 12


@pytest.fixture
def settings_overrides():
    # Above the sniffed head (1 MiB) and above one S3 part (5 MiB), so the limit is
    # crossed while the bytes are already streaming to storage.
    return {"max_upload_mb": MAX_MB, "s3_multipart_threshold_mb": 5}


def big_png_stream(total: int, chunk: int = 1 << 20):
    """A PNG header and one huge IDAT chunk, produced lazily (chunked transfer, no
    Content-Length): the server cannot refuse it up front."""
    ihdr = struct.pack(">IIBBBBB", 4000, 4000, 8, 2, 0, 0, 0)
    head = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + struct.pack(">I", total) + b"IDAT"

    async def gen():
        boundary_head = (
            b'--B0undary\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n'
            b"Content-Type: image/png\r\n\r\n"
        )
        yield boundary_head + head
        sent = 0
        while sent < total:
            n = min(chunk, total - sent)
            yield os.urandom(n)
            sent += n
        yield struct.pack(">I", zlib.crc32(b"IDAT") & 0xFFFFFFFF) + png_chunk(b"IEND", b"") + b"\r\n--B0undary--\r\n"

    return gen()


async def test_oversize_stream_is_cut_off_with_413_and_leaves_nothing(client, backend, make_user):
    user = await make_user()
    before = await snapshot(client, backend)
    resp = await client.post(
        "/api/upload",
        data=big_png_stream(30 << 20),
        headers={**user.auth, "Content-Type": "multipart/form-data; boundary=B0undary"},
    )
    body = await resp.json()
    assert resp.status == 413, body
    assert error_of(body) == "file too large"
    assert body["detail"]["max_bytes"] == MAX_MB << 20
    after = await snapshot(client, backend)
    assert after == before
    assert backend.incomplete_multipart_uploads() == 0
    assert await used_bytes(client, user.id) == 0


async def test_oversize_with_content_length_is_refused_before_reading(client, backend, make_user):
    user = await make_user()
    before = await snapshot(client, backend)
    resp = await upload(client, user, b"\x89PNG\r\n\x1a\n" + os.urandom((MAX_MB + 1) << 20))
    assert resp.status == 413
    assert await snapshot(client, backend) == before


async def test_a_file_just_under_the_limit_goes_through_s3_multipart(client, backend, make_user):
    user = await make_user()
    data = png_of_size((MAX_MB << 20) - 200_000)  # a real image (it is decoded for its thumbnail)
    assert (MAX_MB << 20) - 300_000 < len(data) <= MAX_MB << 20
    resp = await upload(client, user, data)
    body = await resp.json()
    assert resp.status == 201, body
    assert body["size_bytes"] == len(data)
    key = body["public_url"].rsplit("/", 1)[-1]
    assert backend.read_object(key) == data
    assert await used_bytes(client, user.id) == len(data)
    assert backend.incomplete_multipart_uploads() == 0
