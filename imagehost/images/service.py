"""Uploads (streamed and presigned), deletes, and the image JSON.

The order of every step is what keeps the invariants in ARCHITECTURE.md:
- a pending row, with its quota reservation, is committed before any byte reaches
  storage, so every object has a row (the sweep removes expired pending rows with
  their objects);
- the row turns active only after storage has the verified bytes, in a conditional
  UPDATE that fails if the sweep took the row meanwhile;
- any failure after the row exists runs `_discard` (shielded from cancellation): the
  row goes, the quota comes back, the objects are deleted, and an object storage
  would not delete stays recorded in storage_orphans for the sweep.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncEngine

from ..config import Settings
from ..db import new_id, transaction, utcnow
from ..errors import AppError, NotFound, PayloadTooLarge, Unprocessable, UnsupportedMediaType
from ..storage import InvalidKey, ObjectInfo, ObjectNotFound, Storage, StorageError, check_key
from . import store
from .formats import EXTENSIONS, HEAD_BYTES, Checker, Sniffed, sniff
from .store import ACTIVE, PENDING, ImageRow

READ_BACK_BYTES = 4 << 20  # ranged reads when a presigned upload is verified
CONFIRM_GRACE = timedelta(minutes=5)  # a presigned row outlives its URL by this much
TOMBSTONE_DELAY = timedelta(minutes=5)  # the sweep leaves a request's own delete alone this long
MAX_FILENAME = 255

Reader = Callable[[], Awaitable[bytes]]


@dataclass(frozen=True)
class Env:
    """What the upload code works with, taken from the app once per request."""

    engine: AsyncEngine
    storage: Storage
    settings: Settings


# --------------------------------------------------------------------------- helpers


def clean_filename(name: str | None) -> str:
    """Display text only (never part of a key): the last path component, without
    control, format (bidi, zero-width) or unassigned characters, clipped to 255."""
    name = unicodedata.normalize("NFC", name or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] not in ("C", "Z") or ch == " ")
    name = " ".join(name.split()).lstrip(".").strip()
    return name[:MAX_FILENAME] or "image"


def delete_token(secret_key: str, image_id: str) -> str:
    """The per-image secret in the deletion URL. Derived from the server's secret, so the
    URL can be shown again later; only its hash is stored, and checked."""
    mac = hmac.new(secret_key.encode(), b"imagehost-delete-v1:" + image_id.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:24]).decode()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(row: ImageRow, token: str) -> bool:
    return hmac.compare_digest(token_hash(token), row.delete_token_hash)


def image_json(env: Env, row: ImageRow) -> dict[str, Any]:
    url = env.storage.public_url(row.storage_key)
    base = env.settings.public_base_url
    return {
        "id": row.id,
        "filename": row.filename,
        "content_type": row.content_type,
        "size_bytes": row.size_bytes,
        "width": row.width,
        "height": row.height,
        "public_url": url,
        "thumbnail_url": url,  # no separate thumbnails: browsers scale the image itself
        "deletion_url": f"{base}/d/{row.id}/{delete_token(env.settings.secret_key, row.id)}",
        "created_at": row.created_at.isoformat() + "Z",
    }


async def _sniff(env: Env, head: bytes) -> Sniffed:
    s = env.settings
    if len(head) <= 64 * 1024:
        return sniff(head, s.allowed_image_types, s.max_image_pixels)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, functools.partial(sniff, head, s.allowed_image_types, s.max_image_pixels))


def _new_row(
    env: Env, owner_id: str, filename: str, content_type: str, size: int, *, presigned: bool, expires_in: float
) -> ImageRow:
    image_id = new_id()
    ext = EXTENSIONS[content_type]
    now = utcnow()
    return ImageRow(
        id=image_id,
        owner_id=owner_id,
        status=PENDING,
        storage_key=f"{new_id()}.{ext}",
        upload_key=f"pending/{new_id()}.{ext}" if presigned else None,
        filename=clean_filename(filename),
        content_type=content_type,
        size_bytes=size,
        width=None,
        height=None,
        delete_token_hash=token_hash(delete_token(env.settings.secret_key, image_id)),
        created_at=now,
        expires_at=now + timedelta(seconds=expires_in),
    )


async def _insert(env: Env, row: ImageRow) -> None:
    async with transaction(env.engine) as conn:
        await store.reserve_quota(conn, row.owner_id, row.size_bytes, env.settings.quota_bytes)
        await store.insert_pending(
            conn,
            image_id=row.id,
            owner_id=row.owner_id,
            storage_key=row.storage_key,
            upload_key=row.upload_key,
            filename=row.filename,
            content_type=row.content_type,
            size_bytes=row.size_bytes,
            width=row.width,
            height=row.height,
            delete_token_hash=row.delete_token_hash,
            expires_at=row.expires_at,
        )


async def delete_objects(env: Env, keys: list[str]) -> bool:
    """Delete objects whose tombstones are already in storage_orphans, then drop the
    tombstones. What storage refuses stays recorded for the sweep. True if all went."""
    deleted: list[str] = []
    for key in keys:
        try:
            await env.storage.delete(key)
            deleted.append(key)
        except (StorageError, InvalidKey) as exc:
            logger.warning("delete of {} failed, the sweep will retry: {}", key, exc)
    if deleted:
        try:
            async with transaction(env.engine) as conn:
                await store.drop_orphans(conn, deleted)
        except Exception as exc:  # the sweep deletes them again: deletes are idempotent
            logger.warning("could not clear storage_orphans for {}: {}", deleted, type(exc).__name__)
    return len(deleted) == len(keys)


async def _discard(env: Env, row: ImageRow, maybe_stored: bool) -> None:
    """Undo a failed upload: row, quota, objects. Never raises."""
    try:
        async with transaction(env.engine) as conn:
            removed = await store.remove(
                conn,
                row.id,
                status=PENDING,
                orphan_delay=TOMBSTONE_DELAY,
                tombstones=maybe_stored or row.upload_key is not None,
            )
    except Exception as exc:
        # The database is down: the row stays pending, and the sweep removes it with
        # its objects once it expires.
        logger.warning("could not remove the pending upload {}: {}", row.id, type(exc).__name__)
        removed = None
    if removed is not None and (maybe_stored or row.upload_key is not None):
        await delete_objects(env, removed.keys)


# --------------------------------------------------------------------------- streamed


async def upload_stream(
    env: Env,
    owner_id: str,
    filename: str | None,
    read: Reader,
    size_hint: int | None,
    before_activate: Callable[[], Awaitable[None]] | None = None,
) -> ImageRow:
    """Store one file read chunk by chunk with `read()` (b"" at the end).

    The first bytes (up to HEAD_BYTES) are read and sniffed before anything is stored;
    the size limit is enforced on every chunk. `before_activate` runs after storage has
    the bytes (the form is read to its end there) and may still refuse the upload.
    """
    cap = env.settings.max_upload_bytes
    head = bytearray()
    eof = False
    while len(head) < HEAD_BYTES:
        chunk = await read()
        if not chunk:
            eof = True
            break
        head += chunk
        if len(head) > cap:
            raise PayloadTooLarge(detail={"max_bytes": cap})
    head_bytes = bytes(head)
    del head
    sniffed = await _sniff(env, head_bytes)
    checker = Checker(sniffed.content_type)
    checker.feed(head_bytes)
    if eof:
        checker.finish()
    # The reservation: the exact size if the whole file is here, else an upper bound
    # (the request's length, or the limit); the surplus goes back at activation.
    reserve = len(head_bytes) if eof else min(size_hint or cap, cap)
    row = _new_row(
        env,
        owner_id,
        filename or "",
        sniffed.content_type,
        reserve,
        presigned=False,
        expires_in=env.settings.pending_upload_expiry_seconds,
    )
    await _insert(env, row)

    async def chunks() -> AsyncIterator[bytes]:
        yield head_bytes
        if eof:
            return
        total = len(head_bytes)
        while True:
            chunk = await read()
            if not chunk:
                break
            total += len(chunk)
            if total > cap:
                raise PayloadTooLarge(detail={"max_bytes": cap})
            checker.feed(chunk)
            yield chunk
        checker.finish()

    maybe_stored, done = True, False
    try:
        try:
            async with aclosing(chunks()) as gen:
                size = await env.storage.put_stream(row.storage_key, gen, sniffed.content_type)
        except (StorageError, AppError):
            maybe_stored = False  # a backend leaves nothing behind when put_stream fails
            raise
        if before_activate is not None:
            await before_activate()
        async with transaction(env.engine) as conn:
            if not await store.activate(
                conn,
                row,
                size_bytes=size,
                content_type=sniffed.content_type,
                width=sniffed.width,
                height=sniffed.height,
            ):
                raise NotFound("the upload expired before it finished")
            active = await store.get(conn, row.id)
        done = True
    finally:
        if not done:
            await asyncio.shield(_discard(env, row, maybe_stored))
    assert active is not None
    return active


# --------------------------------------------------------------------------- presigned


def _declared(env: Env, content_type: Any, size_bytes: Any) -> tuple[str, int]:
    if not isinstance(content_type, str):
        raise Unprocessable("content_type is required")
    ctype = content_type.split(";", 1)[0].strip().lower()
    allowed = env.settings.allowed_image_types
    if ctype not in allowed:
        raise UnsupportedMediaType("unsupported file type", {"declared": ctype, "allowed": list(allowed)})
    if isinstance(size_bytes, bool) or not isinstance(size_bytes, int) or size_bytes <= 0:
        raise Unprocessable("size_bytes must be a positive integer")
    if size_bytes > env.settings.max_upload_bytes:
        raise PayloadTooLarge(detail={"max_bytes": env.settings.max_upload_bytes, "size_bytes": size_bytes})
    return ctype, size_bytes


async def create_upload_url(
    env: Env, owner_id: str, filename: Any, content_type: Any, size_bytes: Any
) -> dict[str, Any]:
    ctype, size = _declared(env, content_type, size_bytes)
    expires_in = env.settings.pending_upload_expiry_seconds
    row = _new_row(
        env,
        owner_id,
        filename if isinstance(filename, str) else "",
        ctype,
        size,
        presigned=True,
        expires_in=expires_in + CONFIRM_GRACE.total_seconds(),
    )
    assert row.upload_key is not None
    presigned = await env.storage.presign_put(row.upload_key, ctype, size, expires_in)
    await _insert(env, row)
    return {
        "upload_url": presigned.url,
        "r2_key": row.upload_key,
        "public_url": env.storage.public_url(row.storage_key),
        "expires_at": (utcnow() + timedelta(seconds=expires_in)).replace(microsecond=0).isoformat() + "Z",
        "headers": presigned.headers,
    }


async def _verify_stored(env: Env, row: ImageRow, info: ObjectInfo) -> Sniffed:
    """The stored bytes against what was declared: size, then type (a ranged read of the
    head), then the whole structure (read back in large ranges)."""
    key = row.upload_key
    assert key is not None
    if info.size > env.settings.max_upload_bytes:
        raise PayloadTooLarge(detail={"max_bytes": env.settings.max_upload_bytes, "stored_bytes": info.size})
    if info.size != row.size_bytes:
        raise Unprocessable(
            "the uploaded size differs from the declared size",
            {"declared_bytes": row.size_bytes, "stored_bytes": info.size},
        )
    head = await env.storage.read_range(key, 0, min(HEAD_BYTES, info.size))
    sniffed = await _sniff(env, head)
    if sniffed.content_type != row.content_type:
        raise UnsupportedMediaType(
            "the uploaded type differs from the declared type",
            {"declared": row.content_type, "detected": sniffed.content_type},
        )
    checker = Checker(sniffed.content_type)
    checker.feed(head)
    offset = len(head)
    while offset < info.size:
        data = await env.storage.read_range(key, offset, min(READ_BACK_BYTES, info.size - offset))
        if not data:
            break
        checker.feed(data)
        offset += len(data)
    if offset != info.size:
        raise Unprocessable("the uploaded object changed while it was read")
    checker.finish()
    return sniffed


async def confirm(env: Env, owner_id: str, r2_key: Any) -> tuple[ImageRow, bool]:
    """Verify a presigned upload and make it an image. Returns (row, created): a second
    confirm of the same upload returns the same image with created=False."""
    if not isinstance(r2_key, str) or not r2_key.startswith("pending/"):
        raise NotFound("upload not found")
    try:
        check_key(r2_key)
    except InvalidKey:
        raise NotFound("upload not found") from None
    async with env.engine.connect() as conn:
        row = await store.get_upload(conn, owner_id, r2_key)
    if row is None:
        raise NotFound("upload not found")
    if row.status == ACTIVE:
        return row, False
    if row.expires_at is not None and row.expires_at < utcnow():
        raise NotFound("upload expired")
    info = await env.storage.head(r2_key)
    if info is None:
        # Nothing to verify yet; the row stays (the URL may still be used) and the
        # sweep removes it when it expires.
        raise Unprocessable("nothing has been uploaded to this URL yet")
    try:
        sniffed = await _verify_stored(env, row, info)
    except AppError:
        await asyncio.shield(_discard(env, row, maybe_stored=True))
        raise
    try:
        await env.storage.copy(r2_key, row.storage_key, sniffed.content_type)
    except ObjectNotFound:
        async with env.engine.connect() as conn:  # a concurrent confirm got there first
            again = await store.get_upload(conn, owner_id, r2_key)
        if again is not None and again.status == ACTIVE:
            return again, False
        raise NotFound("upload not found") from None
    done = False
    try:
        async with transaction(env.engine) as conn:
            if not await store.activate(
                conn,
                row,
                size_bytes=info.size,
                content_type=sniffed.content_type,
                width=sniffed.width,
                height=sniffed.height,
            ):
                raise NotFound("upload expired")
            await store.add_orphans(conn, [r2_key], delay=TOMBSTONE_DELAY)
            active = await store.get(conn, row.id)
        done = True
    finally:
        if not done:
            await asyncio.shield(_discard(env, row, maybe_stored=True))
            await asyncio.shield(_delete_untracked(env, row.storage_key))
    # The temporary object goes now, so a still-valid presigned URL can never change
    # the confirmed image (its tombstone covers a failure here).
    await delete_objects(env, [r2_key])
    assert active is not None
    return active, True


async def _delete_untracked(env: Env, key: str) -> None:
    """A copy made for a row that is gone (taken by the sweep): record and delete it."""
    try:
        async with transaction(env.engine) as conn:
            await store.add_orphans(conn, [key], delay=TOMBSTONE_DELAY)
    except Exception as exc:
        logger.warning("could not record {} for deletion: {}", key, type(exc).__name__)
    await delete_objects(env, [key])


async def find_pending_upload(env: Env, upload_key: str) -> ImageRow | None:
    async with env.engine.connect() as conn:
        return await store.get_pending_upload(conn, upload_key)


# --------------------------------------------------------------------------- delete


async def delete_image(env: Env, image_id: str, *, owner_id: str | None = None, token: str | None = None) -> bool:
    """Delete an active image, by its owner or with its deletion token. The row goes
    first (the image disappears at once); its objects follow, or the sweep deletes them."""
    if token is not None and await image_by_token(env, image_id, token) is None:
        return False
    async with transaction(env.engine) as conn:
        removed = await store.remove(conn, image_id, owner_id=owner_id, status=ACTIVE, orphan_delay=TOMBSTONE_DELAY)
    if removed is None:
        return False
    await delete_objects(env, removed.keys)
    return True


async def image_by_token(env: Env, image_id: str, token: str) -> ImageRow | None:
    async with env.engine.connect() as conn:
        row = await store.get(conn, image_id)
    if row is None or row.status != ACTIVE or not token_matches(row, token):
        return None
    return row
