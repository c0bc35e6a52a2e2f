"""One error type. Domain code raises these; `imagehost.http.errors` turns them into
the JSON envelope `{"error": ..., "detail": ...}` for /api and an error page for HTML."""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    status = 400
    message = "bad request"

    def __init__(self, message: str | None = None, detail: Any = None, headers: dict[str, str] | None = None):
        super().__init__(message or self.message)
        self.message = message or self.message
        self.detail = detail
        self.headers = headers or {}


class BadRequest(AppError):
    status, message = 400, "bad request"


class Unauthorized(AppError):
    status, message = 401, "authentication required"

    def __init__(self, message: str | None = None, detail: Any = None):
        super().__init__(message, detail, {"WWW-Authenticate": "Bearer"})


class Forbidden(AppError):
    status, message = 403, "forbidden"


class NotFound(AppError):
    status, message = 404, "not found"


class Conflict(AppError):
    status, message = 409, "conflict"


class PayloadTooLarge(AppError):
    status, message = 413, "file too large"


class UnsupportedMediaType(AppError):
    status, message = 415, "unsupported file type"


class Unprocessable(AppError):
    status, message = 422, "invalid input"


class TooManyRequests(AppError):
    status, message = 429, "too many requests"

    def __init__(self, retry_after: int, message: str | None = None):
        super().__init__(message, {"retry_after": retry_after}, {"Retry-After": str(retry_after)})


class Unavailable(AppError):
    status, message = 503, "service unavailable"


class QuotaExceeded(AppError):
    status, message = 413, "storage quota exceeded"
