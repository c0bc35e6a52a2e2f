"""Sharing queries: a user's embed settings and default expiry (columns of `users`), and
an image with what its share page shows of its owner. Plain async functions taking a
connection; the caller owns the transaction."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..images.store import ACTIVE, ImageRow
from ..images.store import COLUMNS as IMAGE_COLUMNS
from ..tables import images, users


@dataclass(frozen=True)
class Preferences:
    """A user's embed settings (None: the server's default) and default expiry (None: none)."""

    embed_title: str | None = None
    embed_description: str | None = None
    embed_site_name: str | None = None
    embed_color: str | None = None
    default_expiry_seconds: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


PREFERENCE_FIELDS = tuple(f.name for f in fields(Preferences))
_PREF_COLUMNS = tuple(users.c[name] for name in PREFERENCE_FIELDS)


@dataclass(frozen=True)
class Shared:
    """An active image, its owner's display name and embed settings, and the display
    size's own dimensions (None when unknown)."""

    image: ImageRow
    username: str
    prefs: Preferences
    display_size: tuple[int, int] | None


async def get_preferences(conn: AsyncConnection, user_id: str) -> Preferences | None:
    row = (await conn.execute(select(*_PREF_COLUMNS).where(users.c.id == user_id))).first()
    return Preferences(*row) if row is not None else None


async def set_preferences(conn: AsyncConnection, user_id: str, values: dict[str, Any]) -> None:
    if values:
        await conn.execute(update(users).where(users.c.id == user_id).values(**values))


async def get_shared(conn: AsyncConnection, image_id: str) -> Shared | None:
    """The active image with this id and its owner's name and settings (expiry is the
    caller's to check: it depends on the clock)."""
    row = (
        await conn.execute(
            select(*IMAGE_COLUMNS, users.c.username, images.c.display_width, images.c.display_height, *_PREF_COLUMNS)
            .join(users, users.c.id == images.c.owner_id)
            .where(images.c.id == image_id, images.c.status == ACTIVE)
        )
    ).first()
    if row is None:
        return None
    n = len(IMAGE_COLUMNS)
    image = ImageRow(*row[:n])
    username, dw, dh = row[n], row[n + 1], row[n + 2]
    display = (dw, dh) if image.display_key and dw and dh else None
    return Shared(image, username, Preferences(*row[n + 3 :]), display)
