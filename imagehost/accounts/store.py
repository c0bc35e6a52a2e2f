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
from ..tables import api_keys, invites, password_resets, users
from ..tables import revoked_sessions as rs

# --------------------------------------------------------------------------- users


ADMIN, USER = "admin", "user"
ROLES = (ADMIN, USER)


@dataclass(frozen=True)
class User:
    id: str
    username: str
    email: str
    created_at: datetime
    storage_used_bytes: int = 0
    role: str = USER
    disabled: bool = False
    auth_version: int = 1  # sessions and JWTs issued with another version identify no one
    quota_bytes: int | None = None  # None: DEFAULT_USER_QUOTA_MB; 0: unlimited
    totp_enabled: bool = False

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN

    def quota(self, default_bytes: int) -> int:
        """The quota that applies to this account in bytes (0 = unlimited)."""
        return default_bytes if self.quota_bytes is None else self.quota_bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "username": self.username,
            "email": self.email,
            "created_at": json_time(self.created_at),
        }


USER_COLUMNS = (
    users.c.id,
    users.c.username,
    users.c.email,
    users.c.created_at,
    users.c.storage_used_bytes,
    users.c.role,
    users.c.disabled_at,
    users.c.auth_version,
    users.c.quota_bytes,
    users.c.totp_enabled_at,
)
_NCOLS = len(USER_COLUMNS)


def user_from_row(row: Any) -> User | None:
    if row is None:
        return None
    uid, name, email, created, used, role, disabled_at, version, quota, totp_at = row[:_NCOLS]
    return User(
        id=uid,
        username=name,
        email=email,
        created_at=created,
        storage_used_bytes=int(used or 0),
        role=role,
        disabled=disabled_at is not None,
        auth_version=int(version),
        quota_bytes=None if quota is None else int(quota),
        totp_enabled=totp_at is not None,
    )


def _user(row: Any) -> User:
    user = user_from_row(row)
    assert user is not None
    return user


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
    return _user(row), row[_NCOLS]


async def insert_user(conn: AsyncConnection, username: str, email: str, password_hash: str, role: str = USER) -> User:
    """Insert; the unique indexes on the *_key columns raise IntegrityError on a duplicate."""
    user = User(id=new_id(), username=username, email=email, created_at=utcnow(), role=role)
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
            role=role,
            auth_version=1,
        )
    )
    return user


async def has_users(conn: AsyncConnection) -> bool:
    return (await conn.execute(select(users.c.id).limit(1))).first() is not None


async def bump_auth_version(conn: AsyncConnection, user_id: str) -> bool:
    """End every session and JWT of this user at their next request (API keys stay)."""
    res = await conn.execute(update(users).where(users.c.id == user_id).values(auth_version=users.c.auth_version + 1))
    return res.rowcount == 1


async def set_disabled(conn: AsyncConnection, user_id: str, disabled: bool) -> bool:
    res = await conn.execute(
        update(users).where(users.c.id == user_id).values(disabled_at=utcnow() if disabled else None)
    )
    return res.rowcount == 1


async def set_quota(conn: AsyncConnection, user_id: str, quota_bytes: int | None) -> bool:
    res = await conn.execute(update(users).where(users.c.id == user_id).values(quota_bytes=quota_bytes))
    return res.rowcount == 1


async def delete_user(conn: AsyncConnection, user_id: str) -> None:
    """The account row; its keys, reset links and recovery codes go with it (ON DELETE
    CASCADE). Its images must be removed first, with their tombstones."""
    await conn.execute(delete(api_keys).where(api_keys.c.user_id == user_id))
    await conn.execute(delete(users).where(users.c.id == user_id))


