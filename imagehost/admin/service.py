"""Admin use cases: roles, disabling, quotas, deleting accounts, password-reset links,
invitation links, and the figures and lists the admin pages show. Every change is
recorded in the audit trail in its own transaction, and the instance always keeps an
enabled admin (409 `last_admin`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from ..accounts import service as accounts
from ..accounts import store as account_store
from ..accounts import twofactor
from ..accounts.store import ADMIN, ROLES, Invite
from ..db import Cursor, json_time, transaction, utcnow
from ..env import Env
from ..errors import Conflict, NotFound, Unprocessable
from . import store
from .store import CLI, Actor, AuditEntry, UserRow

__all__ = ["CLI", "Actor"]

RESET_LIFETIME = timedelta(hours=1)
INVITE_DEFAULT_SECONDS = 7 * 86400
INVITE_MIN_SECONDS, INVITE_MAX_SECONDS = 300, 365 * 86400
INVITE_MAX_USES = 1000
QUOTA_MAX_BYTES = 1 << 50  # a petabyte: anything larger is a typo
SEARCH_MAX = 100
DEFAULT_PAGE, MAX_PAGE = 50, 100


def actor_of(user: account_store.User) -> Actor:
    return Actor(user.id, user.username)


# --------------------------------------------------------------------------- reading


async def figures(env: Env) -> dict[str, int]:
    async with env.engine.connect() as conn:
        return await store.figures(conn, utcnow())


def clean_search(raw: object) -> str:
    if raw is None:
        return ""
    if not isinstance(raw, str) or len(raw) > SEARCH_MAX or accounts.has_unsafe_chars(raw):
        raise Unprocessable(f"q: at most {SEARCH_MAX} visible characters", {"field": "q"})
    return raw.strip()


async def users(env: Env, search: object, raw_cursor: str | None, limit: int) -> tuple[list[UserRow], Cursor | None]:
    q = clean_search(search)
    cursor = Cursor.decode(raw_cursor) if raw_cursor else None
    async with env.engine.connect() as conn:
        return await store.list_users(conn, q, cursor, limit)


async def user(env: Env, user_id: str) -> UserRow:
    async with env.engine.connect() as conn:
        found = await store.get_user(conn, user_id) if _ID.fullmatch(user_id) else None
    if found is None:
        raise NotFound("no such user")
    return found


async def audit_trail(env: Env, raw_cursor: str | None, limit: int) -> tuple[list[AuditEntry], Cursor | None]:
    cursor = Cursor.decode(raw_cursor) if raw_cursor else None
    async with env.engine.connect() as conn:
        return await store.list_audit(conn, cursor, limit)


async def invites(env: Env) -> list[Invite]:
    async with env.engine.connect() as conn:
        return await account_store.list_invites(conn)


# --------------------------------------------------------------------------- changing users

_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")


async def _target(conn: AsyncConnection, user_id: str) -> UserRow:
    found = await store.get_user(conn, user_id) if _ID.fullmatch(user_id) else None
    if found is None:
        raise NotFound("no such user")
    return found


async def _keep_an_admin(conn: AsyncConnection, target: UserRow, what: str) -> None:
    """Refuse to leave the instance without an enabled admin."""
    await accounts.refuse_last_admin(conn, target.id, what)


def clean_role(role: object) -> str:
    if role not in ROLES:
        raise Unprocessable("role: admin or user", {"field": "role"})
    assert isinstance(role, str)
    return role


async def set_role(env: Env, actor: Actor, user_id: str, role: object) -> UserRow:
    role = clean_role(role)
    async with transaction(env.engine) as conn:
        target = await _target(conn, user_id)
        if target.role != role:
            if target.role == ADMIN:
                await _keep_an_admin(conn, target, "demote")
            await account_store.set_role(conn, target.id, role)
            await store.audit(conn, actor, "role", target.id, target.username, {"from": target.role, "to": role})
        return await _target(conn, user_id)


async def set_disabled(env: Env, actor: Actor, user_id: str, disabled: bool) -> UserRow:
    async with transaction(env.engine) as conn:
        target = await _target(conn, user_id)
        if (target.disabled_at is not None) != disabled:
            if disabled:
                await _keep_an_admin(conn, target, "disable")
            await account_store.set_disabled(conn, target.id, disabled)
            await store.audit(conn, actor, "disable" if disabled else "enable", target.id, target.username)
        return await _target(conn, user_id)


def clean_quota(value: object) -> int | None:
    """Bytes (0 = unlimited), or None for the instance default."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= QUOTA_MAX_BYTES:
        raise Unprocessable(
            "quota_bytes: a whole number of bytes, 0 for unlimited, or null for the default",
            {"field": "quota_bytes"},
        )
    return value


