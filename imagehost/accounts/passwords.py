"""Password hashing with bcrypt, always in an executor.

bcrypt only reads the first 72 bytes of its input (and bcrypt 5 raises past that),
so the password is first reduced to base64(SHA-256(password)): 44 ASCII bytes, no NUL,
every byte of a long password counts.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib

import bcrypt

BCRYPT_ROUNDS = 12


def _prehash(password: str) -> bytes:
    return base64.b64encode(hashlib.sha256(password.encode("utf-8")).digest())


def hash_password_sync(password: str, rounds: int = BCRYPT_ROUNDS) -> str:
    return bcrypt.hashpw(_prehash(password), bcrypt.gensalt(rounds)).decode("ascii")


def verify_password_sync(password: str, hashed: str) -> bool:
    try:
        return bcrypt.checkpw(_prehash(password), hashed.encode("ascii"))
    except ValueError:
        return False


async def hash_password(password: str, rounds: int = BCRYPT_ROUNDS) -> str:
    return await asyncio.get_running_loop().run_in_executor(None, hash_password_sync, password, rounds)


async def verify_password(password: str, hashed: str) -> bool:
    return await asyncio.get_running_loop().run_in_executor(None, verify_password_sync, password, hashed)


@functools.cache
def dummy_hash(rounds: int = BCRYPT_ROUNDS) -> str:
    """Verified against when the user does not exist, so both answers take the same time
    (made once per cost)."""
    return hash_password_sync("imagehost-dummy-password", rounds)


async def dummy_hash_async(rounds: int = BCRYPT_ROUNDS) -> str:
    """`dummy_hash`, computed in the executor rather than on the loop."""
    return await asyncio.get_running_loop().run_in_executor(None, dummy_hash, rounds)
