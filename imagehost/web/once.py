"""Values a page shows exactly once, across a redirect (post/redirect/get).

A form that creates a secret (an API key) redirects to a GET; the secret waits in the
session for that GET and leaves it as it is read, so a reload shows it no more and
creates nothing. The session is an encrypted cookie: the secret travels back to the
browser encrypted, once, and the GET's answer replaces the cookie without it. Pages that
show such a value are sent `Cache-Control: no-store`, so the back button cannot show it
again either.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp_session import get_session


async def keep_once(request: web.Request, slot: str, value: dict[str, str]) -> None:
    session = await get_session(request)
    session[slot] = value


async def take_once(request: web.Request, slot: str) -> dict[str, str] | None:
    session = await get_session(request)
    value: Any = session.pop(slot, None)
    if not isinstance(value, dict):
        return None
    return {str(k): str(v) for k, v in value.items()}
