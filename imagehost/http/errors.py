"""One envelope for every error: JSON `{"error", "code", "detail"}` under /api (or when the
client asks for JSON), an error page otherwise. No stack trace ever reaches a client."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from loguru import logger
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from ..errors import AppError
from ..storage import InvalidKey, StorageError
from ..typedefs import REQUEST_ID, Handler
from ..web.context import render

_TITLES = {
    400: "Bad request",
    401: "Log in required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Too large",
    415: "Unsupported type",
    422: "Invalid input",
    429: "Too many requests",
    500: "Something went wrong",
    503: "Service unavailable",
}


def wants_json(request: web.Request) -> bool:
    if request.path.startswith("/api/") or request.path == "/api":
        return True
    accept = request.headers.get("Accept", "")
    return "application/json" in accept and "text/html" not in accept


CLIENT_CLOSED_REQUEST = 499  # nginx's name for it: the client went away before the answer

# The codes of errors aiohttp raises itself (routing, body size).
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "file_too_large"}


def envelope(message: str, code: str, detail: Any = None) -> dict[str, Any]:
    """The JSON error shape, everywhere: `{"error", "code", "detail"}`."""
    return {"error": message, "code": code, "detail": detail}


async def error_response(
    request: web.Request,
    status: int,
    message: str,
    code: str,
    detail: Any = None,
    headers: dict[str, str] | None = None,
) -> web.StreamResponse:
    if wants_json(request):
        return web.json_response(envelope(message, code, detail), status=status, headers=headers)
    try:
        resp = await render(
            request, "error.html", {"status": status, "title": _TITLES.get(status, "Error"), "message": message}, status
        )
    except Exception:  # the template itself failed: fall back to plain text
        resp = web.Response(text=f"{status} {message}\n", status=status)
    if headers:
        resp.headers.update(headers)
    return resp


def _is_db_down(exc: Exception) -> bool:
    if isinstance(exc, (OperationalError, InterfaceError, PoolTimeout)):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except AppError as exc:
        return await error_response(request, exc.status, exc.message, exc.code, exc.detail, exc.headers)
    except web.HTTPRedirection:
        raise
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After", "WWW-Authenticate")}
        message = exc.reason.lower() if exc.status != 413 else "file too large"
        code = _HTTP_CODES.get(exc.status, "bad_request")
        return await error_response(request, exc.status, message, code, None, headers)
    except InvalidKey:
        return await error_response(request, 404, "not found", "not_found")
    except StorageError as exc:
        logger.bind(request_id=request.get(REQUEST_ID)).warning("storage unavailable: {}", exc)
        return await error_response(request, 503, "storage unavailable", "storage_unavailable")
    except ConnectionResetError:
        # The client hung up (mid-upload, say): there is no one to answer, and nothing
        # went wrong here. The clean-up already ran; the access log says 499.
        logger.bind(request_id=request.get(REQUEST_ID)).info("client disconnected")
        return web.Response(status=CLIENT_CLOSED_REQUEST)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        request_id = request.get(REQUEST_ID)
        if _is_db_down(exc):
            logger.bind(request_id=request_id).warning("database unavailable: {}", type(exc).__name__)
            return await error_response(request, 503, "database unavailable", "database_unavailable")
        logger.bind(request_id=request_id).opt(exception=exc).error("unhandled error")
        return await error_response(request, 500, "internal error", "internal_error", {"request_id": request_id})
