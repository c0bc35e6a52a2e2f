"""Two-factor sign-in with TOTP (RFC 6238, `pyotp`): secrets, codes and recovery codes.

The secret is stored sealed (AES-256-GCM under a key derived from SECRET_KEY, with the
user's id as associated data, so a sealed secret copied onto another account does not
open): the server must read it back to check a code, so it cannot be hashed, and a copy
of the database alone does not give anyone's codes. Changing SECRET_KEY makes the sealed
secrets unreadable: those accounts then sign in with a recovery code (hashed without the
key) and enrol again.

A code is accepted for the current 30-second step or one step either side (clock drift),
and only for a step later than the last one accepted for that account (`totp_last_step`,
moved forward with a conditional UPDATE, so two requests racing with one code cannot both
win): a code is never accepted twice, and neither is an older one once a newer one was.

Recovery codes: ten per enrolment, 80 random bits each, stored as SHA-256 of the user id
and the code. A fast hash is right for them: with 80 bits there is nothing to brute-force
(unlike a password), and the user id in the hash makes each account's table of hashes its
own. Each is used once (a conditional UPDATE sets `used_at`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time

import pyotp
import segno
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..db import new_id, utcnow
from ..tables import recovery_codes as rc
from ..tables import users

STEP_SECONDS = 30
DIGITS = 6
VALID_WINDOW = 1  # steps either side of now
RECOVERY_COUNT = 10
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read off paper
_RECOVERY_LEN = 16  # 16 characters of 31: 79 bits
_CODE_RE = re.compile(r"^[0-9]{6}$")
_SEPARATORS = re.compile(r"[\s-]+")
CODE_MAX = 64  # longer input is no code of ours


# --------------------------------------------------------------------------- secrets


def new_secret() -> str:
    """A new base32 secret of 160 bits (RFC 4226's recommended length)."""
    return pyotp.random_base32(32)


def _key(secret_key: str) -> bytes:
    return hmac.new(secret_key.encode(), b"imagehost-totp-v1", hashlib.sha256).digest()


def seal(secret_key: str, user_id: str, secret: str) -> str:
    """The secret as stored: 12-byte nonce + ciphertext + tag, base64url (64 characters)."""
    raw = base64.b32decode(secret)
    nonce = secrets.token_bytes(12)
    sealed = nonce + AESGCM(_key(secret_key)).encrypt(nonce, raw, user_id.encode())
    return base64.urlsafe_b64encode(sealed).decode().rstrip("=")


def unseal(secret_key: str, user_id: str, sealed: str) -> str | None:
    """The base32 secret, or None if it cannot be opened (another SECRET_KEY, another user)."""
    try:
        data = base64.urlsafe_b64decode(sealed + "=" * (-len(sealed) % 4))
        raw = AESGCM(_key(secret_key)).decrypt(data[:12], data[12:], user_id.encode())
    except (InvalidTag, ValueError):
        return None
    return base64.b32encode(raw).decode()


def provisioning_uri(secret: str, username: str, issuer: str) -> str:
    """The otpauth:// URI an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(name=username, issuer_name=issuer)


def qr_data_uri(uri: str) -> str:
    """The QR code of `uri` as an SVG data: URI, made here: no image from another host,
    and the page's CSP (img-src 'self' data:) allows it."""
    return str(segno.make(uri, error="m").svg_data_uri(scale=5, border=2, dark="#000", light="#fff"))


def grouped(secret: str) -> str:
    """The secret in groups of four, for typing it into an app."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


# --------------------------------------------------------------------------- codes


def clean_code(code: object) -> str | None:
    """The submitted code without spaces and dashes, lower-cased; None when it cannot be one."""
    if not isinstance(code, str) or not code or len(code) > CODE_MAX:
        return None
    return _SEPARATORS.sub("", code).lower() or None


def is_totp_code(code: str) -> bool:
    return bool(_CODE_RE.match(code))


def matching_step(secret: str, code: str, after: int | None, now: float | None = None) -> int | None:
    """The time step `code` is valid for (now, or one step either side), if that step is
    later than `after` (the last step accepted); else None. Constant-time comparisons."""
    if not is_totp_code(code):
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
    current = int((time.time() if now is None else now) // STEP_SECONDS)
    found = None
    for step in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        if hmac.compare_digest(totp.at(step * STEP_SECONDS), code) and (after is None or step > after):
            found = step
    return found


def new_recovery_codes() -> list[str]:
    codes = []
    for _ in range(RECOVERY_COUNT):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(_RECOVERY_LEN))
        codes.append("-".join(raw[i : i + 4] for i in range(0, _RECOVERY_LEN, 4)))
    return codes


def recovery_hash(user_id: str, code: str) -> str:
    """SHA-256 of the user id and the code as typed without separators."""
    cleaned = clean_code(code) or ""
    return hashlib.sha256(f"{user_id}:{cleaned}".encode()).hexdigest()


# --------------------------------------------------------------------------- stored state


async def totp_state(conn: AsyncConnection, user_id: str) -> tuple[str | None, bool, int | None]:
    """(sealed secret, enabled?, last step accepted)."""
    row = (
        await conn.execute(
            select(users.c.totp_secret, users.c.totp_enabled_at, users.c.totp_last_step).where(users.c.id == user_id)
        )
    ).first()
    if row is None:
        return None, False, None
    return row[0], row[1] is not None, None if row[2] is None else int(row[2])


async def claim_step(conn: AsyncConnection, user_id: str, step: int) -> bool:
    """Record `step` as the last one used, unless a step as late was used already (by a
    request racing this one with the same code): True if this request won."""
    res = await conn.execute(
        update(users)
        .where(users.c.id == user_id, or_(users.c.totp_last_step.is_(None), users.c.totp_last_step < step))
        .values(totp_last_step=step)
    )
    return res.rowcount == 1


async def use_recovery_code(conn: AsyncConnection, user_id: str, code: str) -> bool:
    res = await conn.execute(
        update(rc)
        .where(and_(rc.c.user_id == user_id, rc.c.code_hash == recovery_hash(user_id, code), rc.c.used_at.is_(None)))
        .values(used_at=utcnow())
    )
    return res.rowcount == 1


async def recovery_codes_left(conn: AsyncConnection, user_id: str) -> int:
    rows = (await conn.execute(select(rc.c.id).where(rc.c.user_id == user_id, rc.c.used_at.is_(None)))).all()
    return len(rows)


async def use_code(
    conn: AsyncConnection, secret_key: str, user_id: str, code: object, now: float | None = None
) -> bool:
    """Check a second-factor code for an account with TOTP on and use it up: a TOTP code
    (its step must be later than the last one used) or an unused recovery code. Call in
    a transaction; True if the code was good."""
    cleaned = clean_code(code)
    if cleaned is None:
        return False
    sealed, enabled, last = await totp_state(conn, user_id)
    if not enabled or sealed is None:
        return False
    if is_totp_code(cleaned):
        secret = unseal(secret_key, user_id, sealed)
        step = matching_step(secret, cleaned, last, now) if secret else None
        return step is not None and await claim_step(conn, user_id, step)
    return await use_recovery_code(conn, user_id, cleaned)


async def start_enrolment(conn: AsyncConnection, secret_key: str, user_id: str) -> str:
    """A new secret, stored sealed but not enabled; the base32 secret."""
    secret = new_secret()
    await conn.execute(
        update(users)
        .where(users.c.id == user_id)
        .values(totp_secret=seal(secret_key, user_id, secret), totp_enabled_at=None, totp_last_step=None)
    )
    return secret


async def enable(conn: AsyncConnection, user_id: str, step: int) -> list[str]:
    """Turn TOTP on (the step of the confirming code counts as used) and replace the
    recovery codes; the new codes, to show once."""
    await conn.execute(update(users).where(users.c.id == user_id).values(totp_enabled_at=utcnow(), totp_last_step=step))
    await conn.execute(delete(rc).where(rc.c.user_id == user_id))
    codes = new_recovery_codes()
    await conn.execute(
        rc.insert(),
        [{"id": new_id(), "user_id": user_id, "code_hash": recovery_hash(user_id, c), "used_at": None} for c in codes],
    )
    return codes


async def disable(conn: AsyncConnection, user_id: str) -> None:
    await conn.execute(
        update(users).where(users.c.id == user_id).values(totp_secret=None, totp_enabled_at=None, totp_last_step=None)
    )
    await conn.execute(delete(rc).where(rc.c.user_id == user_id))