async def touch_login(conn: AsyncConnection, user_id: str) -> None:
    await conn.execute(update(users).where(users.c.id == user_id).values(last_login_at=utcnow()))


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
    key_id, last_used = row[_NCOLS], row[_NCOLS + 1]
    due = last_used is None or utcnow() - last_used >= LAST_USED_EVERY
    return _user(row), key_id, due


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
    """The session's user, unless the user is gone or the session was logged out (the
    caller compares the session's auth version and checks `disabled`)."""
    row = (
        await conn.execute(select(*USER_COLUMNS).where(users.c.id == user_id, ~exists().where(rs.c.sid == sid)))
    ).first()
    return user_from_row(row)


async def revoke(conn: AsyncConnection, sid: str, expires_at: datetime, now: datetime) -> None:
    if not (await conn.execute(select(rs.c.sid).where(rs.c.sid == sid))).first():
        await conn.execute(rs.insert().values(sid=sid, expires_at=expires_at))
    await conn.execute(delete(rs).where(rs.c.expires_at < now))  # prune: those cookies are dead anyway


# --------------------------------------------------------------------------- roles and passwords


async def lock_admins(conn: AsyncConnection) -> list[str]:
    """The ids of the enabled admins, their rows locked until the transaction ends
    (PostgreSQL; SQLite's writers are serialised anyway), so two admins demoting each
    other at once cannot leave the instance without one."""
    q = select(users.c.id).where(users.c.role == ADMIN, users.c.disabled_at.is_(None)).with_for_update()
    return [str(r[0]) for r in await conn.execute(q)]


async def set_role(conn: AsyncConnection, user_id: str, role: str) -> bool:
    res = await conn.execute(update(users).where(users.c.id == user_id).values(role=role))
    return res.rowcount == 1


async def set_password_hash(conn: AsyncConnection, user_id: str, password_hash: str) -> bool:
    """A new password; every session and JWT of the user ends (the version moves on)."""
    res = await conn.execute(
        update(users)
        .where(users.c.id == user_id)
        .values(password_hash=password_hash, auth_version=users.c.auth_version + 1)
    )
    return res.rowcount == 1


async def get_user_by_name(conn: AsyncConnection, username: str) -> User | None:
    row = (await conn.execute(select(*USER_COLUMNS).where(users.c.username_key == username_key(username)))).first()
    return user_from_row(row)


# --------------------------------------------------------------------------- invitation links


@dataclass(frozen=True)
class Invite:
    id: str
    created_by: str | None
    created_by_name: str | None
    created_at: datetime
    expires_at: datetime
    max_uses: int
    uses: int
    revoked_at: datetime | None

    def state(self, now: datetime) -> str:
        """active | revoked | expired | used_up"""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at <= now:
            return "expired"
        if self.uses >= self.max_uses:
            return "used_up"
        return "active"

    def to_json(self, now: datetime) -> dict[str, Any]:
        return {
            "id": self.id,
            "created_by": self.created_by_name,
            "created_at": json_time(self.created_at),
            "expires_at": json_time(self.expires_at),
            "max_uses": self.max_uses,
            "uses": self.uses,
            "revoked_at": json_time(self.revoked_at) if self.revoked_at else None,
            "state": self.state(now),
        }


_INVITE_COLS = (
    invites.c.id,
    invites.c.created_by,
    users.c.username,
    invites.c.created_at,
    invites.c.expires_at,
    invites.c.max_uses,
    invites.c.uses,
    invites.c.revoked_at,
)


def _invites_from() -> Any:
    return invites.outerjoin(users, users.c.id == invites.c.created_by)


async def create_invite(
    conn: AsyncConnection, created_by: str | None, expires_at: datetime, max_uses: int
) -> tuple[str, str]:
    """A new invitation: its id and its token (only the token's hash is kept)."""
    token = secrets.token_urlsafe(24)
    invite_id = new_id()
    await conn.execute(
        invites.insert().values(
            id=invite_id,
            token_hash=sha256_hex(token),
            created_by=created_by,
            created_at=utcnow(),
            expires_at=expires_at,
            max_uses=max_uses,
            uses=0,
        )
    )
    return invite_id, token


