"""GET /i/<key> from the hot-image cache (local mode): the same answers as the ordinary
path, and never an image that is gone."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from aiohttp import web
from sqlalchemy import delete

from imagehost.images import files
from imagehost.tables import images
from imagehost.typedefs import ENGINE, HOT_IMAGES, STORAGE
from tests.support.uploads import image_bytes, upload, uploaded

LOCAL = pytest.mark.tiers("sqlite-local", "pg-local")
pytestmark = pytest.mark.aiohttp_only  # the hot middleware itself (hotwire's protocol would answer first)
VARYING = {"Date", "X-Request-ID", "Server"}


def _key(img: dict) -> str:
    return img["public_url"].rsplit("/", 1)[-1]


@pytest.fixture
def file_responses(monkeypatch):
    """How many answers went the ordinary way (FileResponse); the hot path builds none."""
    made: list[str] = []

    class Counting(web.FileResponse):
        def __init__(self, path, *args, **kwargs):
            made.append(str(path))
            super().__init__(path, *args, **kwargs)

    monkeypatch.setattr(files.web, "FileResponse", Counting)
    return made


async def _both(client, method: str, path: str, **headers: str):
    """The ordinary path's answer (a cookie sends it there) and the hot path's."""
    slow = await client.request(method, path, headers={**headers, "Cookie": "unrelated=1"})
    fast = await client.request(method, path, headers=headers)
    return (slow.status, await slow.read(), slow.headers), (fast.status, await fast.read(), fast.headers)


def _same_headers(a, b) -> None:
    assert {k: v for k, v in a.items() if k not in VARYING} == {k: v for k, v in b.items() if k not in VARYING}
    assert VARYING - {"Server"} <= set(b)


@LOCAL
async def test_a_hot_image_is_answered_from_memory_exactly_as_from_disk(client, backend, make_user, file_responses):
    user = await make_user()
    data = image_bytes("JPEG", (80, 60), noise=True)
    img = await uploaded(client, user, data, "photo.jpg")
    client.session.cookie_jar.clear()
    path = f"/i/{_key(img)}"
    first = await client.get(path)  # the ordinary path, which remembers the image
    assert first.status == 200 and await first.read() == data
    assert client.server.app[HOT_IMAGES].get(_key(img)) is not None
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    for method, headers in (
        ("GET", {}),
        ("HEAD", {}),
        ("GET", {"If-None-Match": etag}),
        ("GET", {"If-None-Match": '"other", ' + etag}),
        ("GET", {"If-None-Match": '"other"'}),
        ("GET", {"If-Modified-Since": modified}),
        ("GET", {"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}),
    ):
        before = len(file_responses)
        (s_status, s_body, s_headers), (f_status, f_body, f_headers) = await _both(client, method, path, **headers)
        assert len(file_responses) == before + 1, "only the cookie request went the ordinary way"
        assert (f_status, f_body) == (s_status, s_body), (method, headers)
        _same_headers(s_headers, f_headers)
    assert (await client.get(path, headers={"If-None-Match": etag})).status == 304


@LOCAL
async def test_ranges_and_other_preconditions_still_take_the_ordinary_path(client, backend, make_user, file_responses):
    user = await make_user()
    data = image_bytes("PNG", (40, 40), noise=True)
    img = await uploaded(client, user, data)
    client.session.cookie_jar.clear()
    path = f"/i/{_key(img)}"
    await client.get(path)
    before = len(file_responses)
    part = await client.get(path, headers={"Range": "bytes=0-5"})
    assert part.status == 206 and await part.read() == data[:6]
    assert (await client.get(path, headers={"If-Match": '"nope"'})).status == 412
    assert len(file_responses) == before + 2


@LOCAL
async def test_an_image_deleted_by_another_process_is_gone_at_the_next_request(client, backend, make_user):
    user = await make_user()
    img = await uploaded(client, user, image_bytes(noise=True))
    client.session.cookie_jar.clear()
    path = f"/i/{_key(img)}"
    assert (await client.get(path)).status == 200
    assert (await client.get(path)).status == 200  # from memory
    # What a delete on another process does: the row, then the file. This process's
    # caches know nothing of it.
    async with client.server.app[ENGINE].begin() as conn:
        await conn.execute(delete(images).where(images.c.id == img["id"]))
    os.remove(client.server.app[STORAGE].path(_key(img)))  # type: ignore[attr-defined]
    gone = await client.get(path)
    assert gone.status == 404
    assert client.server.app[HOT_IMAGES].get(_key(img)) is None


@LOCAL
async def test_a_replaced_file_is_never_answered_from_memory(client, backend, make_user):
    user = await make_user()
    img = await uploaded(client, user, image_bytes(noise=True))
    client.session.cookie_jar.clear()
    path = f"/i/{_key(img)}"
    await client.get(path)
    file = client.server.app[STORAGE].path(_key(img))  # type: ignore[attr-defined]
    fresh = image_bytes("PNG", (10, 10))
    _replace(file, fresh)
    resp = await client.get(path)
    assert resp.status == 200 and await resp.read() == fresh


def _replace(file: Path, data: bytes) -> None:
    """A new file under the same name (a new inode), as a rename over it makes."""
    tmp = Path(f"{file}.new")
    tmp.write_bytes(data)
    os.replace(tmp, file)


def test_the_cache_is_bounded_in_bytes_and_per_item():
    hot = files.HotImages(max_bytes=100, max_item=60)

    def entry(n: int) -> files.Hot:
        return files.Hot("p", (1, 1, n), b"x" * n, "e", 0.0, {}, None)

    hot.put("big", entry(61))
    assert hot.get("big") is None
    for name in ("a", "b", "c"):
        hot.put(name, entry(40))
    assert hot.get("a") is None and hot.get("b") is not None and hot.get("c") is not None
    assert hot.used == 80
    hot.discard("b")
    assert hot.used == 40


@pytest.fixture
def prebuilt(monkeypatch):
    """The statuses the laid-out-in-bytes answer (`files.Prebuilt`) gave."""
    made: list[int] = []

    class Counting(files.Prebuilt):
        def __init__(self, status, *args):
            made.append(status)
            super().__init__(status, *args)

    monkeypatch.setattr(files, "Prebuilt", Counting)
    return made


@LOCAL
async def test_the_bytes_laid_out_ahead_and_the_ordinary_response_say_the_same(
    client, backend, make_user, file_responses, prebuilt
):
    """HTTP/1.1 keep-alive answers are written from prebuilt bytes; HTTP/1.0 and
    Connection: close take web.Response; an expiring image's Cache-Control is computed
    per request on both. Every one matches the ordinary path's answer."""
    user = await make_user()
    data = image_bytes("JPEG", (64, 48), noise=True)
    resp = await upload(client, user, data, "photo.jpg", "image/jpeg", params={"expires_in": "10m"})
    assert resp.status == 201
    path = f"/i/{_key(await resp.json())}"
    client.session.cookie_jar.clear()
    first = await client.get(path)
    assert first.status == 200 and await first.read() == data
    etag = first.headers["ETag"]
    for method, headers, laid_out in (
        ("GET", {}, [200]),
        ("HEAD", {}, [200]),
        ("GET", {"If-None-Match": etag}, [304]),
        ("GET", {"Connection": "close"}, []),
        ("HEAD", {"Connection": "close"}, []),
        ("GET", {"Connection": "close", "If-None-Match": etag}, []),
    ):
        prebuilt.clear()
        (s_status, s_body, s_headers), (f_status, f_body, f_headers) = await _both(client, method, path, **headers)
        assert prebuilt == laid_out, (method, headers)
        assert (f_status, f_body) == (s_status, s_body), (method, headers)
        _same_headers(s_headers, f_headers)
        assert 590 <= int(f_headers["Cache-Control"].removeprefix("public, max-age=")) <= 600
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(f"GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
    raw = await reader.read()  # HTTP/1.0: the server closes after the answer
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200 OK\r\n") and body == data and prebuilt == []
