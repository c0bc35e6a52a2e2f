"""Admin queries: the instance's figures, the users list, the audit trail. Plain async
functions taking a connection; the caller owns the transaction."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ..db import Cursor, json_time, new_id, utcnow
from ..images.store import ACTIVE
from ..tables import audit_log, images, users

# --------------------------------------------------------------------------- figures


async def figures(conn: AsyncConnection, now: datetime) -> dict[str, int]:
    n_users = (await conn.execute(select(func.count()).select_from(users))).scalar_one()
    disabled = (
        await conn.execute(select(func.count()).select_from(users).where(users.c.disabled_at.is_not(None)))
    ).scalar_one()
    active = images.c.status == ACTIVE
    n_images, stored = (
        await conn.execute(select(func.count(), func.coalesce(func.sum(images.c.size_bytes), 0)).where(active))
    ).one()
    day, week = (
        await conn.execute(
            select(
                func.count().filter(images.c.created_at >= now - timedelta(days=1)),
                func.count().filter(images.c.created_at >= now - timedelta(days=7)),
            ).where(active)
        )
    ).one()
    return {
        "users": int(n_users),
        "disabled_users": int(disabled),
        "images": int(n_images),
        "bytes_stored": int(stored),
        "uploads_last_day": int(day),
        "uploads_last_week": int(week),
    }


# --------------------------------------------------------------------------- users


@dataclass(frozen=True)
class UserRow:
    id: str
    username: str
    email: str
    role: str
    image_count: int
    storage_used_bytes: int
    quota_bytes: int | None
    created_at: datetime
    last_login_at: datetime | None
    disabled_at: datetime | None
    totp_enabled_at: datetime | None

    def quota(self, default_bytes: int) -> int:
        return default_bytes if self.quota_bytes is None else self.quota_bytes

    def to_json(self, default_quota: int) -> dict[str, Any]:
        return {
            "id": self.id,
            "username": self.username,
            "email": self.email,
            "role": self.role,
            "images": self.image_count,
            "bytes_used": self.storage_used_bytes,
            "quota_bytes": self.quota(default_quota),
            "quota_is_default": self.quota_bytes is None,
            "created_at": json_time(self.created_at),
            "last_login_at": json_time(self.last_login_at) if self.last_login_at else None,
            "status": "disabled" if self.disabled_at else "active",
            "disabled_at": json_time(self.disabled_at) if self.disabled_at else None,
            "two_factor": self.totp_enabled_at is not None,
        }


_USER_COLS = (
    users.c.id,
    users.c.username,
    users.c.email,
    users.c.role,
    users.c.image_count,
    users.c.storage_used_bytes,
    users.c.quota_bytes,
    users.c.created_at,
    users.c.last_login_at,
    users.c.disabled_at,
    users.c.totp_enabled_at,
)


def _user_row(r: Any) -> UserRow:
    return UserRow(
        id=r[0],
        username=r[1],
        email=r[2],
        role=r[3],
        image_count=int(r[4] or 0),
        storage_used_bytes=int(r[5] or 0),
        quota_bytes=None if r[6] is None else int(r[6]),
        created_at=r[7],
        last_login_at=r[8],
        disabled_at=r[9],
        totp_enabled_at=r[10],
    )


async def get_user(conn: AsyncConnection, user_id: str) -> UserRow | None:
    row = (await conn.execute(select(*_USER_COLS).where(users.c.id == user_id))).first()
    return _user_row(row) if row is not None else None


async def list_users(
    conn: AsyncConnection, search: str, cursor: Cursor | None, limit: int
) -> tuple[list[UserRow], Cursor | None]:
    """Users, newest first, whose name or email contains `search` (ignoring case), one
    page after `cursor` (keyset on created_at, id)."""
    q = select(*_USER_COLS)
    if search:
        needle = search.lower()
        q = q.where(
            or_(
                users.c.username_key.contains(needle, autoescape=True),
                users.c.email_key.contains(needle, autoescape=True),
            )
        )
    if cursor is not None:
        q = q.where(cursor.before(users.c.created_at, users.c.id))
    q = q.order_by(users.c.created_at.desc(), users.c.id.desc()).limit(limit + 1)
    rows = [_user_row(r) for r in await conn.execute(q)]
    page = rows[:limit]
    nxt = Cursor(page[-1].created_at, page[-1].id) if len(rows) > limit else None
    return page, nxt


# --------------------------------------------------------------------------- audit trail


@dataclass(frozen=True)
class Actor:
    """Who did it: an admin, or the command line (no account)."""

    id: str | None
    name: str


CLI = Actor(None, "(command line)")


@dataclass(frozen=True)
class AuditEntry:
    id: str
    at: datetime
    actor_id: str | None
    actor_name: str
    action: str
    target_id: str | None
    target_name: str | None
    detail: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": json_time(self.at),
            "actor": self.actor_name,
            "action": self.action,
            "target": self.target_name,
            "detail": self.detail,
        }


async def audit(
    conn: AsyncConnection,
    actor: Actor,
    action: str,
    target_id: str | None = None,
    target_name: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Record an admin action, in the transaction of the action itself."""
    await conn.execute(
        audit_log.insert().values(
            id=new_id(),
            at=utcnow(),
            actor_id=actor.id,
            actor_name=actor.name[:50],
            action=action,
            target_id=target_id,
            target_name=target_name[:50] if target_name else None,
            detail=json.dumps(detail or {}, sort_keys=True),
        )
    )


async def list_audit(
    conn: AsyncConnection, cursor: Cursor | None, limit: int
) -> tuple[list[AuditEntry], Cursor | None]:
    q = select(audit_log)
    if cursor is not None:
        q = q.where(cursor.before(audit_log.c.at, audit_log.c.id))
    q = q.order_by(audit_log.c.at.desc(), audit_log.c.id.desc()).limit(limit + 1)
    rows = []
    for r in await conn.execute(q):
        try:
            detail = json.loads(r.detail)
        except ValueError:
            detail = {}
        rows.append(AuditEntry(r.id, r.at, r.actor_id, r.actor_name, r.action, r.target_id, r.target_name, detail))
    page = rows[:limit]
    nxt = Cursor(page[-1].at, page[-1].id) if len(rows) > limit else None
    return page, nxt
