"""Album use cases: create, list, read, change, delete, add and remove images, the album
JSON, and what the album page may show to whom (visibility and the optional password).

Every lookup a user makes is scoped to them: another user's album, like an unknown one,
is 404, and so is adding an image that is not the caller's live image — all-or-nothing,
so a refused request adds nothing."""

from __future__ import annotations

import hashlib
import hmac
import unicodedata
from dataclasses import dataclass
from typing import Any

from ..accounts import throttle
from ..accounts.passwords import hash_password, verify_password
from ..accounts.store import User
from ..db import Cursor, json_time, new_id, transaction, utcnow
from ..env import Env
from ..errors import NotFound, TooManyRequests, Unprocessable
from ..images import store as images_store
from ..images.store import DERIVATIVE_TYPE, ImageRow
from . import store
from .store import VISIBILITIES, AlbumRow

MAX_TITLE, MAX_DESCRIPTION, MAX_PASSWORD = 200, 2000, 1024
MAX_IMAGES_PER_CALL = 500
FIELDS = {"title", "description", "visibility", "password", "cover_image_id"}


def _invalid(field: str, message: str) -> Unprocessable:
    return Unprocessable(message, {"field": field})


def _text(data: dict[str, Any], field: str, limit: int, *, required: bool) -> str:
    value = data.get(field)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise _invalid(field, f"{field} must be a string")
    value = unicodedata.normalize("NFC", value).strip()
    if any(unicodedata.category(ch) == "Cc" and ch not in "\n\t" for ch in value):
        raise _invalid(field, f"{field} must not contain control characters")
    if required and not value:
        raise _invalid(field, f"{field} must not be empty")
    if len(value) > limit:
        raise _invalid(field, f"{field} is at most {limit} characters")
    if field == "title" and "\n" in value:
        raise _invalid(field, "title is one line")
    return value


def _visibility(data: dict[str, Any]) -> str:
    value = data.get("visibility", "private")
    if value not in VISIBILITIES:
        raise _invalid("visibility", "visibility is one of " + ", ".join(VISIBILITIES))
    return str(value)


def _unknown_fields(data: dict[str, Any], allowed: set[str]) -> None:
    extra = sorted(set(data) - allowed)
    if extra:
        raise _invalid(extra[0], f"unknown field: {extra[0]}")


# --------------------------------------------------------------------------- the album JSON


@dataclass(frozen=True)
class AlbumView:
    album: AlbumRow
    cover: ImageRow | None
    cover_display: tuple[int, int] | None = None  # the cover's display size's own dimensions, when known


def display_of(view: AlbumView) -> tuple[str, int | None, int | None, str] | None:
    """The cover's display size: the object key, width, height and type; the original
    when there is none or its dimensions are unknown (as the share page does)."""
    row = view.cover
    if row is None:
        return None
    if row.display_key is not None and view.cover_display is not None:
        return row.display_key, view.cover_display[0], view.cover_display[1], DERIVATIVE_TYPE
    return row.storage_key, row.width, row.height, row.content_type


def album_json(env: Env, view: AlbumView) -> dict[str, Any]:
    a, cover = view.album, view.cover
    public = env.storage.public_url
    return {
        "id": a.id,
        "title": a.title,
        "description": a.description,
        "visibility": a.visibility,
        "has_password": a.password_hash is not None,
        "image_count": a.image_count,
        "cover_image_id": cover.id if cover else None,
        "cover": (public(cover.thumb_key) if cover.thumb_key else public(cover.storage_key)) if cover else None,
        "page_url": env.url("album_page", id=a.id),
        "created_at": json_time(a.created_at),
        "updated_at": json_time(a.updated_at),
    }


async def _views(conn: Any, rows: list[AlbumRow]) -> list[AlbumView]:
    ids = [r.cover_id for r in rows if r.cover_id]
    covers = await images_store.get_many(conn, ids)
    sizes = await store.display_sizes(conn, ids)
    return [
        AlbumView(r, covers.get(r.cover_id), sizes.get(r.cover_id)) if r.cover_id else AlbumView(r, None) for r in rows
    ]


