"""The storage interface, exercised against both backends through the real app's client:
a local folder, and S3 over HTTP to a moto server and to LocalStack (the strict peer)."""

from __future__ import annotations

import hashlib
import os

import aiohttp
import pytest

from imagehost.storage import InvalidKey, LocalStorage, ObjectNotFound, check_key

pytestmark = pytest.mark.tiers("sqlite-local", "sqlite-s3", "s3-strict")


async def _chunks(data: bytes, size: int = 64 * 1024):
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def test_put_head_range_copy_delete_round_trip(storage, backend):
    data = os.urandom(300_000)
    key = "abcdefghijklmnop1234.png"
    assert await storage.put_stream(key, _chunks(data), "image/png") == len(data)
    info = await storage.head(key)
    assert info is not None and info.size == len(data)
    assert await storage.read_range(key, 0, 16) == data[:16]
    assert await storage.read_range(key, 1000, 10) == data[1000:1010]
    assert await storage.read_range(key, -12, 12) == data[-12:]
    await storage.copy(key, "zyxwvutsrqponmlk9876.png", "image/png")
    await storage.delete(key)
    assert await storage.head(key) is None
    assert backend.read_object("zyxwvutsrqponmlk9876.png") == data
    await storage.delete(key)  # idempotent


async def test_large_put_uses_multipart_and_keeps_every_byte(storage, backend):
    part_sizes: list[int] = []
    if backend.storage_kind == "s3":
        storage.part_size = 5 * 1024 * 1024
        real = storage.client.upload_part

        async def spy(**kwargs):
            part_sizes.append(len(kwargs["Body"]))
            return await real(**kwargs)

        storage.client.upload_part = spy
    data = os.urandom(12 * 1024 * 1024 + 123)
    key = "multipartmultipart01.jpg"
    # odd chunk sizes, so part boundaries fall inside chunks
    assert await storage.put_stream(key, _chunks(data, 700_001), "image/jpeg") == len(data)
    got = backend.read_object(key)
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    assert backend.incomplete_multipart_uploads() == 0
    if backend.storage_kind == "s3":
        # R2 wants every part but the last the same size, and the last no larger
        assert part_sizes == [5 * 1024 * 1024, 5 * 1024 * 1024, 2 * 1024 * 1024 + 123]


async def test_failed_stream_leaves_nothing_and_aborts_multipart(storage, backend):
    if backend.storage_kind == "s3":
        storage.part_size = 5 * 1024 * 1024

    async def broken():
        for _ in range(8):
            yield os.urandom(1 << 20)
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await storage.put_stream("brokenbrokenbroken01.png", broken(), "image/png")
    assert backend.objects() == set()  # no object, no temp file
    assert backend.incomplete_multipart_uploads() == 0


@pytest.mark.parametrize(
    "key",
    [
        "../etc/passwd",
        "/abs/path.png",
        "a/../../b.png",
        "pending/../../x.png",
        "ok.png\x00.txt",
        "short.png",
        "x" * 300 + ".png",
        "spaces in name.png",
        "",
    ],
)
async def test_keys_the_app_never_makes_are_refused(storage, key):
    with pytest.raises(InvalidKey):
        check_key(key)
    with pytest.raises(InvalidKey):
        await storage.head(key)


def test_local_backend_cannot_escape_its_folder(tmp_path):
    store = LocalStorage(tmp_path / "images", "http://localhost:8000", "k" * 40)
    with pytest.raises(InvalidKey):
        store.path("../../outside.png")
    assert store.path("abcdefghijklmnop1234.png").parent == (tmp_path / "images").resolve()


async def test_reading_a_missing_object_is_not_found(storage):
    with pytest.raises(ObjectNotFound):
        await storage.read_range("missingmissingmiss.png", 0, 10)


async def test_presigned_put_signs_type_and_length(storage, backend):
    signed = await storage.presign_put("pending/presignedpresigned01.png", "image/png", 1234, 300)
    assert signed.headers == {"Content-Type": "image/png"}
    if backend.storage_kind == "s3":
        assert "X-Amz-Signature=" in signed.url and "X-Amz-Expires=300" in signed.url
        signed_headers = signed.url.split("X-Amz-SignedHeaders=")[1].split("&")[0]
        assert "content-type" in signed_headers and "content-length" in signed_headers
        # The URL must be a working PUT with the signed type and length (moto enforces
        # nothing; the strict peer checks the signature: tests/storage/test_strict_peer.py).
        async with (
            aiohttp.ClientSession() as http,
            http.put(signed.url, data=b"x" * 1234, headers=signed.headers) as resp,
        ):
            assert resp.status == 200
        assert (await storage.head("pending/presignedpresigned01.png")).size == 1234
    else:
        assert "/api/uploads/pending/presignedpresigned01.png?" in signed.url
        assert "sig=" in signed.url and "len=1234" in signed.url


async def test_storage_setup_creates_bucket_cors_and_lifecycle(backend, storage):
    done = await storage.setup("http://localhost:8000", 1)
    assert done
    if backend.storage_kind == "s3":
        cors = backend.s3.get_bucket_cors(Bucket=backend.settings.r2_bucket_name)["CORSRules"][0]
        assert cors["AllowedOrigins"] == ["http://localhost:8000"] and cors["AllowedMethods"] == ["PUT"]
        rules = backend.s3.get_bucket_lifecycle_configuration(Bucket=backend.settings.r2_bucket_name)["Rules"]
        assert {r["ID"] for r in rules} == {"imagehost-expire-pending", "imagehost-abort-incomplete-multipart"}
    else:
        assert backend.settings.local_storage_path.is_dir()


async def test_read_stream_gives_the_whole_object_in_bounded_chunks(storage):
    data = os.urandom(300_001)
    key = "streamedstreamed0001.png"
    await storage.put_stream(key, _chunks(data), "image/png")
    chunks = [chunk async for chunk in storage.read_stream(key, chunk_size=64 * 1024)]
    assert b"".join(chunks) == data
    assert len(chunks) >= 5 and all(0 < len(c) <= 64 * 1024 for c in chunks)


async def test_read_stream_of_a_missing_object_is_not_found_at_the_first_step(storage):
    stream = storage.read_stream("missingmissingmiss.png")
    with pytest.raises(ObjectNotFound):
        await anext(stream)


async def test_read_stream_once_started_reads_to_the_end_though_the_object_is_deleted(storage):
    """What an export relies on: an entry it has begun is the whole object, one version."""
    data = os.urandom(200_000)
    key = "streamedstreamed0002.png"
    await storage.put_stream(key, _chunks(data), "image/png")
    stream = storage.read_stream(key, chunk_size=50_000)
    first = await anext(stream)
    await storage.delete(key)
    assert await storage.head(key) is None
    assert first + b"".join([chunk async for chunk in stream]) == data
