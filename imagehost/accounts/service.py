"""Account use cases shared by the API, the pages and the CLI: registering, logging in
with a password (throttled), naming API keys. Input rules live here, once."""

from __future__ import annotations

import re
import unicodedata

from email_validator import EmailNotValidError, validate_email
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from ..config import Settings
from ..db import transaction, utcnow
from ..errors import TooManyRequests, Unauthorized
from . import throttle
from .passwords import dummy_hash_async, hash_password, verify_password
from .users import User, get_login, insert_user, taken_fields, username_key

USERNAME_RE = re.compile(r"[A-Za-z0-9_.-]{3,50}")
USERNAME_MAX = 50
EMAIL_MAX = 254
PASSWORD_MIN, PASSWORD_MAX = 8, 1024
KEY_NAME_MAX = 100
LOGIN_FAILED = "invalid username or password"


class FieldError(Exception):
    """One input field is wrong: 422 (invalid) or 409 (taken)."""

    def __init__(self, field: str, message: str, status: int = 422):
        super().__init__(message)
        self.field, self.message, self.status = field, message, status


class RegistrationError(FieldError):
    """Registration refused; `errors` holds every field found wrong (field → message)."""

    def __init__(self, field: str, message: str, status: int = 422, errors: dict[str, str] | None = None):
        super().__init__(field, message, status)
        self.errors = errors or {field: message}


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
            errors[field] = exc.message
    if errors:
        first = next(iter(errors))
        raise RegistrationError(first, errors[first], 422, errors)
    return cleaned["username"], cleaned["email"], cleaned["password"]


def _taken(taken: list[str]) -> RegistrationError:
    errors = {f: f"this {f} is already taken" for f in taken}
    return RegistrationError(taken[0], errors[taken[0]], 409, errors)


async def register_user(
    engine: AsyncEngine, settings: Settings, username: object, email: object, password: object
) -> User:
    username, email, password = validate_registration(username, email, password)
    # Hash before looking: a taken and a free username cost the same time.
    hashed = await hash_password(password, settings.bcrypt_rounds)
    try:
        async with transaction(engine) as conn:
            taken = await taken_fields(conn, username, email)
            if taken:
                raise _taken(taken)
            return await insert_user(conn, username, email, hashed)
    except IntegrityError:  # lost a race with a concurrent registration
        async with engine.connect() as conn:
            taken = await taken_fields(conn, username, email) or ["username"]
        raise _taken(taken) from None


def clean_login(username: object, password: object) -> tuple[str, str]:
    """Shape checks only: a well-formed name that no one has is still just a failed login."""
    if not isinstance(username, str) or not username or len(username) > USERNAME_MAX or has_unsafe_chars(username):
        raise FieldError("username", "enter your username")
    if not isinstance(password, str) or not password or len(password) > PASSWORD_MAX or has_unsafe_chars(password):
        raise FieldError("password", "enter your password")
    return username, password


async def authenticate(engine: AsyncEngine, settings: Settings, username: object, password: object, addr: str) -> User:
    """The user for this username and password.

    Raises FieldError (malformed input), TooManyRequests (throttled; checked before the
    password, so a throttled guess learns nothing) or Unauthorized with one message for
    an unknown user and a wrong password alike; an unknown user is verified against a
    dummy hash of the same cost, so both take the same time.
    """
    username, password = clean_login(username, password)
    key = username_key(username)
    now = utcnow()
    async with engine.connect() as conn:
        wait = await throttle.retry_after(conn, key, addr, now)
        if wait:
            raise TooManyRequests(wait, "too many failed logins; try again later")
        found = await get_login(conn, username)
    hashed = found[1] if found else await dummy_hash_async(settings.bcrypt_rounds)
    ok = await verify_password(password, hashed)
    async with transaction(engine) as conn:
        if found is not None and ok:
            await throttle.clear_user(conn, key)
            return found[0]
        await throttle.record_failure(conn, key, addr, now)
    raise Unauthorized(LOGIN_FAILED)