async def _owned(conn: Any, owner_id: str, album_id: str) -> AlbumRow:
    row = await store.get_for_owner(conn, owner_id, album_id)
    if row is None:
        raise NotFound("album not found")
    return row


# --------------------------------------------------------------------------- use cases


async def create(env: Env, owner_id: str, data: dict[str, Any]) -> AlbumView:
    _unknown_fields(data, {"title", "description", "visibility"})
    title = _text(data, "title", MAX_TITLE, required=True)
    description = _text(data, "description", MAX_DESCRIPTION, required=False)
    visibility = _visibility(data)
    album_id = new_id()
    async with transaction(env.engine) as conn:
        await store.insert_album(
            conn, album_id=album_id, owner_id=owner_id, title=title, description=description, visibility=visibility
        )
        row = await _owned(conn, owner_id, album_id)
    return AlbumView(row, None)


async def listing(
    env: Env, owner_id: str, raw_cursor: str | None, limit: int
) -> tuple[list[AlbumView], Cursor | None, int]:
    cursor = Cursor.decode(raw_cursor) if raw_cursor else None
    async with env.engine.connect() as conn:
        rows, nxt, total = await store.list_for_owner(conn, owner_id, cursor, limit)
        return await _views(conn, rows), nxt, total


async def owned(env: Env, owner_id: str, album_id: str) -> AlbumView:
    """The owner's album, or 404 (for another user's album too)."""
    async with env.engine.connect() as conn:
        return (await _views(conn, [await _owned(conn, owner_id, album_id)]))[0]


async def update(env: Env, owner_id: str, album_id: str, data: dict[str, Any]) -> AlbumView:
    """Change any of title, description, visibility, password (a string sets it, null
    removes it) and cover_image_id (an image in the album, or null for the newest). Every
    field is checked before anything is written."""
    _unknown_fields(data, FIELDS)
    values: dict[str, Any] = {}
    if "title" in data:
        values["title"] = _text(data, "title", MAX_TITLE, required=True)
    if "description" in data:
        values["description"] = _text(data, "description", MAX_DESCRIPTION, required=False)
    if "visibility" in data:
        values["visibility"] = _visibility(data)
    password = data.get("password")
    if password is not None and (not isinstance(password, str) or not password or len(password) > MAX_PASSWORD):
        raise _invalid("password", f"password is a string of 1 to {MAX_PASSWORD} characters, or null")
    cover = data.get("cover_image_id")
    if "cover_image_id" in data and cover is not None and not isinstance(cover, str):
        raise _invalid("cover_image_id", "cover_image_id is an image id or null")
    async with env.engine.connect() as conn:
        await _owned(conn, owner_id, album_id)  # 404 before the cost of a hash
    if "password" in data:
        values["password_hash"] = await hash_password(password, env.settings.bcrypt_rounds) if password else None
    async with transaction(env.engine) as conn:
        await _owned(conn, owner_id, album_id)
        if isinstance(cover, str) and not await _cover_allowed(conn, owner_id, album_id, cover):
            raise NotFound("image not found in this album", {"field": "cover_image_id"})
        if "cover_image_id" in data:
            values["cover_image_id"] = cover
        await store.update_album(conn, owner_id, album_id, values)
        row = await _owned(conn, owner_id, album_id)
        return (await _views(conn, [row]))[0]


async def _cover_allowed(conn: Any, owner_id: str, album_id: str, image_id: str) -> bool:
    return await store.is_member(conn, album_id, image_id) and bool(
        await images_store.live_owned_ids(conn, owner_id, [image_id])
    )


async def delete(env: Env, owner_id: str, album_id: str) -> None:
    """The album goes; its images stay."""
    async with transaction(env.engine) as conn:
        if not await store.delete_album(conn, owner_id, album_id):
            raise NotFound("album not found")


