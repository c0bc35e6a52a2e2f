"""Account use cases shared by the API, the pages, the identity middleware and the CLI:
registering, logging in with a password (throttled), API keys, sessions. Input rules
live here, once."""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Awaitable, Callable
from datetime import datetime

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ..db import transaction, utcnow
from ..env import Env
from ..errors import AppError, Conflict, Forbidden, NotFound, TooManyRequests, Unauthorized
from ..images import service as images
from ..images import store as image_store
from . import keycache, store, throttle, twofactor
from .passwords import dummy_hash_async, hash_password, verify_password
from .store import ADMIN, USER, ApiKey, User, username_key

USERNAME_RE = re.compile(r"[A-Za-z0-9_.-]{3,50}")
USERNAME_MAX = 50
EMAIL_MAX = 254
PASSWORD_MIN, PASSWORD_MAX = 8, 1024
KEY_NAME_MAX = 100
LOGIN_FAILED = "invalid username or password"
DISABLED = "this account is disabled"
OTP_REQUIRED = "a two-factor code is required: send it as `otp`"
OTP_INVALID = "the two-factor code is wrong, expired or already used"


class FieldError(AppError):
    """One input field is wrong: 422 `invalid_input`, or 409 `field_taken`. `detail`
    names the field; `reason` is the words a form shows beside it."""

    def __init__(self, field: str, reason: str, status: int = 422) -> None:
        super().__init__(
            f"{field}: {reason}",
            {"field": field, "message": reason},
            code="field_taken" if status == 409 else "invalid_input",
        )
        self.status = status
        self.field, self.reason = field, reason


class RegistrationError(FieldError):
    """Registration refused; `errors` holds every field found wrong (field → reason)."""

    def __init__(self, field: str, reason: str, status: int = 422, errors: dict[str, str] | None = None) -> None:
        super().__init__(field, reason, status)
        self.errors = errors or {field: reason}
        if len(self.errors) > 1:
            self.detail["errors"] = self.errors


def has_unsafe_chars(text: str) -> bool:
    """Control characters (NUL included), format characters (bidi overrides, zero-width
    marks) and lone surrogates: invisible or dangerous in names, and a lone surrogate
    cannot even be encoded for the database or the password hash."""
    return any(unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in text)


def clean_username(username: object) -> str:
    if not isinstance(username, str) or not USERNAME_RE.fullmatch(username):
        raise FieldError("username", "3–50 characters: letters, digits, '_', '.' or '-'")
    return username


def clean_email(email: object) -> str:
    if not isinstance(email, str) or not email or len(email) > EMAIL_MAX or has_unsafe_chars(email):
        raise FieldError("email", "not a valid email address")
    try:
        return validate_email(email, check_deliverability=False).normalized
    except EmailNotValidError:
        raise FieldError("email", "not a valid email address") from None


def clean_password(password: object) -> str:
    if not isinstance(password, str) or not (PASSWORD_MIN <= len(password) <= PASSWORD_MAX):
        raise FieldError("password", f"{PASSWORD_MIN}–{PASSWORD_MAX} characters")
    if has_unsafe_chars(password):
        raise FieldError("password", "must not contain control or invisible formatting characters")
    return password


def clean_key_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise FieldError("name", "give the key a name")
    name = name.strip()
    if len(name) > KEY_NAME_MAX or has_unsafe_chars(name):
        raise FieldError("name", f"at most {KEY_NAME_MAX} visible characters")
    return name


def validate_registration(username: object, email: object, password: object) -> tuple[str, str, str]:
    """The cleaned values, or RegistrationError naming every field that is wrong."""
    errors: dict[str, str] = {}
    cleaned: dict[str, str] = {}
    for field, fn, value in (
        ("username", clean_username, username),
        ("email", clean_email, email),
        ("password", clean_password, password),
    ):
        try:
            cleaned[field] = fn(value)
        except FieldError as exc:
            errors[field] = exc.reason
    if errors:
        first = next(iter(errors))
        raise RegistrationError(first, errors[first], 422, errors)
    return cleaned["username"], cleaned["email"], cleaned["password"]


def _taken(taken: list[str]) -> RegistrationError:
    errors = {f: f"this {f} is already taken" for f in taken}
    return RegistrationError(taken[0], errors[taken[0]], 409, errors)


