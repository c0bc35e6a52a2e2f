"""JWT access tokens (PyJWT): HS256 only, with exp, iat, sub, a type claim and `ver`,
the user's auth version when the token was issued: the identity middleware compares it
with the user row, so bumping the version (a password change or reset) ends every JWT."""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

import jwt

from ..db import utcnow

ALGORITHM = "HS256"
TOKEN_TYPE = "access"


def jwt_key(secret_key: str) -> bytes:
    """A key of its own, derived from SECRET_KEY, so a JWT key never doubles as a session key."""
    return hmac.new(secret_key.encode(), b"imagehost-jwt-v1", hashlib.sha256).digest()


def issue_access_token(secret_key: str, user_id: str, minutes: int, version: int = 1) -> str:
    now = utcnow()
    claims = {
        "sub": user_id,
        "iat": now,
        "exp": now + timedelta(minutes=minutes),
        "typ": TOKEN_TYPE,
        "ver": version,
    }
    return jwt.encode(claims, jwt_key(secret_key), algorithm=ALGORITHM)


def decode_access_token(secret_key: str, token: str) -> tuple[str, int] | None:
    """The user id and the auth version the token was issued with, or None for any token
    that is not a valid, unexpired access token of ours. A token from before versions
    existed counts as version 1, the version every account started with."""
    try:
        claims = jwt.decode(
            token,
            jwt_key(secret_key),
            algorithms=[ALGORITHM],
            options={"require": ["exp", "iat", "sub", "typ"]},
        )
    except jwt.PyJWTError:
        return None
    if claims.get("typ") != TOKEN_TYPE or not isinstance(claims.get("sub"), str):
        return None
    version = claims.get("ver", 1)
    if isinstance(version, bool) or not isinstance(version, int):
        return None
    subject: str = claims["sub"]
    return subject, version
