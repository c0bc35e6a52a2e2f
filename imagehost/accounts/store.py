"""Account queries: users, API keys and revoked browser sessions. Plain async functions
taking a connection; the caller owns the transaction.

API keys are `ih_` + 43 URL-safe random characters (256 bits), stored as SHA-256: a fast
hash is right here, since the secret has full entropy, and every API request looks the
key up by its hash in one indexed query.

Browser sessions are an encrypted cookie holding the user id, a random session id and
the CSRF token. The cookie is the whole session, so logout records the session id as
revoked (until the cookie could have expired anyway): a copy of the cookie taken before
logout then identifies no one.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..db import json_time, new_id, sha256_hex, utcnow
from ..tables import api_keys, users
from ..tables import revoked_sessions as rs
from . import keycache

# --------------------------------------------------------------------------- users


@dataclass(frozen=True)
class User:
    id: str
    username: str
    email: str
    created_at: datetime
    storage_used_bytes: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "username": self.username,
            "email": self.email,
            "created_at": json_time(self.created_at),
        }


USER_COLUMNS = (users.c.id, users.c.username, users.c.email, users.c.created_at, users.c.storage_used_bytes)


def user_from_row(row: Any) -> User | None:
    return User(*row) if row is not None else None


def username_key(username: str) -> str:
    return username.lower()


def email_key(email: str) -> str:
    return email.lower()


async def get_user(conn: AsyncConnection, user_id: str) -> User | None:
    row = (await conn.execute(select(*USER_COLUMNS).where(users.c.id == user_id))).first()
    return user_from_row(row)


async def get_login(conn: AsyncConnection, username: str) -> tuple[User, str] | None:
    """The user and their password hash, by username ignoring case."""
    row = (
        await conn.execute(
            select(*USER_COLUMNS, users.c.password_hash).where(users.c.username_key == username_key(username))
        )
    ).first()
    if row is None:
        return None
    return User(*row[:5]), row[5]


async def insert_user(conn: AsyncConnection, username: str, email: str, password_hash: str) -> User:
    """Insert; the unique indexes on the *_key columns raise IntegrityError on a duplicate."""
    user = User(id=new_id(), username=username, email=email, created_at=utcnow())
    await conn.execute(
        users.insert().values(
            id=user.id,
            username=username,
            username_key=username_key(username),
            email=email,
            email_key=email_key(email),
            password_hash=password_hash,
            storage_used_bytes=0,
            created_at=user.created_at,
        )
    )
    return user


async def taken_fields(conn: AsyncConnection, username: str, email: str) -> list[str]:
    """Which of username / email already belong to someone (ignoring case)."""
    taken = []
    if (await conn.execute(select(func.count()).where(users.c.username_key == username_key(username)))).scalar():
        taken.append("username")
    if (await conn.execute(select(func.count()).where(users.c.email_key == email_key(email)))).scalar():
        taken.append("email")
    return taken


# --------------------------------------------------------------------------- API keys


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

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "prefix": self.prefix,
            "created_at": json_time(self.created_at),
            "last_used_at": json_time(self.last_used_at) if self.last_used_at else None,
        }


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
            key_hash=sha256_hex(secret),
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
    keycache.clear()  # this process forgets it now (the caller clears again after its commit)
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
            .where(api_keys.c.key_hash == sha256_hex(secret), api_keys.c.revoked_at.is_(None))
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


# --------------------------------------------------------------------------- sessions


async def session_user(conn: AsyncConnection, user_id: str, sid: str) -> User | None:
    """The session's user, unless the user is gone or the session was logged out."""
    row = (
        await conn.execute(select(*USER_COLUMNS).where(users.c.id == user_id, ~exists().where(rs.c.sid == sid)))
    ).first()
    return user_from_row(row)


async def revoke(conn: AsyncConnection, sid: str, expires_at: datetime, now: datetime) -> None:
    if not (await conn.execute(select(rs.c.sid).where(rs.c.sid == sid))).first():
        await conn.execute(rs.insert().values(sid=sid, expires_at=expires_at))
    await conn.execute(delete(rs).where(rs.c.expires_at < now))  # prune: those cookies are dead anyway