class InviteRefused(AppError):
    """Registration through an invitation link that cannot be used (403 `invite_invalid`,
    `detail.reason`: unknown, expired, used_up or revoked), or without one where one is
    needed (403 `invite_required`)."""

    status = 403

    def __init__(self, reason: str) -> None:
        if reason == "missing":
            super().__init__("registration is by invitation: open the link you were sent", code="invite_required")
        else:
            words = {
                "unknown": "this invitation link is not valid",
                "expired": "this invitation link has expired",
                "used_up": "this invitation link has been used up",
                "revoked": "this invitation link was withdrawn",
            }
            super().__init__(words.get(reason, words["unknown"]), {"reason": reason}, code="invite_invalid")
        self.reason = reason


OPEN, INVITE, CLOSED = "open", "invite", "closed"


async def registration_mode(env: Env) -> str:
    """How someone may register right now: the configured mode, except that the first
    account of an empty instance may always register (and becomes its admin)."""
    async with env.engine.connect() as conn:
        if not await store.has_users(conn):
            return OPEN
    return env.settings.registration


async def check_invite(env: Env, token: object) -> str:
    """Why an invitation token cannot be used ("" when it can)."""
    if not isinstance(token, str) or not token:
        return "missing"
    async with env.engine.connect() as conn:
        invite = await store.invite_by_token(conn, token)
    return "unknown" if invite is None else ("" if invite.state(utcnow()) == "active" else invite.state(utcnow()))