async def get_invite(conn: AsyncConnection, invite_id: str) -> Invite | None:
    if not ID_RE.fullmatch(invite_id):
        return None
    row = (
        await conn.execute(select(*_INVITE_COLS).select_from(_invites_from()).where(invites.c.id == invite_id))
    ).first()
    return Invite(*row) if row is not None else None


async def invite_by_token(conn: AsyncConnection, token: str) -> Invite | None:
    if not TOKEN_RE.fullmatch(token):
        return None
    q = select(*_INVITE_COLS).select_from(_invites_from()).where(invites.c.token_hash == sha256_hex(token))
    row = (await conn.execute(q)).first()
    return Invite(*row) if row is not None else None


async def list_invites(conn: AsyncConnection, limit: int = 100) -> list[Invite]:
    q = (
        select(*_INVITE_COLS)
        .select_from(_invites_from())
        .order_by(invites.c.created_at.desc(), invites.c.id.desc())
        .limit(limit)
    )
    return [Invite(*r) for r in await conn.execute(q)]


async def use_invite(conn: AsyncConnection, token: str, now: datetime) -> str | None:
    """Count one use of a live invitation, atomically: one conditional UPDATE, so two
    registrations racing for the last use cannot both have it. The invite's id, or None."""
    if not TOKEN_RE.fullmatch(token):
        return None
    h = sha256_hex(token)
    res = await conn.execute(
        update(invites)
        .where(
            invites.c.token_hash == h,
            invites.c.revoked_at.is_(None),
            invites.c.expires_at > now,
            invites.c.uses < invites.c.max_uses,
        )
        .values(uses=invites.c.uses + 1)
    )
    if res.rowcount != 1:
        return None
    return str((await conn.execute(select(invites.c.id).where(invites.c.token_hash == h))).scalar_one())


async def revoke_invite(conn: AsyncConnection, invite_id: str) -> bool:
    if not ID_RE.fullmatch(invite_id):
        return False
    res = await conn.execute(
        update(invites).where(invites.c.id == invite_id, invites.c.revoked_at.is_(None)).values(revoked_at=utcnow())
    )
    return res.rowcount == 1


# --------------------------------------------------------------------------- password-reset links

TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{20,64}")


async def create_reset(conn: AsyncConnection, user_id: str, expires_at: datetime) -> str:
    """A new reset link's token for the user; their older unused links stop working."""
    await conn.execute(delete(password_resets).where(password_resets.c.user_id == user_id))
    token = secrets.token_urlsafe(32)
    await conn.execute(
        password_resets.insert().values(
            token_hash=sha256_hex(token), user_id=user_id, created_at=utcnow(), expires_at=expires_at
        )
    )
    return token


async def reset_user(conn: AsyncConnection, token: str, now: datetime) -> User | None:
    """The user a live (unused, unexpired) reset link is for; None otherwise."""
    if not TOKEN_RE.fullmatch(token):
        return None
    q = (
        select(*USER_COLUMNS)
        .join(password_resets, password_resets.c.user_id == users.c.id)
        .where(
            password_resets.c.token_hash == sha256_hex(token),
            password_resets.c.used_at.is_(None),
            password_resets.c.expires_at > now,
        )
    )
    return user_from_row((await conn.execute(q)).first())


async def use_reset(conn: AsyncConnection, token: str, now: datetime) -> str | None:
    """Spend a reset link, atomically (a conditional UPDATE: it works once). The user's
    id, or None for a used, expired or unknown link."""
    if not TOKEN_RE.fullmatch(token):
        return None
    h = sha256_hex(token)
    res = await conn.execute(
        update(password_resets)
        .where(
            password_resets.c.token_hash == h,
            password_resets.c.used_at.is_(None),
            password_resets.c.expires_at > now,
        )
        .values(used_at=now)
    )
    if res.rowcount != 1:
        return None
    return str(
        (await conn.execute(select(password_resets.c.user_id).where(password_resets.c.token_hash == h))).scalar_one()
    )
