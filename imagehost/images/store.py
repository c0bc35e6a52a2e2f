"""Image queries. Plain async functions taking a connection; the caller owns the
transaction. Owner scoping lives in the queries, so a handler cannot forget it.

Bookkeeping kept by these statements, always in the same transaction as the row change:
- `users.storage_used_bytes` holds the sum of `size_bytes` over the user's rows, pending
  and active (a pending row's size is its quota reservation);
- `users.image_count` holds the number of the user's active rows;
- a removed row's objects are written to `storage_orphans` in the same transaction
  (a tombstone), so an object can never outlive its row unnoticed, even if the process
  dies between the row's delete and the object's.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from ..db import Cursor, utcnow
from ..errors import QuotaExceeded, Unauthorized
from ..tables import album_images, image_words, images, storage_orphans, users

PENDING, ACTIVE = "pending", "active"
PIPELINE_VERSION = 1  # metadata stripped, thumbnail and display size made
DERIVATIVE_TYPE = "image/webp"


@dataclass(frozen=True)
class ImageRow:
    id: str
    owner_id: str
    status: str
    storage_key: str
    upload_key: str | None
    filename: str
    content_type: str
    size_bytes: int
    width: int | None
    height: int | None
    delete_token_hash: str
    created_at: datetime
    expires_at: datetime | None
    thumb_key: str | None = None
    display_key: str | None = None
    thumb_width: int | None = None
    thumb_height: int | None = None
    animated: bool = False
    pipeline_version: int = 0
    expire_after_seconds: int | None = None

    def expired(self, now: datetime) -> bool:
        """An active image past its expiry: gone for everyone, whatever the sweep did yet."""
        return self.status == ACTIVE and self.expires_at is not None and self.expires_at <= now

    @property
    def keys(self) -> list[str]:
        """Every object this row may have in storage: the original and its derivatives
        (an active row's temporary upload object was deleted, or tombstoned, at confirm)."""
        derived = [k for k in (self.thumb_key, self.display_key) if k]
        if self.status == ACTIVE:
            return [self.storage_key, *derived]
        return [k for k in (self.upload_key, self.storage_key) if k] + derived


_COLS = (
    images.c.id,
    images.c.owner_id,
    images.c.status,
    images.c.storage_key,
    images.c.upload_key,
    images.c.filename,
    images.c.content_type,
    images.c.size_bytes,
    images.c.width,
    images.c.height,
    images.c.delete_token_hash,
    images.c.created_at,
    images.c.expires_at,
    images.c.thumb_key,
    images.c.display_key,
    images.c.thumb_width,
    images.c.thumb_height,
    images.c.animated,
    images.c.pipeline_version,
    images.c.expire_after_seconds,
)
COLUMNS = _COLS  # for the queries of other rooms that read an image row (sharing/store.py)


def _image_row(r: Any) -> ImageRow:
    return ImageRow(*r)


def _row(r: Any) -> ImageRow | None:
    return _image_row(r) if r is not None else None


# --------------------------------------------------------------------------- quota


# The statements of every upload are built once, with bound parameters: building and
# keying a statement costs more than running it (about 0.1 ms each, measured); SQLAlchemy
# compiles each of them once per engine and finds it in its cache by the memoized key.
_NBYTES = bindparam("p_nbytes", type_=BigInteger)
_QUOTA = func.coalesce(users.c.quota_bytes, bindparam("p_default_quota", type_=BigInteger))
_RESERVE = (
    update(users)
    .where(
        users.c.id == bindparam("p_user_id"),
        or_(_QUOTA == 0, users.c.storage_used_bytes + _NBYTES <= _QUOTA),
    )
    .values(storage_used_bytes=users.c.storage_used_bytes + _NBYTES)
)


async def reserve_quota(conn: AsyncConnection, user_id: str, nbytes: int, default_quota: int) -> None:
    """Count `nbytes` against the user's quota, atomically: one conditional UPDATE, so
    parallel uploads cannot overshoot. The quota is the account's own (`users.quota_bytes`,
    set by an admin) or, when it has none, `default_quota` (DEFAULT_USER_QUOTA_MB); 0 is
    unlimited. Raises QuotaExceeded (413), or Unauthorized if the account is gone."""
    params = {"p_user_id": user_id, "p_nbytes": nbytes, "p_default_quota": default_quota}
    if (await conn.execute(_RESERVE, params)).rowcount != 1:
        quota = func.coalesce(users.c.quota_bytes, default_quota)
        row = (await conn.execute(select(users.c.storage_used_bytes, quota).where(users.c.id == user_id))).first()
        if row is None:  # deleted while this request ran
            raise Unauthorized("this account no longer exists")
        raise QuotaExceeded(detail={"quota_bytes": int(row[1]), "used_bytes": int(row[0]), "requested_bytes": nbytes})


_RELEASE = bindparam("p_release", type_=BigInteger)
_COUNT_DELTA = bindparam("p_count_delta", type_=Integer)
_ADJUST_USER = (
    update(users)
    .where(users.c.id == bindparam("p_user_id"))
    .values(
        storage_used_bytes=case(
            (users.c.storage_used_bytes > _RELEASE, users.c.storage_used_bytes - _RELEASE), else_=0
        ),
        image_count=case((users.c.image_count + _COUNT_DELTA > 0, users.c.image_count + _COUNT_DELTA), else_=0),
    )
)


async def _adjust_user(conn: AsyncConnection, user_id: str, release: int, count_delta: int) -> None:
    await conn.execute(_ADJUST_USER, {"p_user_id": user_id, "p_release": release, "p_count_delta": count_delta})


# --------------------------------------------------------------------------- rows


async def insert_pending(
    conn: AsyncConnection,
    *,
    image_id: str,
    owner_id: str,
    storage_key: str,
    upload_key: str | None,
    filename: str,
    content_type: str,
    size_bytes: int,
    delete_token_hash: str,
    expires_at: datetime,
    width: int | None = None,
    height: int | None = None,
    thumb_key: str | None = None,
    expire_after_seconds: int | None = None,
) -> None:
    await conn.execute(
        _INSERT_IMAGE,
        {
            "id": image_id,
            "owner_id": owner_id,
            "status": PENDING,
            "storage_key": storage_key,
            "upload_key": upload_key,
            "filename": filename,
            "content_type": content_type,
            "size_bytes": size_bytes,
            "width": width,
            "height": height,
            "delete_token_hash": delete_token_hash,
            "created_at": utcnow(),
            "expires_at": expires_at,
            "thumb_key": thumb_key,
            "expire_after_seconds": expire_after_seconds,
        },
    )


_INSERT_IMAGE = insert(images)
_ACTIVATE = (
    update(images)
    .where(images.c.id == bindparam("p_id"), images.c.status == PENDING)
    .values(
        status=ACTIVE,
        size_bytes=bindparam("p_size_bytes"),
        content_type=bindparam("p_content_type"),
        width=bindparam("p_width"),
        height=bindparam("p_height"),
        expires_at=bindparam("p_expires_at"),
        created_at=bindparam("p_created_at"),
        thumb_width=bindparam("p_thumb_width"),
        thumb_height=bindparam("p_thumb_height"),
        animated=bindparam("p_animated"),
        pipeline_version=bindparam("p_pipeline_version"),
    )
    .returning(*_COLS)
)


async def activate(
    conn: AsyncConnection,
    row: ImageRow,
    *,
    size_bytes: int,
    content_type: str,
    width: int,
    height: int,
    thumb: tuple[int, int] | None = None,
    animated: bool = False,
    complete: bool = True,
) -> ImageRow | None:
    """Pending → active, with the real size (the reservation's surplus goes back), the
    thumbnail's size, and whether the pipeline is complete (False: the display size is
    still to be made); an upload that asked for a lifetime expires that long from now.
    The active row (read back by the same statement), or None if the row is no longer
    pending (the sweep took it): the caller must remove its objects."""
    now = utcnow()
    lifetime = row.expire_after_seconds
    res = await conn.execute(
        _ACTIVATE,
        {
            "p_id": row.id,
            "p_size_bytes": size_bytes,
            "p_content_type": content_type,
            "p_width": width,
            "p_height": height,
            "p_expires_at": now + timedelta(seconds=lifetime) if lifetime else None,
            "p_created_at": now,
            "p_thumb_width": thumb[0] if thumb else None,
            "p_thumb_height": thumb[1] if thumb else None,
            "p_animated": animated,
            "p_pipeline_version": PIPELINE_VERSION if complete else 0,
        },
    )
    active = _row(res.first())
    if active is None:
        return None
    await _adjust_user(conn, row.owner_id, row.size_bytes - size_bytes, 1)
    await _add_words(conn, active, now, now + timedelta(seconds=lifetime) if lifetime else None)
    return active


_INSERT_WORDS = insert(image_words)


async def _add_words(conn: AsyncConnection, row: ImageRow, created_at: datetime, expires_at: datetime | None) -> None:
    """The search words of an image that just became active, with its final created_at
    and expires_at (the search sorts and filters on them); they go with its row."""
    words = sorted(filename_words(row.filename))
    if words:
        values = {"image_id": row.id, "owner_id": row.owner_id, "created_at": created_at, "expires_at": expires_at}
        pairs = zip(words, ["", *words[:-1]], strict=True)
        await conn.execute(_INSERT_WORDS, [{**values, "word": w, "prev_word": p} for w, p in pairs])


async def remove(
    conn: AsyncConnection,
    image_id: str,
    *,
    owner_id: str | None = None,
    status: str | None = None,
    orphan_delay: timedelta = timedelta(minutes=5),
    tombstones: bool = True,
) -> ImageRow | None:
    """Delete a row (conditionally: only this owner's, only in this status), give its
    bytes back to the quota and record its objects as tombstones in storage_orphans.
    Returns the row only to the one caller whose DELETE took it."""
    stmt = delete(images).where(images.c.id == image_id)
    if owner_id is not None:
        stmt = stmt.where(images.c.owner_id == owner_id)
    if status is not None:
        stmt = stmt.where(images.c.status == status)
    row = _row((await conn.execute(stmt.returning(*_COLS))).first())
    if row is None:
        return None
    await _adjust_user(conn, row.owner_id, row.size_bytes, -1 if row.status == ACTIVE else 0)
    if tombstones:
        await add_orphans(conn, row.keys, delay=orphan_delay)
    return row


async def remove_for_owner(
    conn: AsyncConnection, owner_id: str, *, orphan_delay: timedelta = timedelta(minutes=5)
) -> list[ImageRow]:
    """Delete every row of an owner (an account being deleted), pending or active, and
    record their objects as tombstones, as `remove` does for one. A pending row's
    objects are tracked until the row would have expired: its upload may still be
    writing them."""
    stmt = delete(images).where(images.c.owner_id == owner_id).returning(*_COLS)
    rows = [_image_row(r) for r in await conn.execute(stmt)]
    now = utcnow()
    for row in rows:
        delay = orphan_delay
        if row.status == PENDING and row.expires_at is not None:
            delay = max(orphan_delay, row.expires_at - now)
        await add_orphans(conn, row.keys, delay=delay)
    if rows:
        await conn.execute(update(users).where(users.c.id == owner_id).values(storage_used_bytes=0, image_count=0))
    return rows


async def get(conn: AsyncConnection, image_id: str) -> ImageRow | None:
    return _row((await conn.execute(select(*_COLS).where(images.c.id == image_id))).first())


def _live() -> ColumnElement[bool]:
    """Active and not past its expiry: what anyone may see."""
    return and_(images.c.status == ACTIVE, or_(images.c.expires_at.is_(None), images.c.expires_at > utcnow()))


async def get_for_owner(conn: AsyncConnection, owner_id: str, image_id: str) -> ImageRow | None:
    """The owner's live image, or None (also for another user's image, or an expired one)."""
    q = select(*_COLS).where(images.c.id == image_id, images.c.owner_id == owner_id, _live())
    return _row((await conn.execute(q)).first())


async def get_upload(conn: AsyncConnection, owner_id: str, upload_key: str) -> ImageRow | None:
    """The owner's presigned upload by its temporary key, pending or already confirmed."""
    q = select(*_COLS).where(images.c.upload_key == upload_key, images.c.owner_id == owner_id)
    return _row((await conn.execute(q)).first())


async def get_pending_upload(conn: AsyncConnection, upload_key: str) -> ImageRow | None:
    q = select(*_COLS).where(images.c.upload_key == upload_key, images.c.status == PENDING)
    return _row((await conn.execute(q)).first())


@dataclass(frozen=True)
class ServedType:
    content_type: str
    expires_at: datetime | None  # the image's expiry: a cache may keep the answer until then


async def served_type(conn: AsyncConnection, key: str) -> ServedType | None:
    """The verified content type of an active image's object, by its key: the original's
    own type, or WebP for one of its derivatives."""
    q = select(images.c.storage_key, images.c.content_type, images.c.expires_at).where(
        _live(),
        or_(images.c.storage_key == key, images.c.thumb_key == key, images.c.display_key == key),
    )
    row = (await conn.execute(q)).first()
    if row is None:
        return None
    return ServedType(str(row[1]) if row[0] == key else DERIVATIVE_TYPE, row[2])


# --------------------------------------------------------------------------- the pipeline's work list


async def set_display(
    conn: AsyncConnection, image_id: str, display_key: str | None, display_size: tuple[int, int] | None = None
) -> bool:
    """The display size an upload's pipeline made after it answered (None: the original
    serves), with its own width and height; the pipeline is then complete. False if the
    image is gone meanwhile."""
    res = await conn.execute(
        update(images)
        .where(images.c.id == image_id, images.c.status == ACTIVE, images.c.pipeline_version < PIPELINE_VERSION)
        .values(
            display_key=display_key,
            display_width=display_size[0] if display_size else None,
            display_height=display_size[1] if display_size else None,
            pipeline_version=PIPELINE_VERSION,
        )
    )
    return res.rowcount == 1


async def pipeline_todo(
    conn: AsyncConnection, limit: int, max_attempts: int, after: ImageRow | None = None
) -> list[ImageRow]:
    """Active images whose pipeline is not complete (stored before it existed, or whose
    display size is still to be made), oldest first after `after`, with attempts left."""
    q = select(*_COLS).where(
        images.c.pipeline_version < PIPELINE_VERSION,
        images.c.status == ACTIVE,
        images.c.pipeline_attempts < max_attempts,
    )
    if after is not None:
        q = q.where(
            or_(
                images.c.created_at > after.created_at,
                and_(images.c.created_at == after.created_at, images.c.id > after.id),
            )
        )
    q = q.order_by(images.c.created_at, images.c.id).limit(limit)
    return [_image_row(r) for r in await conn.execute(q)]


async def claim_pipeline(conn: AsyncConnection, image_id: str) -> int | None:
    """Take an image for one pipeline attempt (several processes may run the backfill):
    the attempt count it had, or None if another process took it or it is done."""
    attempts = (
        await conn.execute(
            select(images.c.pipeline_attempts).where(
                images.c.id == image_id, images.c.pipeline_version < PIPELINE_VERSION, images.c.status == ACTIVE
            )
        )
    ).scalar()
    if attempts is None:
        return None
    res = await conn.execute(
        update(images)
        .where(images.c.id == image_id, images.c.pipeline_attempts == attempts)
        .values(pipeline_attempts=attempts + 1)
    )
    return int(attempts) if res.rowcount == 1 else None


async def finish_pipeline(
    conn: AsyncConnection,
    row: ImageRow,
    *,
    size_bytes: int,
    width: int,
    height: int,
    thumb_key: str | None,
    thumb: tuple[int, int] | None,
    display_key: str | None,
    animated: bool,
    display_size: tuple[int, int] | None = None,
) -> bool:
    """Record what the pipeline made for an active image (its stripped size counts for
    the quota from now on). False if the image is gone meanwhile."""
    res = await conn.execute(
        update(images)
        .where(images.c.id == row.id, images.c.status == ACTIVE)
        .values(
            size_bytes=size_bytes,
            width=width,
            height=height,
            thumb_key=thumb_key,
            thumb_width=thumb[0] if thumb else None,
            thumb_height=thumb[1] if thumb else None,
            display_key=display_key,
            display_width=display_size[0] if display_size else None,
            display_height=display_size[1] if display_size else None,
            animated=animated,
            pipeline_version=PIPELINE_VERSION,
        )
    )
    if res.rowcount != 1:
        return False
    await _adjust_user(conn, row.owner_id, row.size_bytes - size_bytes, 0)
    return True


# --------------------------------------------------------------------------- listing


async def list_for_owner(
    conn: AsyncConnection, owner_id: str, cursor: Cursor | None, limit: int
) -> tuple[list[ImageRow], Cursor | None, int]:
    """The owner's active images, newest first, one page after `cursor` (keyset: the
    cost does not grow with the page number or the number of images), and how many they
    have — in one round trip: the count rides on every row as a scalar subquery of the
    kept counter (a second query only for an empty page)."""
    total_q = select(users.c.image_count).where(users.c.id == owner_id).scalar_subquery()
    q = select(*_COLS, total_q).where(images.c.owner_id == owner_id, _live())
    if cursor is not None:
        q = q.where(cursor.before(images.c.created_at, images.c.id))
    q = q.order_by(images.c.created_at.desc(), images.c.id.desc()).limit(limit + 1)
    result = (await conn.execute(q)).all()
    total = int(result[0][-1] or 0) if result else await count_for_owner(conn, owner_id)
    rows = [_image_row(r[:-1]) for r in result]
    page = rows[:limit]
    nxt = Cursor(page[-1].created_at, page[-1].id) if len(rows) > limit else None
    return page, nxt, total


async def all_live_for_owner(conn: AsyncConnection, owner_id: str) -> list[ImageRow]:
    """Every live image of the owner, oldest first (an export's list: taken once, at its start)."""
    q = select(*_COLS).where(images.c.owner_id == owner_id, _live()).order_by(images.c.created_at, images.c.id)
    return [_image_row(r) for r in await conn.execute(q)]


# --------------------------------------------------------------------------- search and album filter

MAX_WORD = 64
_WORD = re.compile(r"[^\W_]+")
_TOP = "\U0010ffff"  # sorts after every character: [w, w + _TOP) holds the words starting with w


def filename_words(text: str) -> list[str]:
    """The words a filename is found by, and a query is made of: NFKC, case-folded, split
    at anything that is not a letter or digit, each clipped to 64 characters."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return list(dict.fromkeys(w[:MAX_WORD] for w in _WORD.findall(folded)))


def _word_range(col: Any, prefix: str) -> list[Any]:
    """`col` starts with `prefix`: a range an index can scan; the LIKE keeps it exact
    whatever the collation's ordering (words are letters and digits: nothing to escape)."""
    return [col >= prefix, col < prefix + _TOP, col.like(prefix + "%")]


def _has_word(image_id: Any, prefix: str) -> Any:
    """A primary-key probe: the image has a filename word starting with `prefix`."""
    w = image_words.alias("w")
    return select(w.c.image_id).where(w.c.image_id == image_id, *_word_range(w.c.word, prefix)).exists()


def _in_album(image_id: Any, album_id: str) -> Any:
    return (
        select(album_images.c.image_id)
        .where(album_images.c.album_id == album_id, album_images.c.image_id == image_id)
        .exists()
    )


SCAN_DENSITY = 50  # walk the listing newest-first when at least 1 image in this many matches


def _after(created_at: Any, id_col: Any, cursor: Cursor | None) -> list[Any]:
    if cursor is None:
        return []
    return [cursor.before(created_at, id_col)]


async def list_filtered(
    conn: AsyncConnection,
    owner_id: str,
    cursor: Cursor | None,
    limit: int,
    *,
    words: Sequence[str] = (),
    album_id: str | None = None,
) -> tuple[list[ImageRow], Cursor | None, int]:
    """`list_for_owner` narrowed to the images having a filename word starting with each
    of `words`, and/or in one album (the caller checked the album is the owner's), and
    how many match.

    With words, the matches come from image_words alone: the longest word's range of
    (owner_id, word, created_at, image_id, expires_at, prev_word) — likely the rarest
    word — each image once (its first word with the prefix: see the migration), with a
    primary-key probe for every other word and the album. The count is an index-only
    scan without DISTINCT; the page, by the density of matches: when rarer than 1 in SCAN_DENSITY, the
    matching index entries are sorted (no table row is read until the page's own); when
    commoner, the owner's listing index is walked newest first with the same probes and
    stops at the page's end (about limit × SCAN_DENSITY entries at most). So the cost
    follows the matches or the page, not the number of the owner's images."""
    now = utcnow()
    rest = sorted(words, key=len, reverse=True)
    if not rest:
        assert album_id is not None
        conds = [images.c.owner_id == owner_id, _live()]
        conds.append(images.c.id.in_(select(album_images.c.image_id).where(album_images.c.album_id == album_id)))
        total = int((await conn.execute(select(func.count()).select_from(images).where(*conds))).scalar_one())
        q = select(images.c.id).where(*conds, *_after(images.c.created_at, images.c.id, cursor))
        q = q.order_by(images.c.created_at.desc(), images.c.id.desc())
    else:
        driver, others = rest[0], rest[1:]
        w = image_words
        probes = [_has_word(w.c.image_id, o) for o in others]
        if album_id is not None:
            probes.append(_in_album(w.c.image_id, album_id))
        matching = [
            w.c.owner_id == owner_id,
            *_word_range(w.c.word, driver),
            ~w.c.prev_word.like(driver + "%"),  # the image's first word with this prefix: each image once
            or_(w.c.expires_at.is_(None), w.c.expires_at > now),
            *probes,
        ]
        total = int((await conn.execute(select(func.count()).select_from(w).where(*matching))).scalar_one())
        if total == 0:
            return [], None, 0
        if total * SCAN_DENSITY < await count_for_owner(conn, owner_id):
            q = (
                select(w.c.image_id)
                .where(*matching, *_after(w.c.created_at, w.c.image_id, cursor))
                .order_by(w.c.created_at.desc(), w.c.image_id.desc())
            )
        else:
            conds = [images.c.owner_id == owner_id, _live(), *[_has_word(images.c.id, x) for x in rest]]
            if album_id is not None:
                conds.append(_in_album(images.c.id, album_id))
            q = select(images.c.id).where(*conds, *_after(images.c.created_at, images.c.id, cursor))
            q = q.order_by(images.c.created_at.desc(), images.c.id.desc())
    ids = [str(r[0]) for r in await conn.execute(q.limit(limit + 1))]
    found = await get_many(conn, ids)
    rows = [found[i] for i in ids if i in found]
    page = rows[:limit]
    nxt = Cursor(page[-1].created_at, page[-1].id) if len(ids) > limit and page else None
    return page, nxt, total


async def live_owned_ids(conn: AsyncConnection, owner_id: str, image_ids: list[str]) -> set[str]:
    """Which of `image_ids` are the owner's live images."""
    if not image_ids:
        return set()
    q = select(images.c.id).where(images.c.id.in_(image_ids), images.c.owner_id == owner_id, _live())
    return {str(r[0]) for r in await conn.execute(q)}


async def get_many(conn: AsyncConnection, image_ids: list[str]) -> dict[str, ImageRow]:
    """Live images by id (any owner's: the caller decides who may see them)."""
    if not image_ids:
        return {}
    q = select(*_COLS).where(images.c.id.in_(image_ids), _live())
    return {r.id: r for r in (_image_row(x) for x in await conn.execute(q))}


def live() -> ColumnElement[bool]:
    """Active and not past its expiry (for other rooms' queries joining images)."""
    return _live()


async def count_for_owner(conn: AsyncConnection, owner_id: str) -> int:
    return (await conn.execute(select(users.c.image_count).where(users.c.id == owner_id))).scalar() or 0


# --------------------------------------------------------------------------- orphans


async def add_orphans(conn: AsyncConnection, keys: list[str], delay: timedelta = timedelta(0)) -> None:
    now = utcnow()
    for key in keys:
        exists = (
            await conn.execute(select(storage_orphans.c.storage_key).where(storage_orphans.c.storage_key == key))
        ).first()
        if exists is None:
            await conn.execute(
                insert(storage_orphans).values(storage_key=key, created_at=now, attempts=0, next_attempt_at=now + delay)
            )


async def recorded(conn: AsyncConnection, keys: list[str]) -> list[str]:
    """Which of `keys` are recorded in storage_orphans."""
    if not keys:
        return []
    q = select(storage_orphans.c.storage_key).where(storage_orphans.c.storage_key.in_(keys))
    return [str(r[0]) for r in await conn.execute(q)]


async def drop_orphans(conn: AsyncConnection, keys: list[str]) -> None:
    if keys:
        await conn.execute(delete(storage_orphans).where(storage_orphans.c.storage_key.in_(keys)))


async def due_orphans(conn: AsyncConnection, now: datetime, limit: int) -> list[tuple[str, int]]:
    q = (
        select(storage_orphans.c.storage_key, storage_orphans.c.attempts)
        .where(storage_orphans.c.next_attempt_at <= now)
        .order_by(storage_orphans.c.next_attempt_at)
        .limit(limit)
    )
    return [(r[0], r[1]) for r in await conn.execute(q)]


async def claim_orphan(conn: AsyncConnection, key: str, attempts: int, retry_at: datetime) -> bool:
    """Take an orphan for one attempt: only the process whose UPDATE matches the attempt
    count it read acts on it; the next attempt is scheduled in the same statement."""
    res = await conn.execute(
        update(storage_orphans)
        .where(storage_orphans.c.storage_key == key, storage_orphans.c.attempts == attempts)
        .values(attempts=attempts + 1, next_attempt_at=retry_at)
    )
    return res.rowcount == 1


async def expired_active(conn: AsyncConnection, now: datetime, limit: int) -> list[str]:
    """Active images past their expiry (one indexed probe when none is due)."""
    q = (
        select(images.c.id)
        .where(images.c.status == ACTIVE, images.c.expires_at.is_not(None), images.c.expires_at <= now)
        .order_by(images.c.expires_at)
        .limit(limit)
    )
    return [r[0] for r in await conn.execute(q)]


async def expired_pending(conn: AsyncConnection, now: datetime, limit: int) -> list[str]:
    q = (
        select(images.c.id)
        .where(images.c.status == PENDING, images.c.expires_at < now)
        .order_by(images.c.expires_at)
        .limit(limit)
    )
    return [r[0] for r in await conn.execute(q)]