def _image_ids(raw: Any) -> list[str]:
    if (
        not isinstance(raw, list)
        or not raw
        or len(raw) > MAX_IMAGES_PER_CALL
        or not all(isinstance(i, str) and 0 < len(i) <= 32 for i in raw)
    ):
        raise _invalid("image_ids", f"image_ids is a list of 1 to {MAX_IMAGES_PER_CALL} image ids")
    return list(dict.fromkeys(raw))


async def add_images(env: Env, owner_id: str, album_id: str, data: dict[str, Any]) -> AlbumView:
    """Add the caller's images (idempotent). All or nothing: if any id is not the caller's
    live image, 404 and nothing is added."""
    _unknown_fields(data, {"image_ids"})
    ids = _image_ids(data.get("image_ids"))
    async with transaction(env.engine) as conn:
        await _owned(conn, owner_id, album_id)
        found = await images_store.live_owned_ids(conn, owner_id, ids)
        missing = [i for i in ids if i not in found]
        if missing:
            raise NotFound("image not found", {"image_ids": missing[:20]})
        if await store.add_images(conn, album_id, ids):
            await store.touch(conn, album_id)
        row = await _owned(conn, owner_id, album_id)
        return (await _views(conn, [row]))[0]


async def remove_image(env: Env, owner_id: str, album_id: str, image_id: str) -> None:
    async with transaction(env.engine) as conn:
        await _owned(conn, owner_id, album_id)
        if not await store.remove_image(conn, album_id, image_id):
            raise NotFound("image not in this album")
        await store.touch(conn, album_id)


async def images_for_download(env: Env, owner_id: str, album_id: str) -> tuple[AlbumView, list[ImageRow]]:
    """The owner's album and its live images, oldest first (for `GET /api/albums/{id}/download`
    with the export's streaming ZIP); 404 for anyone else's album."""
    async with env.engine.connect() as conn:
        row = await _owned(conn, owner_id, album_id)
        return (await _views(conn, [row]))[0], await store.live_images(conn, album_id)


# --------------------------------------------------------------------------- the album page


@dataclass(frozen=True)
class Shown:
    view: AlbumView
    owner: User
    is_owner: bool


async def for_page(env: Env, album_id: str, viewer_id: str | None) -> Shown:
    """The album as its page shows it: unlisted and public albums to anyone with the link,
    a private one to its owner only (404 to everyone else, as an unknown album)."""
    async with env.engine.connect() as conn:
        found = await store.get_with_owner(conn, album_id)
        if found is None:
            raise NotFound("album not found")
        row, owner = found
        is_owner = viewer_id == row.owner_id
        if row.visibility == "private" and not is_owner:
            raise NotFound("album not found")
        return Shown((await _views(conn, [row]))[0], owner, is_owner)


def unlock_mark(album: AlbumRow) -> str:
    """What a visitor's session keeps once they gave the album's password: tied to the
    current hash, so changing or removing the password forgets every earlier answer."""
    digest = hmac.new(b"imagehost-album-unlock-v1", (album.password_hash or "").encode(), hashlib.sha256)
    return digest.hexdigest()[:24]


async def check_password(env: Env, album: AlbumRow, given: object, addr: str) -> bool:
    """Whether `given` is the album's password. Throttled as sign-in is (the same table
    and limits, per album and per client address: 429 before bcrypt when exceeded); a
    wrong answer is recorded, a right one clears nothing (it must not reset a guesser's
    budget)."""
    subject, where = f"album:{album.id}", f"album:{addr}"
    now = utcnow()
    async with env.engine.connect() as conn:
        wait = await throttle.retry_after(conn, subject, where, now)
    if wait:
        raise TooManyRequests(wait, "too many wrong passwords; try again later")
    ok = (
        isinstance(given, str)
        and 0 < len(given) <= MAX_PASSWORD
        and album.password_hash is not None
        and await verify_password(given, album.password_hash)
    )
    if not ok:
        async with transaction(env.engine) as conn:
            await throttle.record_failure(conn, subject, where, now)
    return ok
