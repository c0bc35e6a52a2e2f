"""Account use cases shared by the API, the pages, the identity middleware and the CLI:
registering, logging in with a password (throttled), API keys, sessions. Input rules
live here, once."""

from __future__ import annotations

import re
import time
import unicodedata
from datetime import datetime

from email_validator import EmailNotValidError, validate_email
from sqlalchemy.exc import IntegrityError

from ..db import transaction, utcnow
from ..env import Env
from ..errors import AppError, NotFound, TooManyRequests, Unauthorized
from . import keycache, store, throttle
from .passwords import dummy_hash_async, hash_password, verify_password
from .store import ApiKey, User, username_key

USERNAME_RE = re.compile(r"[A-Za-z0-9_.-]{3,50}")
USERNAME_MAX = 50
EMAIL_MAX = 254
PASSWORD_MIN, PASSWORD_MAX = 8, 1024
KEY_NAME_MAX = 100
LOGIN_FAILED = "invalid username or password"


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


async def register_user(env: Env, username: object, email: object, password: object) -> User:
    username, email, password = validate_registration(username, email, password)
    # Hash before looking: a taken and a free username cost the same time.
    hashed = await hash_password(password, env.settings.bcrypt_rounds)
    try:
        async with transaction(env.engine) as conn:
            taken = await store.taken_fields(conn, username, email)
            if taken:
                raise _taken(taken)
            return await store.insert_user(conn, username, email, hashed)
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


async def authenticate(env: Env, username: object, password: object, addr: str) -> User:
    """The user for this username and password.

    Raises FieldError (malformed input), TooManyRequests (throttled; checked before the
    password, so a throttled guess learns nothing) or Unauthorized with one message for
    an unknown user and a wrong password alike; an unknown user is verified against a
    dummy hash of the same cost, so both take the same time.
    """
    username, password = clean_login(username, password)
    key = username_key(username)
    now = utcnow()
    async with env.engine.connect() as conn:
        wait = await throttle.retry_after(conn, key, addr, now)
        if wait:
            raise TooManyRequests(wait, "too many failed logins; try again later")
        found = await store.get_login(conn, username)
    hashed = found[1] if found else await dummy_hash_async(env.settings.bcrypt_rounds)
    ok = await verify_password(password, hashed)
    async with transaction(env.engine) as conn:
        if found is not None and ok:
            await throttle.clear_user(conn, key)
            return found[0]
        await throttle.record_failure(conn, key, addr, now)
    raise Unauthorized(LOGIN_FAILED)


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
