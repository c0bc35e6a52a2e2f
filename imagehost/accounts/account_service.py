"""Account settings, the use cases behind `/account` and `/api/account/…`: change the
password or the email, delete the account, and turn two-factor sign-in (TOTP) on and off.

Every change that could lock the owner out or take the account over asks for something
a stolen session does not have: the current password (password, email, deleting, starting
TOTP enrolment) or a code (turning TOTP off). A wrong password or code is counted as a
failed login (accounts/throttle.py): a session cannot be used to guess either.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ..db import transaction, utcnow
from ..env import Env
from ..errors import Conflict, Forbidden, TooManyRequests
from ..tables import users
from . import service, store, throttle, twofactor
from .passwords import hash_password, verify_password
from .store import User, email_key, username_key

WRONG_PASSWORD = "the current password is wrong"
WRONG_CODE = "the code is wrong, too old or already used"
ISSUER = "imagehost"


@dataclass(frozen=True)
class TwoFactor:
    """What the account page shows about two-factor sign-in."""

    enabled: bool
    pending_secret: str | None  # enrolment started, not confirmed: the base32 secret
    recovery_codes_left: int


async def _throttled(env: Env, user: User, addr: str) -> None:
    async with env.engine.connect() as conn:
        wait = await throttle.retry_after(conn, username_key(user.username), addr, utcnow())
    if wait:
        raise TooManyRequests(wait, "too many failed attempts; try again later")


async def _failed(env: Env, user: User, addr: str) -> None:
    async with transaction(env.engine) as conn:
        await throttle.record_failure(conn, username_key(user.username), addr, utcnow())


async def confirm_password(env: Env, user: User, password: object, addr: str) -> None:
    """Nothing, or 403 `wrong_password` (counted as a failed login; 429 when throttled)."""
    await _throttled(env, user, addr)
    async with env.engine.connect() as conn:
        row = (await conn.execute(select(users.c.password_hash).where(users.c.id == user.id))).first()
    ok = (
        row is not None
        and isinstance(password, str)
        and 0 < len(password) <= service.PASSWORD_MAX
        and await verify_password(password, row[0])
    )
    if not ok:
        await _failed(env, user, addr)
        raise Forbidden(WRONG_PASSWORD, code="wrong_password")


# --------------------------------------------------------------------------- password, email, delete


async def change_password(env: Env, user: User, current: object, new: object, addr: str) -> User:
    """Set a new password and bump the auth version: every session and JWT of the account
    ends at its next request (the caller re-issues its own session); API keys stay."""
    new_password = service.clean_password(new)
    await confirm_password(env, user, current, addr)
    hashed = await hash_password(new_password, env.settings.bcrypt_rounds)
    async with transaction(env.engine) as conn:
        await conn.execute(update(users).where(users.c.id == user.id).values(password_hash=hashed))
        await store.bump_auth_version(conn, user.id)
        fresh = await store.get_user(conn, user.id)
    assert fresh is not None
    return fresh


async def change_email(env: Env, user: User, email: object, password: object, addr: str) -> User:
    """A new email address (unique ignoring case: 409 `field_taken`)."""
    cleaned = service.clean_email(email)
    await confirm_password(env, user, password, addr)
    try:
        async with transaction(env.engine) as conn:
            owner = (await conn.execute(select(users.c.id).where(users.c.email_key == email_key(cleaned)))).first()
            if owner is not None and owner[0] != user.id:
                raise service.FieldError("email", "this email is already taken", 409)
            await conn.execute(
                update(users).where(users.c.id == user.id).values(email=cleaned, email_key=email_key(cleaned))
            )
            fresh = await store.get_user(conn, user.id)
    except IntegrityError:  # lost a race with another account taking it
        raise service.FieldError("email", "this email is already taken", 409) from None
    assert fresh is not None
    return fresh


async def delete_account(env: Env, user: User, password: object, addr: str) -> None:
    """The account and everything it owns, through `service.delete_user`. The instance's
    last admin cannot (409 `last_admin`, checked with the row locked; nothing deleted)."""
    await confirm_password(env, user, password, addr)

    async def not_the_last_admin(conn: AsyncConnection) -> None:
        await service.refuse_last_admin(conn, user.id, "delete")

    await service.delete_user(env, user.id, before=not_the_last_admin)


# --------------------------------------------------------------------------- two-factor sign-in


async def two_factor(env: Env, user: User) -> TwoFactor:
    async with env.engine.connect() as conn:
        sealed, enabled, _last = await twofactor.totp_state(conn, user.id)
        left = await twofactor.recovery_codes_left(conn, user.id) if enabled else 0
    pending = None
    if sealed is not None and not enabled:
        pending = twofactor.unseal(env.settings.secret_key, user.id, sealed)
    return TwoFactor(enabled=enabled, pending_secret=pending, recovery_codes_left=left)


def enrolment_uri(user: User, secret: str) -> str:
    return twofactor.provisioning_uri(secret, user.username, ISSUER)


async def start_totp(env: Env, user: User, password: object, addr: str) -> str:
    """Enrolment, step one: a new secret, stored (sealed) but not on yet; the secret.
    Starting again replaces a pending secret. 409 `conflict` when TOTP is already on."""
    await confirm_password(env, user, password, addr)
    async with transaction(env.engine) as conn:
        _sealed, enabled, _last = await twofactor.totp_state(conn, user.id)
        if enabled:
            raise Conflict("two-factor sign-in is already on; turn it off first")
        return await twofactor.start_enrolment(conn, env.settings.secret_key, user.id)


async def confirm_totp(env: Env, user: User, code: object) -> list[str]:
    """Enrolment, step two: a code from the app proves it has the secret; TOTP is on.
    The ten recovery codes, to show once. 409 when no enrolment is pending, 403
    `otp_invalid` for a wrong code (nothing changes)."""
    async with transaction(env.engine) as conn:
        sealed, enabled, _last = await twofactor.totp_state(conn, user.id)
        if enabled or sealed is None:
            raise Conflict("no two-factor enrolment is pending: start one first")
        secret = twofactor.unseal(env.settings.secret_key, user.id, sealed)
        cleaned = twofactor.clean_code(code)
        step = twofactor.matching_step(secret, cleaned, None) if secret and cleaned else None
        if step is None:
            raise Forbidden(WRONG_CODE, code="otp_invalid")
        return await twofactor.enable(conn, user.id, step)


async def disable_totp(env: Env, user: User, code: object, addr: str) -> None:
    """Turn TOTP off with a code from the app or a recovery code (each used up; a wrong
    one is counted as a failed login). 409 when it is not on."""
    await _throttled(env, user, addr)
    async with transaction(env.engine) as conn:
        _sealed, enabled, _last = await twofactor.totp_state(conn, user.id)
        if not enabled:
            raise Conflict("two-factor sign-in is not on")
        good = await twofactor.use_code(conn, env.settings.secret_key, user.id, code)
        if good:
            await twofactor.disable(conn, user.id)
    if not good:
        await _failed(env, user, addr)
        raise Forbidden(WRONG_CODE, code="otp_invalid")
