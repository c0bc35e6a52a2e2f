"""Account use cases shared by the API, the pages and the CLI."""

from __future__ import annotations

import re
import unicodedata

from email_validator import EmailNotValidError, validate_email
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from ..config import Settings
from ..db import transaction
from .passwords import hash_password
from .users import User, insert_user, taken_fields

USERNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{3,50}$")
PASSWORD_MIN, PASSWORD_MAX = 8, 1024


class RegistrationError(Exception):
    def __init__(self, field: str, message: str, status: int = 422):
        super().__init__(message)
        self.field, self.message, self.status = field, message, status


def clean_username(username: object) -> str:
    if not isinstance(username, str) or not USERNAME_RE.fullmatch(username):
        raise RegistrationError("username", "3–50 characters: letters, digits, '_', '.' or '-'")
    return username


def clean_email(email: object) -> str:
    if not isinstance(email, str) or len(email) > 254 or any(unicodedata.category(c) in ("Cc", "Cf") for c in email):
        raise RegistrationError("email", "not a valid email address")
    try:
        return validate_email(email, check_deliverability=False).normalized
    except EmailNotValidError:
        raise RegistrationError("email", "not a valid email address") from None


def clean_password(password: object) -> str:
    if not isinstance(password, str) or not (PASSWORD_MIN <= len(password) <= PASSWORD_MAX):
        raise RegistrationError("password", f"{PASSWORD_MIN}–{PASSWORD_MAX} characters")
    if "\x00" in password:
        raise RegistrationError("password", "must not contain NUL characters")
    return password


async def register_user(engine: AsyncEngine, settings: Settings, username: object, email: object, password: object) -> User:
    username = clean_username(username)
    email = clean_email(email)
    password = clean_password(password)
    hashed = await hash_password(password, settings.bcrypt_rounds)
    try:
        async with transaction(engine) as conn:
            taken = await taken_fields(conn, username, email)
            if taken:
                raise RegistrationError(taken[0], f"this {taken[0]} is already taken", 409)
            return await insert_user(conn, username, email, hashed)
    except IntegrityError:  # lost a race with a concurrent registration
        async with engine.connect() as conn:
            taken = await taken_fields(conn, username, email) or ["username"]
        raise RegistrationError(taken[0], f"this {taken[0]} is already taken", 409) from None