async def _first_account_lock(conn: AsyncConnection) -> None:
    """Two registrations racing to be the first account on PostgreSQL: one at a time
    (SQLite's writers are one at a time already)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(4242001)"))


async def register_user(
    env: Env,
    username: object,
    email: object,
    password: object,
    *,
    role: str | None = None,
    mode: str | None = None,
    invite: object = None,
) -> User:
    """A new account. The first account of an empty instance is its admin; otherwise the
    role is `role` (default: user). With `mode` (the handlers pass the configured
    REGISTRATION_MODE) the registration must be allowed by it: `closed` refuses, `invite`
    spends one use of the invitation `invite` in the same transaction as the insert (a
    conditional UPDATE: two people racing for the last use, one wins). Without `mode`
    (the CLI, an admin) anyone may be created."""
    username, email, password = validate_registration(username, email, password)
    # Hash before looking: a taken and a free username cost the same time.
    hashed = await hash_password(password, env.settings.bcrypt_rounds)
    try:
        async with transaction(env.engine) as conn:
            first = not await store.has_users(conn)
            if first:
                await _first_account_lock(conn)
                first = not await store.has_users(conn)
            if not first and mode == CLOSED:
                raise Forbidden("registration is closed", code="registration_closed")
            taken = await store.taken_fields(conn, username, email)
            if taken:
                raise _taken(taken)
            if not first and mode == INVITE:
                if not isinstance(invite, str) or not invite:
                    raise InviteRefused("missing")
                if await store.use_invite(conn, invite, utcnow()) is None:
                    found = await store.invite_by_token(conn, invite)
                    raise InviteRefused("unknown" if found is None else found.state(utcnow()))
            return await store.insert_user(conn, username, email, hashed, ADMIN if first else (role or USER))
    except IntegrityError:  # lost a race with a concurrent registration
        async with env.engine.connect() as conn:
            taken = await store.taken_fields(conn, username, email) or ["username"]
        raise _taken(taken) from None


def clean_login(username: object, password: object) -> tuple[str, str]:
    """Shape checks only: a well-formed name that no one has is still just a failed login."""
    if not isinstance(username, str) or not username or len(username) > USERNAME_MAX or has_unsafe_chars(username):
        raise FieldError("username", "enter your username")
    if not isinstance(password, str) or not password or len(password) > PASSWORD_MAX or has_unsafe_chars(password):
        raise FieldError("password", "enter your password")
    return username, password


class OtpRequired(Unauthorized):
    """The password was right and the account has two-factor sign-in: 401 `otp_required`.
    `user` lets the login page keep the half-signed-in state (which grants nothing)."""

    def __init__(self, user: User) -> None:
        super().__init__(OTP_REQUIRED, code="otp_required")
        self.user = user


async def authenticate(env: Env, username: object, password: object, addr: str, otp: object = None) -> User:
    """The user for this username and password (and code, for an account with TOTP).

    Raises FieldError (malformed input), TooManyRequests (throttled; checked before the
    password, so a throttled guess learns nothing) or Unauthorized with one message for
    an unknown user and a wrong password alike; an unknown user is verified against a
    dummy hash of the same cost, so both take the same time. Only with the right password
    does a disabled account learn that it is disabled (401 `account_disabled`), and only
    with the right password does an account with TOTP answer 401 `otp_required` (no code
    sent) or `otp_invalid` (a wrong, stale or used code, counted as a failed login like a
    wrong password): a wrong password answers the same whether or not a code was sent.
    The failures are cleared only when the whole sign-in succeeds, so a known password
    does not reset the budget for guessing codes.
    """
    username, password = clean_login(username, password)
    if otp is not None and not isinstance(otp, str):
        raise FieldError("otp", "the code from your authenticator app, or a recovery code")
    key = username_key(username)
    now = utcnow()
    async with env.engine.connect() as conn:
        wait = await throttle.retry_after(conn, key, addr, now)
        if wait:
            raise TooManyRequests(wait, "too many failed logins; try again later")
        found = await store.get_login(conn, username)
    hashed = found[1] if found else await dummy_hash_async(env.settings.bcrypt_rounds)
    ok = await verify_password(password, hashed)
    if found is None or not ok:
        async with transaction(env.engine) as conn:
            await throttle.record_failure(conn, key, addr, now)
        raise Unauthorized(LOGIN_FAILED)
    user = found[0]
    if user.disabled:
        raise Unauthorized(DISABLED, code="account_disabled")
    if user.totp_enabled:
        if otp is None or otp == "":
            raise OtpRequired(user)
        return await finish_second_factor(env, user, otp, addr)
    async with transaction(env.engine) as conn:
        await throttle.clear_user(conn, key)
        await store.touch_login(conn, user.id)
    return user


async def finish_second_factor(env: Env, user: User, code: object, addr: str, *, check_throttle: bool = False) -> User:
    """Sign-in's second step, after the right password: the code (TOTP or recovery) is used
    up and the failures cleared, or the attempt is counted as a failed login and refused
    with 401 `otp_invalid`. With `check_throttle` (the login page's second form, a request
    of its own) the throttle is checked first, as for a password."""
    key = username_key(user.username)
    now = utcnow()
    if check_throttle:
        async with env.engine.connect() as conn:
            wait = await throttle.retry_after(conn, key, addr, now)
        if wait:
            raise TooManyRequests(wait, "too many failed logins; try again later")
    async with transaction(env.engine) as conn:
        good = await twofactor.use_code(conn, env.settings.secret_key, user.id, code)
        if good:
            await throttle.clear_user(conn, key)
            await store.touch_login(conn, user.id)
    if good:
        return user
    async with transaction(env.engine) as conn:
        await throttle.record_failure(conn, key, addr, now)
    raise Unauthorized(OTP_INVALID, code="otp_invalid")


# --------------------------------------------------------------------------- API keys


async def create_api_key(env: Env, user_id: str, name: str) -> tuple[ApiKey, str]:
    """A new key and its secret (shown once; only its hash is kept)."""
    async with transaction(env.engine) as conn:
        return await store.create_key(conn, user_id, name)


async def list_api_keys(env: Env, user_id: str) -> list[ApiKey]:
    async with env.engine.connect() as conn:
        return await store.list_keys(conn, user_id)


async def revoke_api_key(env: Env, user_id: str, key_id: str) -> None:
    """Unknown, already revoked, or someone else's: all the same 404."""
    async with transaction(env.engine) as conn:
        revoked = await store.revoke_key(conn, user_id, key_id)
    keycache.clear()  # committed: this process refuses the key from the next request on
    if not revoked:
        raise NotFound("no such API key")


async def user_for_key(env: Env, secret: str) -> tuple[User, str] | None:
    """The key's owner and the key's id; None for an unknown or revoked key. Records the
    use at most once a minute, so most requests only read; a valid key's answer is kept
    for at most a second in this process (`keycache`: how a revocation still takes effect
    everywhere within that second)."""
    cached = keycache.api_keys.get(secret)
    if cached is not None:
        return cached
    since = time.monotonic()
    async with env.engine.connect() as conn:
        found = await store.authenticate_key(conn, secret)
    if found is None:
        return None
    user, key_id, due = found
    if due:
        async with transaction(env.engine) as conn:
            await store.touch_key(conn, key_id)
    keycache.api_keys.put(secret, (user, key_id), since)
    return user, key_id


# --------------------------------------------------------------------------- sessions and tokens


async def user_by_id(env: Env, user_id: str) -> User | None:
    async with env.engine.connect() as conn:
        return await store.get_user(conn, user_id)


