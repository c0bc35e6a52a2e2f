"""One error type. Domain code raises these; `imagehost.http.errors` turns them into the
JSON envelope `{"error": message, "code": code, "detail": ...}` for /api and an error
page for HTML.

Clients decide by `code`, never by the message: the codes below are the stable list
(documented in docs/DESIGN.md and in the OpenAPI document); the message is for people.
"""

from __future__ import annotations

from typing import Any

# Every code a client can receive, with what it means. A code not listed here cannot be
# raised (AppError refuses it), so this table is the whole vocabulary.
CODES: dict[str, str] = {
    # 400
    "bad_request": "The request is malformed in a way no more specific code names.",
    "malformed_json": "The body is not a JSON object (or is nested too deeply).",
    "malformed_multipart": "The body is not multipart/form-data with the image in a field named `file`.",
    "no_file": "The multipart body has no file field, or more than one.",
    "invalid_cursor": "The `cursor` query parameter is not one this server gave out.",
    "invalid_limit": "The `limit` query parameter is not an integer from 1 to 100.",
    "length_required": "A signed upload URL was used without a Content-Length.",
    "length_mismatch": "The body is shorter or longer than the length the upload URL was signed for.",
    "unsupported_format": "oEmbed: the asked `format` is not served (only `json` is).",
    # 401
    "authentication_required": "No credential was sent: log in, or send `Authorization: Bearer <key or token>`.",
    "invalid_credentials": "The username and password, API key or token are wrong, expired or revoked.",
    "account_disabled": "The account is disabled by an admin: it cannot sign in, and its sessions, tokens and "
    "API keys are refused.",
    "otp_required": "The password was right and the account has two-factor sign-in: send the code from the "
    "authenticator app (or a recovery code) as `otp`.",
    "otp_invalid": "The two-factor code is wrong, too old or already used (a code is accepted once).",
    # 403
    "forbidden": "The caller may not do this.",
    "csrf_failed": "A cookie-authenticated request failed the CSRF check (origin or token).",
    "registration_closed": "This server does not accept new accounts.",
    "invite_required": "Registration on this server is by invitation: register through the link you were sent.",
    "invite_invalid": "The invitation link cannot be used; `detail.reason` says why: unknown, expired, used_up "
    "or revoked.",
    "api_key_not_allowed": "This action needs a login (session or token), not an API key.",
    "wrong_password": "The current password, asked to confirm an account change, is wrong; nothing changed.",
    "upload_url_invalid": "The signed upload URL is malformed, tampered with or expired.",
    # 404
    "not_found": "No such thing, or it belongs to someone else.",
    "upload_expired": "The upload was not finished in time; start again.",
    # 405
    "method_not_allowed": "The route exists but not with this method.",
    # 409
    "conflict": "The request conflicts with the current state.",
    "field_taken": "The username or email is already taken; `detail.field` names it.",
    "upload_url_used": "This signed upload URL was already used.",
    "upload_changed": "The uploaded object was replaced while the server checked it; upload again.",
    "last_admin": "The instance's last admin cannot be demoted, disabled or deleted: make another admin first.",
    # 413
    "file_too_large": "The file is larger than the server accepts; `detail.max_bytes` says the limit.",
    "quota_exceeded": "The upload would exceed the account's storage quota.",
    # 415
    "unsupported_type": "The bytes are not an accepted image type; `detail.allowed` lists the accepted ones.",
    "type_mismatch": "The stored bytes are of another type than was declared or signed.",
    # 422
    "invalid_input": "A field is missing or invalid; `detail.field` names it where there is one.",
    "invalid_image": "The file is not a well-formed image of its type (truncated or corrupt).",
    "too_many_pixels": "The image is larger than the pixel limit; `detail.max_pixels` says the limit.",
    "size_mismatch": "The stored bytes are of another size than was declared.",
    "nothing_uploaded": "Nothing has been uploaded to the signed URL yet.",
    # 429
    "rate_limited": "Too many attempts; `detail.retry_after` (and the Retry-After header) says when to retry.",
    # 500
    "internal_error": "Something went wrong on the server; `detail.request_id` identifies it in the logs.",
    # 503
    "unavailable": "A dependency is down; `detail` names which.",
    "storage_unavailable": "The object storage cannot be reached right now; retry later.",
    "database_unavailable": "The database cannot be reached right now; retry later.",
}


class AppError(Exception):
    status = 400
    code = "bad_request"
    message = "bad request"

    def __init__(
        self,
        message: str | None = None,
        detail: Any = None,
        headers: dict[str, str] | None = None,
        *,
        code: str | None = None,
    ) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message
        self.detail = detail
        self.headers = headers or {}
        if code is not None:
            self.code = code
        if self.code not in CODES:
            raise ValueError(f"error code {self.code!r} is not in imagehost.errors.CODES")


class BadRequest(AppError):
    status, code, message = 400, "bad_request", "bad request"


class Unauthorized(AppError):
    status, code, message = 401, "invalid_credentials", "authentication required"

    def __init__(self, message: str | None = None, detail: Any = None, *, code: str | None = None) -> None:
        super().__init__(message, detail, {"WWW-Authenticate": "Bearer"}, code=code)


class Forbidden(AppError):
    status, code, message = 403, "forbidden", "forbidden"


class NotFound(AppError):
    status, code, message = 404, "not_found", "not found"


class Conflict(AppError):
    status, code, message = 409, "conflict", "conflict"


class PayloadTooLarge(AppError):
    status, code, message = 413, "file_too_large", "file too large"


class UnsupportedMediaType(AppError):
    status, code, message = 415, "unsupported_type", "unsupported file type"


class Unprocessable(AppError):
    status, code, message = 422, "invalid_input", "invalid input"


class TooManyRequests(AppError):
    status, code, message = 429, "rate_limited", "too many requests"

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        super().__init__(message, {"retry_after": retry_after}, {"Retry-After": str(retry_after)})


class Unavailable(AppError):
    status, code, message = 503, "unavailable", "service unavailable"


class QuotaExceeded(AppError):
    status, code, message = 413, "quota_exceeded", "storage quota exceeded"
