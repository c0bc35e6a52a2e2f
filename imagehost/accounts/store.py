"""User queries. Plain async functions taking a connection; the caller owns the transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ..db import new_id, utcnow
from ..tables import users


@dataclass(frozen=True)
class User:
    id: str
    username: str
    email: str
    created_at: datetime
    storage_used_bytes: int = 0

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "username": self.username,
            "email": self.email,
            "created_at": self.created_at.isoformat() + "Z",
        }


USER_COLUMNS = _COLS = (users.c.id, users.c.username, users.c.email, users.c.created_at, users.c.storage_used_bytes)


def user_from_row(row) -> User | None:
    return User(*row) if row is not None else None


def username_key(username: str) -> str:
    return username.lower()


def email_key(email: str) -> str:
    return email.lower()


async def get_user(conn: AsyncConnection, user_id: str) -> User | None:
    row = (await conn.execute(select(*_COLS).where(users.c.id == user_id))).first()
    return user_from_row(row)


async def get_login(conn: AsyncConnection, username: str) -> tuple[User, str] | None:
    """The user and their password hash, by username ignoring case."""
    row = (
        await conn.execute(select(*_COLS, users.c.password_hash).where(users.c.username_key == username_key(username)))
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