async def session_user(env: Env, user_id: str, sid: str) -> User | None:
    """The session's user, unless the user is gone or the session was logged out."""
    async with env.engine.connect() as conn:
        return await store.session_user(conn, user_id, sid)


async def end_session(env: Env, sid: str, cookie_expires_at: datetime) -> None:
    """Revoke a session id until its cookie would have expired anyway."""
    async with transaction(env.engine) as conn:
        await store.revoke(conn, sid, cookie_expires_at, utcnow())


async def bump_auth_version(env: Env, user_id: str) -> None:
    """End every session and JWT of this user at their next request. API keys are not
    touched: they are revoked one by one on the keys page."""
    async with transaction(env.engine) as conn:
        await store.bump_auth_version(conn, user_id)


async def set_disabled(env: Env, user_id: str, disabled: bool) -> bool:
    """Disable (or enable) an account: a disabled account cannot sign in, and its
    sessions, JWTs and API keys are refused at their next request (the identity
    middleware reads the user row on every request; an API key's answer is cached for
    at most a second, see keycache). Its images stay served."""
    async with transaction(env.engine) as conn:
        changed = await store.set_disabled(conn, user_id, disabled)
    keycache.clear()  # committed: this process refuses the user's keys from the next request on
    return changed


async def refuse_last_admin(conn: AsyncConnection, user_id: str, what: str) -> None:
    """409 `last_admin` if `user_id` is the instance's only enabled admin: it cannot be
    demoted, disabled or deleted (`what` names which, for the message). Locks the admins'
    rows for the rest of the transaction, so two admins cannot both step down at once.
    Use it as `delete_user(..., before=...)` for an account deleting itself."""
    admins = await store.lock_admins(conn)
    if user_id in admins and len(admins) == 1:
        raise Conflict(
            f"cannot {what} the last admin: make another account admin first", {"user_id": user_id}, code="last_admin"
        )


# --------------------------------------------------------------------------- deleting an account


async def delete_user(
    env: Env, user_id: str, *, before: Callable[[AsyncConnection], Awaitable[None]] | None = None
) -> bool:
    """Delete an account with everything it owns, the way an image is deleted: rows
    first (the account, its keys and sessions end at once), every object recorded in
    storage_orphans in the same transaction, then the objects; the sweep finishes
    whatever a crash or storage interrupts. False if there was no such account.

    The user row is locked first (an UPDATE), so an upload of theirs that has not
    reserved its quota yet waits and then finds no account: it stores nothing. An
    upload in flight has its pending row removed here; its objects stay recorded until
    the row would have expired, so whatever it still writes is swept, and the upload
    itself fails at activation and deletes what it wrote (`pending_upload`).

    `before(conn)` runs in the transaction once the row is locked: it may refuse (raise)
    and it records the audit entry."""
    async with transaction(env.engine) as conn:
        if not await store.bump_auth_version(conn, user_id):  # takes the row's write lock
            return False
        if before is not None:  # checks that may still refuse, and the audit record
            await before(conn)
        removed = await image_store.remove_for_owner(conn, user_id, orphan_delay=images.TOMBSTONE_DELAY)
        await store.delete_user(conn, user_id)
    pending_keys = [k for row in removed if row.status == image_store.PENDING for k in row.keys]
    keys = [k for row in removed for k in row.keys]
    await images.delete_objects(env, keys, keep_tracked=pending_keys)
    return True


# --------------------------------------------------------------------------- password-reset links

RESET_INVALID = "this reset link is not valid: it expired, was used already, or a newer one was issued"


async def reset_link_user(env: Env, token: str) -> User | None:
    """The user a live reset link is for (None for a used, expired or unknown link)."""
    async with env.engine.connect() as conn:
        return await store.reset_user(conn, token, utcnow())


async def reset_password(env: Env, token: str, password: object) -> User:
    """Set a new password through a reset link: the link is spent (once, atomically), and
    every session and JWT of the account ends (API keys stay). NotFound for a used,
    expired or unknown link; FieldError for a password that does not fit the rules."""
    password = clean_password(password)
    hashed = await hash_password(password, env.settings.bcrypt_rounds)
    async with transaction(env.engine) as conn:
        user_id = await store.use_reset(conn, token, utcnow())
        if user_id is None or not await store.set_password_hash(conn, user_id, hashed):
            raise NotFound(RESET_INVALID)
        user = await store.get_user(conn, user_id)
        assert user is not None  # the row was just updated, in this transaction
        await throttle.clear_user(conn, username_key(user.username))  # a locked-out owner gets back in
    return user