def quota_from_megabytes(raw: object) -> int | None:
    """A form's quota in MB ("" = the default; decimals allowed; 0 = unlimited)."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    try:
        mb = float(raw) if isinstance(raw, str) and len(raw) <= 20 else float("nan")
    except ValueError:
        mb = float("nan")
    if not (mb >= 0) or mb * 1024 * 1024 > QUOTA_MAX_BYTES:
        raise Unprocessable("quota: a number of megabytes, 0 for unlimited, empty for the default", {"field": "quota"})
    return int(mb * 1024 * 1024)


async def set_quota(env: Env, actor: Actor, user_id: str, quota_bytes: int | None) -> UserRow:
    async with transaction(env.engine) as conn:
        target = await _target(conn, user_id)
        if target.quota_bytes != quota_bytes:
            await account_store.set_quota(conn, target.id, quota_bytes)
            await store.audit(
                conn, actor, "quota", target.id, target.username, {"from": target.quota_bytes, "to": quota_bytes}
            )
        return await _target(conn, user_id)


async def delete_user(env: Env, actor: Actor, user_id: str) -> None:
    """The account with all its images, keys and sessions (`accounts.delete_user`)."""

    async def check_and_record(conn: AsyncConnection) -> None:
        target = await _target(conn, user_id)
        await _keep_an_admin(conn, target, "delete")
        await store.audit(
            conn,
            actor,
            "delete",
            target.id,
            target.username,
            {"images": target.image_count, "bytes": target.storage_used_bytes},
        )

    if not await accounts.delete_user(env, user_id, before=check_and_record):
        raise NotFound("no such user")


@dataclass(frozen=True)
class Link:
    url: str
    expires_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "expires_at": json_time(self.expires_at)}


async def issue_reset_link(env: Env, actor: Actor, user_id: str) -> Link:
    """A one-use password-reset link for the user, valid for an hour (only its hash is
    stored; issuing one voids the user's older links)."""
    expires_at = (utcnow() + RESET_LIFETIME).replace(microsecond=0)
    async with transaction(env.engine) as conn:
        target = await _target(conn, user_id)
        token = await account_store.create_reset(conn, target.id, expires_at)
        await store.audit(conn, actor, "reset_link", target.id, target.username)
    return Link(env.url("reset", token=token), expires_at)


async def disable_totp(env: Env, actor: Actor, user_id: str) -> UserRow:
    """Turn the user's two-factor sign-in off for them (they lost their authenticator and
    their recovery codes): the same `twofactor.disable` as their own "turn off" (secret
    cleared, recovery codes deleted). Like that, it does not bump the auth version: their
    sessions, JWTs and keys go on working, and from now on the password alone signs in.
    409 `conflict` when TOTP is not on (a pending enrolment is not "on"): nothing changes."""
    async with transaction(env.engine) as conn:
        target = await _target(conn, user_id)
        if target.totp_enabled_at is None:
            raise Conflict(f"two-factor sign-in is not on for {target.username}")
        await twofactor.disable(conn, target.id)
        await store.audit(conn, actor, "totp_off", target.id, target.username)
        return await _target(conn, user_id)


async def user_id_by_name(env: Env, username: str) -> str:
    async with env.engine.connect() as conn:
        found = await account_store.get_user_by_name(conn, username)
    if found is None:
        raise NotFound(f"no user named {username!r}")
    return found.id


# --------------------------------------------------------------------------- invitation links


def clean_invite(expires_in: object, max_uses: object) -> tuple[int, int]:
    seconds = INVITE_DEFAULT_SECONDS if expires_in is None or expires_in == "" else expires_in
    if isinstance(seconds, str):
        seconds = _duration(seconds)
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int)
        or not INVITE_MIN_SECONDS <= seconds <= INVITE_MAX_SECONDS
    ):
        raise Unprocessable(
            "expires_in: seconds, or a number with m, h or d (1h, 7d), from 5 minutes to a year",
            {"field": "expires_in", "min_seconds": INVITE_MIN_SECONDS, "max_seconds": INVITE_MAX_SECONDS},
        )
    uses: object = 1 if max_uses is None or max_uses == "" else max_uses
    if isinstance(uses, str) and uses.strip().isdigit() and len(uses) <= 6:
        uses = int(uses)
    if isinstance(uses, bool) or not isinstance(uses, int) or not 1 <= uses <= INVITE_MAX_USES:
        raise Unprocessable(f"max_uses: a whole number from 1 to {INVITE_MAX_USES}", {"field": "max_uses"})
    return seconds, uses


_DURATION = re.compile(r"([0-9]{1,9})([smhd]?)")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(raw: str) -> int | None:
    m = _DURATION.fullmatch(raw.strip().lower())
    return int(m[1]) * _UNIT[m[2]] if m else None


def invite_url(env: Env, token: str) -> str:
    return env.url("register") + "?invite=" + token


async def create_invite(env: Env, actor: Actor, expires_in: object, max_uses: object) -> tuple[Invite, str]:
    """A new invitation link (shown once: only its hash is stored) and the invite."""
    seconds, uses = clean_invite(expires_in, max_uses)
    expires_at = (utcnow() + timedelta(seconds=seconds)).replace(microsecond=0)
    async with transaction(env.engine) as conn:
        invite_id, token = await account_store.create_invite(conn, actor.id, expires_at, uses)
        await store.audit(
            conn,
            actor,
            "invite",
            detail={"invite_id": invite_id, "max_uses": uses, "expires_at": json_time(expires_at)},
        )
        invite = await account_store.get_invite(conn, invite_id)
    assert invite is not None
    return invite, invite_url(env, token)


async def revoke_invite(env: Env, actor: Actor, invite_id: str) -> None:
    async with transaction(env.engine) as conn:
        if not await account_store.revoke_invite(conn, invite_id):
            raise NotFound("no such invitation, or it was revoked already")
        await store.audit(conn, actor, "invite_revoke", detail={"invite_id": invite_id})
