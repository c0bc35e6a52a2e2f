"""Per-user API keys: `ih_` + 43 URL-safe random characters (256 bits), stored as SHA-256.

A fast hash is right here: the secret has full entropy, so there is nothing to brute-force,
and every API request looks the key up by its hash in one indexed query.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..db import new_id, utcnow
from ..tables import api_keys, users
from .users import USER_COLUMNS, User

PREFIX = "ih_"
KEY_RE = re.compile(r"^ih_[A-Za-z0-9_-]{32,128}$")
LAST_USED_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "prefix": self.prefix,
            "created_at": self.created_at.isoformat() + "Z",
            "last_used_at": self.last_used_at.isoformat() + "Z" if self.last_used_at else None,
        }


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def looks_like_key(credential: str) -> bool:
    return credential.startswith(PREFIX)


async def create_key(conn: AsyncConnection, user_id: str, name: str) -> tuple[ApiKey, str]:
    secret = PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(id=new_id(), name=name, prefix=secret[:11], created_at=utcnow(), last_used_at=None)
    await conn.execute(
        api_keys.insert().values(
            id=key.id,
            user_id=user_id,
            name=name,
            prefix=key.prefix,
            key_hash=hash_key(secret),
            created_at=key.created_at,
        )
    )
    return key, secret


async def list_keys(conn: AsyncConnection, user_id: str) -> list[ApiKey]:
    rows = await conn.execute(
        select(api_keys.c.id, api_keys.c.name, api_keys.c.prefix, api_keys.c.created_at, api_keys.c.last_used_at)
        .where(api_keys.c.user_id == user_id, api_keys.c.revoked_at.is_(None))
        .order_by(api_keys.c.created_at.desc(), api_keys.c.id)
    )
    return [ApiKey(*r) for r in rows]


ID_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")


async def revoke_key(conn: AsyncConnection, user_id: str, key_id: str) -> bool:
    """Owner-scoped: another user's key id revokes nothing and answers False (so does an id
    that cannot be one, before it reaches the database)."""
    if not ID_RE.fullmatch(key_id):
        return False
    res = await conn.execute(
        update(api_keys)
        .where(api_keys.c.id == key_id, api_keys.c.user_id == user_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return res.rowcount == 1


async def authenticate_key(conn: AsyncConnection, secret: str) -> tuple[User, str, bool] | None:
    """The key's owner, the key id, and whether its last_used_at is due for a touch (at
    most once a minute); None for an unknown, malformed or revoked key. Reads only, so
    a request authenticated by a key takes no write lock."""
    if not KEY_RE.fullmatch(secret):
        return None
    row = (
        await conn.execute(
            select(*USER_COLUMNS, api_keys.c.id, api_keys.c.last_used_at)
            .join(users, users.c.id == api_keys.c.user_id)
            .where(api_keys.c.key_hash == hash_key(secret), api_keys.c.revoked_at.is_(None))
        )
    ).first()
    if row is None:
        return None
    *user, key_id, last_used = row
    due = last_used is None or utcnow() - last_used >= LAST_USED_EVERY
    return User(*user), key_id, due


async def touch_key(conn: AsyncConnection, key_id: str) -> None:
    """Record a use; a no-op if another request recorded one in the last minute."""
    now = utcnow()
    await conn.execute(
        update(api_keys)
        .where(
            api_keys.c.id == key_id,
            or_(api_keys.c.last_used_at.is_(None), api_keys.c.last_used_at <= now - LAST_USED_EVERY),
        )
        .values(last_used_at=now)
    )
