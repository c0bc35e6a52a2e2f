"""Request id and access log: id, method, path (never the query: it may carry a
signature), status, duration in ms, and the user id once known."""

from __future__ import annotations

import asyncio
import re
import time

from aiohttp import web
from loguru import logger

from ..db import new_id
from ..typedefs import IDENTITY, REQUEST_ID, Handler
from .errors import CLIENT_CLOSED_REQUEST

_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def request_id(request: web.Request) -> str:
    """The request's id (see `chosen_id`), kept on the request."""
    rid = request[REQUEST_ID] = chosen_id(request.headers.get("X-Request-ID", ""))
    return rid


def chosen_id(incoming: str) -> str:
    """The client's X-Request-ID if it is a sane one, else a new one."""
    return incoming if _ID_RE.fullmatch(incoming) else new_id(9)


def _info_enabled() -> bool:
    """Whether any loguru handler takes INFO (loguru keeps the lowest level of its
    handlers; without it, assume yes): building a bound logger per request is skipped
    when the line would be dropped anyway (LOG_LEVEL=WARNING)."""
    core = getattr(logger, "_core", None)
    return core is None or getattr(core, "min_level", 0) <= _INFO


_INFO = 20


def log_request(request: web.Request, rid: str, status: int, seconds: float) -> None:
    identity = request.get(IDENTITY)
    log_line(rid, request.method, request.path, status, seconds, identity.user.id if identity else None)


def log_line(rid: str, method: str, path: str, status: int, seconds: float, user_id: str | None) -> None:
    """One request's line (also written by the hot `/i/` path, which has no request)."""
    if not _info_enabled():
        return
    logger.bind(
        request_id=rid,
        method=method,
        path=path,
        status=status,
        duration_ms=round(seconds * 1000, 2),
        user_id=user_id,
    ).info("{} {} {}", method, path, status)


@web.middleware
async def access_log_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    rid = request_id(request)
    start = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers["X-Request-ID"] = rid
        return response
    except web.HTTPException as exc:
        status = exc.status
        exc.headers["X-Request-ID"] = rid
        raise
    except (asyncio.CancelledError, ConnectionResetError):
        status = CLIENT_CLOSED_REQUEST  # the client went away: no answer was sent
        raise
    finally:
        log_request(request, rid, status, time.perf_counter() - start)
