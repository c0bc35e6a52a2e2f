"""Album queries. Plain async functions taking a connection; the caller owns the
transaction. Owner scoping lives in the queries (`owner_id` is part of every lookup a
user makes), so a handler cannot forget it; the album page reads an album by id alone
and decides itself what its visibility allows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from ..accounts.store import User
from ..db import Cursor, utcnow
from ..images import store as images_store
from ..images.store import ImageRow
from ..tables import album_images, albums, images, users

VISIBILITIES = ("private", "unlisted", "public")


@dataclass(frozen=True)
class AlbumRow:
    id: str
    owner_id: str
    title: str
    description: str
    visibility: str
    password_hash: str | None
    cover_image_id: str | None  # as chosen (it may be gone: see `cover_id`)
    created_at: datetime
    updated_at: datetime
    image_count: int = 0  # live images in the album
    cover_id: str | None = None  # the cover shown: the chosen one while it is in the album, else the newest


_COLS = (
    albums.c.id,
    albums.c.owner_id,
    albums.c.title,
    albums.c.description,
    albums.c.visibility,
    albums.c.password_hash,
    albums.c.cover_image_id,
    albums.c.created_at,
    albums.c.updated_at,
)


def _members() -> Any:
    return album_images.join(images, images.c.id == album_images.c.image_id)


def _derived() -> tuple[Any, Any]:
    """Correlated subqueries: the album's live image count and the cover shown."""
    count = (
        select(func.count())
        .select_from(_members())
        .where(album_images.c.album_id == albums.c.id, images_store.live())
        .scalar_subquery()
    )
    newest = (
        select(images.c.id)
        .select_from(_members())
        .where(album_images.c.album_id == albums.c.id, images_store.live())
        .order_by(images.c.created_at.desc(), images.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    chosen = (
        select(images.c.id)
        .select_from(_members())
        .where(
            album_images.c.album_id == albums.c.id,
            images.c.id == albums.c.cover_image_id,
            images_store.live(),
        )
        .scalar_subquery()
    )
    return count, func.coalesce(chosen, newest)


def _select() -> Any:
    count, cover = _derived()
    return select(*_COLS, count, cover)


def _album(r: Any) -> AlbumRow:
    return AlbumRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], int(r[9] or 0), r[10])


# --------------------------------------------------------------------------- albums


async def insert_album(
    conn: AsyncConnection, *, album_id: str, owner_id: str, title: str, description: str, visibility: str
) -> None:
    now = utcnow()
    await conn.execute(
        insert(albums).values(
            id=album_id,
            owner_id=owner_id,
            title=title,
            description=description,
            visibility=visibility,
            password_hash=None,
            cover_image_id=None,
            created_at=now,
            updated_at=now,
        )
    )


async def get_for_owner(conn: AsyncConnection, owner_id: str, album_id: str) -> AlbumRow | None:
    r = (await conn.execute(_select().where(albums.c.id == album_id, albums.c.owner_id == owner_id))).first()
    return _album(r) if r is not None else None


async def get_with_owner(conn: AsyncConnection, album_id: str) -> tuple[AlbumRow, User] | None:
    """Any album by id, with its owner (for the album page)."""
    q = (
        _select()
        .add_columns(users.c.id, users.c.username, users.c.email, users.c.created_at)
        .join(users, users.c.id == albums.c.owner_id)
        .where(albums.c.id == album_id)
    )
    r = (await conn.execute(q)).first()
    if r is None:
        return None
    return _album(r[:11]), User(r[11], r[12], r[13], r[14])


async def update_album(conn: AsyncConnection, owner_id: str, album_id: str, values: dict[str, Any]) -> bool:
    res = await conn.execute(
        update(albums)
        .where(albums.c.id == album_id, albums.c.owner_id == owner_id)
        .values(**values, updated_at=utcnow())
    )
    return res.rowcount == 1


async def touch(conn: AsyncConnection, album_id: str) -> None:
    await conn.execute(update(albums).where(albums.c.id == album_id).values(updated_at=utcnow()))


async def delete_album(conn: AsyncConnection, owner_id: str, album_id: str) -> bool:
    """The album and its membership rows (never its images)."""
    found = (
        await conn.execute(select(albums.c.id).where(albums.c.id == album_id, albums.c.owner_id == owner_id))
    ).first()
    if found is None:
        return False
    await conn.execute(delete(album_images).where(album_images.c.album_id == album_id))
    await conn.execute(delete(albums).where(albums.c.id == album_id))
    return True


async def list_for_owner(
    conn: AsyncConnection, owner_id: str, cursor: Cursor | None, limit: int
) -> tuple[list[AlbumRow], Cursor | None, int]:
    """The owner's albums, newest first, keyset-paginated (index ix_albums_owner_listing)."""
    q = _select().where(albums.c.owner_id == owner_id)
    if cursor is not None:
        q = q.where(cursor.before(albums.c.created_at, albums.c.id))
    q = q.order_by(albums.c.created_at.desc(), albums.c.id.desc()).limit(limit + 1)
    rows = [_album(r) for r in await conn.execute(q)]
    total = (
        await conn.execute(select(func.count()).select_from(albums).where(albums.c.owner_id == owner_id))
    ).scalar_one()
    page = rows[:limit]
    nxt = Cursor(page[-1].created_at, page[-1].id) if len(rows) > limit else None
    return page, nxt, int(total)


# --------------------------------------------------------------------------- membership


async def add_images(conn: AsyncConnection, album_id: str, image_ids: list[str]) -> int:
    """Add the images not in the album yet (idempotent, also against a concurrent add of
    the same image: ON CONFLICT DO NOTHING, which both databases speak); how many were
    added."""
    present = {
        str(r[0])
        for r in await conn.execute(
            select(album_images.c.image_id).where(
                album_images.c.album_id == album_id, album_images.c.image_id.in_(image_ids)
            )
        )
    }
    new = [i for i in dict.fromkeys(image_ids) if i not in present]
    if new:
        now = utcnow()
        dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
        stmt = dialect_insert(album_images).on_conflict_do_nothing(index_elements=["album_id", "image_id"])
        await conn.execute(stmt, [{"album_id": album_id, "image_id": i, "added_at": now} for i in new])
    return len(new)


async def remove_image(conn: AsyncConnection, album_id: str, image_id: str) -> bool:
    res = await conn.execute(
        delete(album_images).where(album_images.c.album_id == album_id, album_images.c.image_id == image_id)
    )
    return res.rowcount == 1


async def is_member(conn: AsyncConnection, album_id: str, image_id: str) -> bool:
    q = select(album_images.c.image_id).where(album_images.c.album_id == album_id, album_images.c.image_id == image_id)
    return (await conn.execute(q)).first() is not None


async def display_sizes(conn: AsyncConnection, image_ids: list[str]) -> dict[str, tuple[int, int]]:
    """The display size's own dimensions of these images, where the pipeline recorded them."""
    if not image_ids:
        return {}
    q = select(images.c.id, images.c.display_width, images.c.display_height).where(images.c.id.in_(image_ids))
    return {str(r[0]): (int(r[1]), int(r[2])) for r in await conn.execute(q) if r[1] and r[2]}


async def live_images(conn: AsyncConnection, album_id: str) -> list[ImageRow]:
    """Every live image of the album, oldest first (an album download's list)."""
    q = (
        select(*images_store.COLUMNS)
        .select_from(_members())
        .where(album_images.c.album_id == album_id, images_store.live())
        .order_by(images.c.created_at, images.c.id)
    )
    n = len(images_store.COLUMNS)
    return [ImageRow(*r[:n]) for r in await conn.execute(q)]
