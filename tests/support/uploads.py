"""Helpers shared by the upload/image tests (no tests here): test images made with
Pillow, multipart posts, and a snapshot of everything an upload could leave behind."""

from __future__ import annotations

import io
import os
import struct
import zlib
from dataclasses import dataclass
from typing import Any

import aiohttp
from PIL import Image, features
from sqlalchemy import func, select

from imagehost.errors import CODES
from imagehost.tables import images, storage_orphans, users
from imagehost.typedefs import ENGINE

FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}
if features.check("avif"):
    FORMATS["AVIF"] = "image/avif"
EXT = {"image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp", "image/avif": "avif"}


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (64, 48), noise: bool = False) -> bytes:
    im = Image.effect_noise(size, 64).convert("RGB") if noise else Image.new("RGB", size, (30, 120, 200))
    buf = io.BytesIO()
    im.save(buf, fmt)
    return buf.getvalue()


def png_of_size(nbytes: int) -> bytes:
    """A valid PNG of about `nbytes` (random pixels compress to nothing)."""
    side = max(8, int((nbytes / 3) ** 0.5))
    im = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    buf = io.BytesIO()
    im.save(buf, "PNG", compress_level=0)
    return buf.getvalue()


def png_chunk(ctype: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + ctype + data + struct.pack(">I", zlib.crc32(ctype + data) & 0xFFFFFFFF)


def pixel_flood_png(width: int = 60000, height: int = 60000) -> bytes:
    """A tiny PNG whose header declares a huge canvas."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def form(
    data: bytes, filename: str = "shot.png", content_type: str = "image/png", field: str = "file"
) -> aiohttp.FormData:
    f = aiohttp.FormData()
    f.add_field(field, io.BytesIO(data), filename=filename, content_type=content_type)
    return f


async def upload(
    client, account, data: bytes, filename: str = "shot.png", content_type: str = "image/png", **kwargs: Any
):
    headers = {**account.auth, **kwargs.pop("headers", {})}
    return await client.post("/api/upload", data=form(data, filename, content_type), headers=headers, **kwargs)


async def uploaded(client, account, data: bytes | None = None, filename: str = "shot.png") -> dict:
    resp = await upload(client, account, data if data is not None else image_bytes(), filename)
    assert resp.status == 201, await resp.text()
    return await resp.json()


@dataclass(frozen=True)
class Snapshot:
    objects: frozenset[str]
    images: int
    orphans: int
    used: tuple[int, ...]
    multipart: int


async def snapshot(client, backend) -> Snapshot:
    """Everything an upload could leave behind: objects, rows, tombstones, quota."""
    async with client.server.app[ENGINE].connect() as conn:
        n_images = (await conn.execute(select(func.count()).select_from(images))).scalar_one()
        n_orphans = (await conn.execute(select(func.count()).select_from(storage_orphans))).scalar_one()
        used = tuple(r[0] for r in await conn.execute(select(users.c.storage_used_bytes).order_by(users.c.id)))
    objects = frozenset(backend.objects())  # the local backend's .tmp/ files included
    return Snapshot(objects, n_images, n_orphans, used, backend.incomplete_multipart_uploads())


async def used_bytes(client, user_id: str) -> int:
    async with client.server.app[ENGINE].connect() as conn:
        return (await conn.execute(select(users.c.storage_used_bytes).where(users.c.id == user_id))).scalar_one()


def error_of(body: dict) -> str:
    assert set(body) == {"error", "code", "detail"}, body
    assert body["code"] in CODES, body
    return body["error"]
