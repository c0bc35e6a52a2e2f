"""`GET /api/health`: the database (`SELECT 1`) and storage, each under a short timeout."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from aiohttp import web
from loguru import logger

from .db import ping
from .http.errors import envelope
from .typedefs import ENV

TIMEOUT = 3.0


async def _probe(name: str, coro: Awaitable[object]) -> str:
    try:
        await asyncio.wait_for(coro, TIMEOUT)
        return "ok"
    except Exception as exc:  # any failure means "down"; the reason goes to the log only
        logger.warning("health: {} unavailable: {}", name, type(exc).__name__)
        return "unavailable"


async def health(request: web.Request) -> web.Response:
    env = request.app[ENV]
    database, storage = await asyncio.gather(
        _probe("database", ping(env.engine)),
        _probe("storage", env.storage.check()),
    )
    parts = {"database": database, "storage": storage}
    if database == storage == "ok":
        return web.json_response({"status": "ok", **parts}, headers={"Cache-Control": "no-store"})
    failing = [k for k, v in parts.items() if v != "ok"]
    return web.json_response(
        {"status": "error", **parts, **envelope(f"{' and '.join(failing)} unavailable", "unavailable", parts)},
        status=503,
        headers={"Cache-Control": "no-store"},
    )
