"""Login throttling, counted in the database so it holds across server processes.

Every failed login writes two rows to `login_failures`: one for the username (lower-cased,
whether or not such a user exists, so the throttle itself reveals nothing) and one for the
client address. Before a password is checked, a username with `USER_LIMIT` failures or an
address with `ADDR_LIMIT` failures inside `WINDOW` is refused with the number of seconds
until its count drops below the limit. A throttled attempt is not itself recorded (a
locked-out user's lock-out does not grow while they wait), and it never reaches bcrypt, so
it cannot tell whether the password was right. A success clears the username's rows; the
address's rows stay (one's own account must not reset a guessing budget).

Two processes racing at the limit can each let one more attempt through: the count is
checked, then written, without a lock. That overshoot is bounded by the number of
processes and is accepted to keep the check a plain indexed read.
"""

from __future__ import annotations

import math
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ..db import new_id
from ..tables import login_failures as lf

WINDOW = timedelta(minutes=15)
USER_LIMIT = 10
ADDR_LIMIT = 30
# On roughly one failure in this many, rows older than the window are pruned table-wide.
PRUNE_EVERY = 50


def _subject(value: str) -> str:
    return value[:255]


async def _wait_for(conn: AsyncConnection, scope: str, subject: str, limit: int, now: datetime) -> int:
    """Seconds until `subject` has fewer than `limit` failures in the window (0: not throttled)."""
    # The limit-th most recent failure in the window: once it ages out, the count is below the limit.
    row = (
        await conn.execute(
            select(lf.c.failed_at)
            .where(lf.c.scope == scope, lf.c.subject == _subject(subject), lf.c.failed_at > now - WINDOW)
            .order_by(lf.c.failed_at.desc())
            .offset(limit - 1)
            .limit(1)
        )
    ).first()
    if row is None:
        return 0
    first: datetime = row[0]
    return max(1, math.ceil((first + WINDOW - now).total_seconds()))


async def retry_after(conn: AsyncConnection, username_key: str, addr: str, now: datetime) -> int:
    """0 when a login may be tried now, else the seconds to wait (for the `Retry-After` header)."""
    return max(
        await _wait_for(conn, "user", username_key, USER_LIMIT, now),
        await _wait_for(conn, "addr", addr, ADDR_LIMIT, now),
    )


async def record_failure(conn: AsyncConnection, username_key: str, addr: str, now: datetime) -> None:
    await conn.execute(
        lf.insert(),
        [
            {"id": new_id(), "scope": "user", "subject": _subject(username_key), "failed_at": now},
            {"id": new_id(), "scope": "addr", "subject": _subject(addr), "failed_at": now},
        ],
    )
    # Opportunistic pruning: this username's expired rows always (an indexed delete),
    # the whole table's now and then.
    await conn.execute(
        delete(lf).where(lf.c.scope == "user", lf.c.subject == _subject(username_key), lf.c.failed_at <= now - WINDOW)
    )
    if secrets.randbelow(PRUNE_EVERY) == 0:
        await prune(conn, now)


async def clear_user(conn: AsyncConnection, username_key: str) -> None:
    await conn.execute(delete(lf).where(lf.c.scope == "user", lf.c.subject == _subject(username_key)))


async def prune(conn: AsyncConnection, now: datetime) -> int:
    res = await conn.execute(delete(lf).where(lf.c.failed_at <= now - WINDOW))
    return res.rowcount
