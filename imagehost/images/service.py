"""Image use cases: uploads (streamed and presigned), listing, deletes, and the image JSON.

The order of every step is what keeps the invariants in ARCHITECTURE.md:
- a pending row, with its quota reservation, is committed before any byte reaches
  storage, so every object has a row (the sweep removes expired pending rows with
  their objects);
- the row turns active only after storage has the verified bytes, in a conditional
  UPDATE that fails if the sweep took the row meanwhile;
- everything between the two runs inside `pending_upload`, the upload's unit of work:
  on any failure (or cancellation) the row goes, the quota comes back, the objects are
  deleted, and an object storage would not delete stays recorded in storage_orphans
  for the sweep.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hmac
import re
import unicodedata
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Collection
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from loguru import logger

from ..db import Cursor, json_time, new_id, sha256_hex, transaction, utcnow
from ..env import Env
from ..errors import AppError, Conflict, NotFound, PayloadTooLarge, Unprocessable, UnsupportedMediaType
from ..storage import InvalidKey, ObjectChanged, ObjectInfo, ObjectNotFound, StorageError, check_key
from . import pipeline, store
from .formats import EXTENSIONS, HEAD_BYTES, Checker, Sniffed, sniff
from .metadata import Stripper
from .store import ACTIVE, PENDING, ImageRow

CHUNK = 1024 * 1024  # bytes per read from a request or a file; fewer, larger reads cost less per byte
READ_BACK_BYTES = 4 << 20  # ranged reads when a presigned upload is verified
CONFIRM_GRACE = timedelta(minutes=5)  # a presigned row outlives its URL by this much
TOMBSTONE_DELAY = timedelta(minutes=5)  # the sweep leaves a request's own delete alone this long
MAX_FILENAME = 255
DEFAULT_PAGE, MAX_PAGE = 50, 100

Reader = Callable[[], Awaitable[bytes]]


# --------------------------------------------------------------------------- helpers


def clean_filename(name: str | None) -> str:
    """Display text only (never part of a key): the last path component, without
    control, format (bidi, zero-width) or unassigned characters, clipped to 255."""
    name = unicodedata.normalize("NFC", name or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] not in ("C", "Z") or ch == " ")
    name = " ".join(name.split()).lstrip(".").strip()
    return name[:MAX_FILENAME] or "image"


def upload_name(filename: str | None, content_type: str, now: datetime) -> str:
    """The display name: the cleaned filename, or, when there is none (`curl -F
    file=@-` sends "-"), the time of the upload."""
    if (filename or "").strip() in ("", "-"):
        return f"upload-{now:%Y-%m-%d-%H%M%S}.{EXTENSIONS[content_type]}"
    return clean_filename(filename)


def delete_token(secret_key: str, image_id: str) -> str:
    """The per-image secret in the deletion URL. Derived from the server's secret, so the
    URL can be shown again later; only its hash is stored, and checked."""
    mac = hmac.new(secret_key.encode(), b"imagehost-delete-v1:" + image_id.encode(), "sha256").digest()
    return base64.urlsafe_b64encode(mac[:24]).decode()


def token_matches(row: ImageRow, token: str) -> bool:
    return hmac.compare_digest(sha256_hex(token), row.delete_token_hash)


def image_json(env: Env, row: ImageRow) -> dict[str, Any]:
    public = env.storage.public_url
    url = public(row.storage_key)
    thumbnail = row.thumb_key is not None
    return {
        "id": row.id,
        "filename": row.filename,
        "content_type": row.content_type,
        "size_bytes": row.size_bytes,
        "width": row.width,
        "height": row.height,
        "public_url": url,
        # An image stored before the pipeline has no derivatives until the backfill.
        "thumbnail_url": public(row.thumb_key) if row.thumb_key else url,
        "thumbnail_width": row.thumb_width if thumbnail else row.width,
        "thumbnail_height": row.thumb_height if thumbnail else row.height,
        "display_url": public(row.display_key) if row.display_key else url,
        "page_url": env.url("share", id=row.id),
        "animated": row.animated,
        "expires_at": json_time(row.expires_at) if row.status == ACTIVE and row.expires_at else None,
        "deletion_url": env.url("deletion", id=row.id, token=delete_token(env.settings.secret_key, row.id)),
        "created_at": json_time(row.created_at),
    }


async def _sniff(env: Env, head: bytes) -> Sniffed:
    s = env.settings
    if len(head) <= 64 * 1024:
        return sniff(head, s.allowed_image_types, s.max_image_pixels)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, functools.partial(sniff, head, s.allowed_image_types, s.max_image_pixels))


_EXPIRY = re.compile(r"([0-9]{1,9})([smhd]?)")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_expiry(env: Env, raw: object) -> int | None:
    """An upload's asked lifetime in seconds: a number of seconds, or `10m`, `1h`, `1d`,
    `7d`, `30d` (any number with s/m/h/d), within EXPIRY_MIN_SECONDS..EXPIRY_MAX_SECONDS.
    None or "" is no expiry. Anything else is 422 `invalid_input` naming the field."""
    if raw is None or raw == "":
        return None
    s = env.settings
    limits = {"field": "expires_in", "min_seconds": s.expiry_min_seconds, "max_seconds": s.expiry_max_seconds}
    match = _EXPIRY.fullmatch(raw.strip().lower()) if isinstance(raw, str) else None
    if isinstance(raw, int) and not isinstance(raw, bool):
        seconds = raw
    elif match:
        seconds = int(match[1]) * _UNIT[match[2]]
    else:
        raise Unprocessable("expires_in: seconds, or a number with s, m, h or d (10m, 1h, 7d)", limits)
    if not s.expiry_min_seconds <= seconds <= s.expiry_max_seconds:
        raise Unprocessable("expires_in is out of range", limits)
    return seconds


def _new_row(
    env: Env,
    owner_id: str,
    filename: str,
    content_type: str,
    size: int,
    *,
    presigned: bool,
    expires_in: float,
    lifetime: int | None = None,
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
        filename=upload_name(filename, content_type, now),
        content_type=content_type,
        size_bytes=size,
        width=None,
        height=None,
        delete_token_hash=sha256_hex(delete_token(env.settings.secret_key, image_id)),
        created_at=now,
        expires_at=now + timedelta(seconds=expires_in),
        thumb_key=pipeline.derivative_key(),
        expire_after_seconds=lifetime,
    )


async def _insert(env: Env, row: ImageRow) -> None:
    """The pending row and its quota reservation, committed before any byte is stored."""
    assert row.expires_at is not None  # a pending row always expires
    async with transaction(env.engine) as conn:
        await store.reserve_quota(conn, row.owner_id, row.size_bytes, env.settings.default_quota_bytes)
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
            thumb_key=row.thumb_key,
            expire_after_seconds=row.expire_after_seconds,
        )


async def delete_objects(env: Env, keys: list[str], keep_tracked: Collection[str] = ()) -> bool:
    """Delete objects whose tombstones are already in storage_orphans, then drop the
    tombstones — except those in `keep_tracked`, which stay until they are due (a
    presigned key whose URL still lives: the sweep deletes whatever is PUT there late).
    What storage refuses stays recorded for the sweep. True if all went."""
    deleted: list[str] = []
    for key in keys:
        try:
            await env.storage.delete(key)
            deleted.append(key)
        except (StorageError, InvalidKey) as exc:
            logger.warning("delete of {} failed, the sweep will retry: {}", key, exc)
    done = [k for k in deleted if k not in keep_tracked]
    if done:
        try:
            async with transaction(env.engine) as conn:
                await store.drop_orphans(conn, done)
        except Exception as exc:  # the sweep deletes them again: deletes are idempotent
            logger.warning("could not clear storage_orphans for {}: {}", deleted, type(exc).__name__)
    return len(deleted) == len(keys)


async def _delete_untracked(env: Env, keys: list[str]) -> None:
    """Objects written for a row that is gone (the sweep took it meanwhile): record them
    for deletion first, then delete them. Never raises."""
    try:
        async with transaction(env.engine) as conn:
            await store.add_orphans(conn, keys, delay=TOMBSTONE_DELAY)
    except Exception as exc:
        logger.warning("could not record {} for deletion: {}", keys, type(exc).__name__)
    await delete_objects(env, keys)


# --------------------------------------------------------------------------- the unit of work


class AlreadyActive(Exception):
    """A concurrent confirm of the same upload activated it first."""

    def __init__(self, row: ImageRow) -> None:
        super().__init__(row.id)
        self.row = row


@dataclass
class PendingUpload:
    """One upload between its pending row and its activation (see `pending_upload`)."""

    env: Env
    row: ImageRow
    written: list[str] = field(default_factory=list)  # keys this upload may have written to
    active: ImageRow | None = None

    async def activate(
        self,
        *,
        size_bytes: int,
        sniffed: Sniffed,
        made: pipeline.Made,
        tombstones: tuple[str, ...] = (),
        delay: timedelta = TOMBSTONE_DELAY,
    ) -> ImageRow:
        """Pending → active in one transaction, with the stored size and type; `tombstones`
        are keys to delete after it (recorded in the same transaction). NotFound if the
        upload expired meanwhile (the sweep took the row); AlreadyActive if a concurrent
        confirm activated it (what was written is then that image's, and stays)."""
        async with transaction(self.env.engine) as conn:
            d = made.derivatives
            active = await store.activate(
                conn,
                self.row,
                size_bytes=size_bytes,
                content_type=sniffed.content_type,
                width=d.width,  # as shown: after the orientation
                height=d.height,
                thumb=made.thumb,
                animated=d.animated,
                complete=not d.display_wanted,
            )
            if active is None:
                current = await store.get(conn, self.row.id)
                if current is not None and current.status == ACTIVE:
                    self.written.clear()
                    raise AlreadyActive(current)
                raise NotFound("the upload expired before it finished", code="upload_expired")
            if tombstones:
                await store.add_orphans(conn, list(tombstones), delay=delay)
        self.active = active
        return active


@asynccontextmanager
async def pending_upload(env: Env, row: ImageRow) -> AsyncIterator[PendingUpload]:
    """The unit of work of an upload whose pending row exists (invariant 3).

    The block stores and verifies the bytes, noting each key it writes in
    `upload.written` before writing, and ends with `upload.activate(...)`. If it raises
    or is cancelled before that, the row goes, the quota reservation comes back and
    every object the upload may have written is deleted (shielded from cancellation);
    objects of a row the sweep already took are recorded and deleted too.
    """
    upload = PendingUpload(env, row)
    try:
        yield upload
        if upload.active is None:
            raise RuntimeError("pending_upload block ended without activating the upload")
    except BaseException:
        if upload.active is None:  # once active, the image is the user's: nothing to undo
            await asyncio.shield(_discard(upload))
        raise


def _url_lifetime_left(row: ImageRow) -> timedelta:
    """How long a presigned row's upload URL may still be used (the row's expiry is the
    URL's plus a grace period): its key stays tracked that long."""
    assert row.expires_at is not None
    return max(TOMBSTONE_DELAY, row.expires_at - utcnow())


async def _discard(upload: PendingUpload) -> None:
    """Undo a failed upload: row, quota, objects. Never raises."""
    env, row = upload.env, upload.row
    stored = bool(upload.written) or row.upload_key is not None
    keep = (row.upload_key,) if row.upload_key else ()
    try:
        async with transaction(env.engine) as conn:
            if row.upload_key:  # its URL still lives: track the key until it is dead
                await store.add_orphans(conn, [row.upload_key], delay=_url_lifetime_left(row))
            removed = await store.remove(conn, row.id, status=PENDING, orphan_delay=TOMBSTONE_DELAY, tombstones=stored)
    except Exception as exc:
        # The database is down: the row stays pending, and the sweep removes it with
        # its objects once it expires.
        logger.warning("could not remove the pending upload {}: {}", row.id, type(exc).__name__)
        return
    if removed is not None:
        if stored:
            await delete_objects(env, removed.keys, keep_tracked=keep)
    elif upload.written:
        await _delete_untracked(env, upload.written)


# --------------------------------------------------------------------------- streamed


async def upload_stream(
    env: Env,
    owner_id: str,
    filename: str | None,
    read: Reader,
    size_hint: int | None,
    before_activate: Callable[[], Awaitable[None]] | None = None,
    lifetime: int | None = None,
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
        lifetime=lifetime,
    )
    await _insert(env, row)

    async def rest() -> AsyncGenerator[bytes, None]:
        total = len(head_bytes)
        while not eof:
            chunk = await read()
            if not chunk:
                break
            total += len(chunk)
            if total > cap:
                raise PayloadTooLarge(detail={"max_bytes": cap})
            yield chunk

    spool = pipeline.Spool(env, row.storage_key)
    try:
        async with pending_upload(env, row) as upload:
            size = await _write(upload, _stored_bytes(env, checker, head_bytes, rest(), spool))
            if before_activate is not None:
                await before_activate()
            active = await _finish(upload, spool, size, sniffed)
    except BaseException:
        spool.discard()
        raise
    return active


async def _finish(
    upload: PendingUpload, spool: pipeline.Spool, size: int, sniffed: Sniffed, **activate: Any
) -> ImageRow:
    """The stored original's thumbnail (before answering), the activation, and the
    display size after it, in the background (pages use the original until then)."""
    env, row = upload.env, upload.row
    assert row.thumb_key is not None
    spool.close()
    upload.written.append(row.thumb_key)
    made = await pipeline.make_thumbnail(env, row, spool.path)
    active = await upload.activate(size_bytes=size, sniffed=sniffed, made=made, **activate)
    if made.derivatives.display_wanted:
        env.background.spawn(pipeline.make_display_later(env, active, spool.path, spool), "display size")
    else:
        spool.discard()
    return active


async def _stored_bytes(
    env: Env, checker: Checker, head: bytes, rest: AsyncIterator[bytes], spool: pipeline.Spool
) -> AsyncGenerator[bytes, None]:
    """What is stored: the file, its structure checked chunk by chunk, its metadata
    removed by rewriting the container (STRIP_METADATA), copied to `spool` for the
    libvips workers as it goes. `head` was checked already."""
    stripper = Stripper(checker.content_type) if env.settings.strip_metadata else None
    out = stripper.feed(head) if stripper else head
    if out:
        await spool.write(out)
        yield out
    async for chunk in rest:
        checker.feed(chunk)
        out = stripper.feed(chunk) if stripper else chunk
        if out:
            await spool.write(out)
            yield out
    checker.finish()
    if stripper:
        for piece in stripper.finish():
            await spool.write(piece)
            yield piece


async def _write(upload: PendingUpload, chunks: AsyncGenerator[bytes, None]) -> int:
    """Stream the chunks to the upload's final key; the byte count stored."""
    key = upload.row.storage_key
    upload.written.append(key)
    try:
        async with aclosing(chunks) as gen:
            return await upload.env.storage.put_stream(key, gen, upload.row.content_type)
    except (StorageError, AppError):
        upload.written.clear()  # a backend leaves nothing behind when put_stream fails
        raise


# --------------------------------------------------------------------------- presigned


def _declared(env: Env, content_type: Any, size_bytes: Any) -> tuple[str, int]:
    if not isinstance(content_type, str):
        raise Unprocessable("content_type is required", {"field": "content_type"})
    ctype = content_type.split(";", 1)[0].strip().lower()
    allowed = env.settings.allowed_image_types
    if ctype not in allowed:
        raise UnsupportedMediaType("unsupported file type", {"declared": ctype, "allowed": list(allowed)})
    if isinstance(size_bytes, bool) or not isinstance(size_bytes, int) or size_bytes <= 0:
        raise Unprocessable("size_bytes must be a positive integer", {"field": "size_bytes"})
    if size_bytes > env.settings.max_upload_bytes:
        raise PayloadTooLarge(detail={"max_bytes": env.settings.max_upload_bytes, "size_bytes": size_bytes})
    return ctype, size_bytes


async def create_upload_url(
    env: Env, owner_id: str, filename: Any, content_type: Any, size_bytes: Any, expires_in: Any = None
) -> dict[str, Any]:
    ctype, size = _declared(env, content_type, size_bytes)
    lifetime = parse_expiry(env, expires_in)
    url_lifetime = env.settings.pending_upload_expiry_seconds
    row = _new_row(
        env,
        owner_id,
        filename if isinstance(filename, str) else "",
        ctype,
        size,
        presigned=True,
        expires_in=url_lifetime + CONFIRM_GRACE.total_seconds(),
        lifetime=lifetime,
    )
    assert row.upload_key is not None
    presigned = await env.storage.presign_put(row.upload_key, ctype, size, url_lifetime)
    await _insert(env, row)
    return {
        "upload_url": presigned.url,
        "r2_key": row.upload_key,
        "public_url": env.storage.public_url(row.storage_key),
        "expires_at": json_time((utcnow() + timedelta(seconds=url_lifetime)).replace(microsecond=0)),
        "headers": presigned.headers,
    }


def _check_stored_size(env: Env, row: ImageRow, info: ObjectInfo) -> None:
    if info.size > env.settings.max_upload_bytes:
        raise PayloadTooLarge(detail={"max_bytes": env.settings.max_upload_bytes, "stored_bytes": info.size})
    if info.size != row.size_bytes:
        raise Unprocessable(
            "the uploaded size differs from the declared size",
            {"declared_bytes": row.size_bytes, "stored_bytes": info.size},
            code="size_mismatch",
        )


async def _store_verified(
    env: Env, upload: PendingUpload, key: str, info: ObjectInfo, spool: pipeline.Spool
) -> tuple[Sniffed, int]:
    """Read the uploaded object back, bound to the version `head` saw (its ETag), check
    its size, type (the head, sniffed) and whole structure, and write what passes —
    metadata stripped — to the final key. The final object is only ever bytes this
    server read and checked: a PUT racing the confirm makes a read fail, never slip in."""
    row = upload.row
    _check_stored_size(env, row, info)
    head = await env.storage.read_range(key, 0, min(HEAD_BYTES, info.size), if_match=info.etag)
    sniffed = await _sniff(env, head)
    if sniffed.content_type != row.content_type:
        raise UnsupportedMediaType(
            "the uploaded type differs from the declared type",
            {"declared": row.content_type, "detected": sniffed.content_type},
            code="type_mismatch",
        )
    checker = Checker(sniffed.content_type)
    checker.feed(head)

    async def rest() -> AsyncGenerator[bytes, None]:
        offset = len(head)
        while offset < info.size:
            length = min(READ_BACK_BYTES, info.size - offset)
            data = await env.storage.read_range(key, offset, length, if_match=info.etag)
            if len(data) != length:
                raise ObjectChanged(key)
            offset += length
            yield data

    return sniffed, await _write(upload, _stored_bytes(env, checker, head, rest(), spool))


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
        raise NotFound("upload expired", code="upload_expired")
    info = await env.storage.head(r2_key)
    if info is None:
        # Nothing to verify yet; the row stays (the URL may still be used) and the
        # sweep removes it when it expires.
        raise Unprocessable("nothing has been uploaded to this URL yet", code="nothing_uploaded")
    url_left = _url_lifetime_left(row)
    spool = pipeline.Spool(env, row.storage_key)
    try:
        async with pending_upload(env, row) as upload:
            try:
                sniffed, size = await _store_verified(env, upload, r2_key, info, spool)
            except ObjectChanged:
                raise Conflict(
                    "the upload changed while it was being checked: upload it again", code="upload_changed"
                ) from None
            # The temporary key stays tracked until its URL is dead, so whatever is PUT
            # there later is removed by the sweep.
            active = await _finish(upload, spool, size, sniffed, tombstones=(r2_key,), delay=url_left)
    except AlreadyActive as exc:
        spool.discard()
        return exc.row, False
    except ObjectNotFound:
        spool.discard()
        async with env.engine.connect() as conn:  # a concurrent confirm got there first
            again = await store.get_upload(conn, owner_id, r2_key)
        if again is not None and again.status == ACTIVE:
            return again, False
        raise NotFound("upload not found") from None
    except BaseException:
        spool.discard()
        raise
    # The temporary object goes now; its tombstone stays until the URL is dead.
    await delete_objects(env, [r2_key], keep_tracked=(r2_key,))
    return active, True


async def find_pending_upload(env: Env, upload_key: str) -> ImageRow | None:
    async with env.engine.connect() as conn:
        return await store.get_pending_upload(conn, upload_key)


# --------------------------------------------------------------------------- reading


def page_limit(raw: str | None) -> int:
    """The `limit` query parameter: 1 to 100 (larger is clipped), 50 when absent."""
    if raw is None or raw == "":
        return DEFAULT_PAGE
    try:
        limit = int(raw)
    except ValueError:
        raise BadLimit() from None
    if limit < 1:
        raise BadLimit()
    return min(limit, MAX_PAGE)


class BadLimit(AppError):
    status, code, message = 400, "invalid_limit", "limit must be an integer from 1 to 100"


MAX_QUERY, MAX_QUERY_WORDS = 200, 8


def search_words(raw: str | None) -> list[str]:
    """The `q` parameter as the words to look for (none: no search). Each must start a
    word of the filename, case-insensitively: `scr 2024` finds `Screenshot_2024-01-05.png`."""
    if not raw or not raw.strip():
        return []
    if len(raw) > MAX_QUERY:
        raise Unprocessable(f"q is at most {MAX_QUERY} characters", {"field": "q"})
    words = store.filename_words(raw)
    if len(words) > MAX_QUERY_WORDS:
        raise Unprocessable(f"q has at most {MAX_QUERY_WORDS} words", {"field": "q"})
    return words


async def listing(
    env: Env,
    owner_id: str,
    raw_cursor: str | None,
    limit: int,
    *,
    q: str | None = None,
    album_id: str | None = None,
) -> tuple[list[ImageRow], Cursor | None, int]:
    """One page of the owner's images after the opaque cursor, and how many they have;
    with `q`, those whose filename matches (see `search_words`), with `album_id` (an album
    the caller checked is the owner's), those in it — `total` then counts the matches.
    A `q` with no letter or digit in it matches nothing."""
    cursor = Cursor.decode(raw_cursor) if raw_cursor else None
    words = search_words(q)
    async with env.engine.connect() as conn:
        if q and q.strip() and not words:
            return [], None, 0
        if not words and album_id is None:
            return await store.list_for_owner(conn, owner_id, cursor, limit)
        return await store.list_filtered(conn, owner_id, cursor, limit, words=words, album_id=album_id)


async def everything_of(env: Env, owner_id: str) -> list[ImageRow]:
    """All of the owner's live images, oldest first: what an export of everything holds."""
    async with env.engine.connect() as conn:
        return await store.all_live_for_owner(conn, owner_id)


async def owned_image(env: Env, owner_id: str, image_id: str) -> ImageRow:
    """The owner's active image, or 404 (for another user's image too)."""
    async with env.engine.connect() as conn:
        row = await store.get_for_owner(conn, owner_id, image_id)
    if row is None:
        raise NotFound("image not found")
    return row


async def image_by_token(env: Env, image_id: str, token: str) -> ImageRow | None:
    async with env.engine.connect() as conn:
        row = await store.get(conn, image_id)
    if row is None or row.status != ACTIVE or row.expired(utcnow()) or not token_matches(row, token):
        return None
    return row


# --------------------------------------------------------------------------- delete


async def delete_by_owner(env: Env, owner_id: str, image_id: str) -> None:
    """The owner deletes their image; anyone else gets 404 and the image stays."""
    if not await _delete(env, image_id, owner_id=owner_id):
        raise NotFound("image not found")


MAX_BULK = 500


async def delete_many(env: Env, owner_id: str, raw_ids: Any) -> int:
    """The owner deletes several images at once. All or nothing: if any id is not the
    owner's live image, 404 and every image stays. Rows first (in one transaction), then
    their objects, as `_delete` does."""
    if (
        not isinstance(raw_ids, list)
        or not raw_ids
        or len(raw_ids) > MAX_BULK
        or not all(isinstance(i, str) and 0 < len(i) <= 32 for i in raw_ids)
    ):
        raise Unprocessable(f"image_ids is a list of 1 to {MAX_BULK} image ids", {"field": "image_ids"})
    ids = list(dict.fromkeys(raw_ids))
    keys: list[str] = []
    async with transaction(env.engine) as conn:
        found = await store.live_owned_ids(conn, owner_id, ids)
        missing = [i for i in ids if i not in found]
        if missing:
            raise NotFound("image not found", {"image_ids": missing[:20]})
        for image_id in ids:
            removed = await store.remove(conn, image_id, owner_id=owner_id, status=ACTIVE, orphan_delay=TOMBSTONE_DELAY)
            if removed is None:  # deleted meanwhile: the whole request is refused
                raise NotFound("image not found", {"image_ids": [image_id]})
            keys.extend(removed.keys)
    await delete_objects(env, keys)
    return len(ids)


async def delete_by_token(env: Env, image_id: str, token: str) -> bool:
    """Anyone holding the image's deletion secret deletes it. False if the id and token
    do not name an active image."""
    if await image_by_token(env, image_id, token) is None:
        return False
    return await _delete(env, image_id)


async def _delete(env: Env, image_id: str, owner_id: str | None = None) -> bool:
    """The row goes first (the image disappears at once); its objects follow, or the
    sweep deletes them."""
    async with transaction(env.engine) as conn:
        removed = await store.remove(conn, image_id, owner_id=owner_id, status=ACTIVE, orphan_delay=TOMBSTONE_DELAY)
    if removed is None:
        return False
    await delete_objects(env, removed.keys)
    return True
