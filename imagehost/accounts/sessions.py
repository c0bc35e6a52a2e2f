"""Browser sessions: an encrypted cookie holding the user id, a random session id and the
CSRF token. The cookie is the whole session, so logout records the session id as revoked
(until the cookie could have expired anyway): a copy of the cookie taken before logout
then identifies no one."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, exists, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ..tables import revoked_sessions as rs
from ..tables import users
from .users import USER_COLUMNS, User, user_from_row


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
