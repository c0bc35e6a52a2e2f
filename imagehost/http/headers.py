"""Security headers on every response. HTML gets a strict CSP; image responses keep
the sandboxing CSP their handler sets."""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from urllib.parse import urlsplit

from aiohttp import web

from ..typedefs import Handler, Middleware


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def build_csp(extra_img: Iterable[str] = (), extra_connect: Iterable[str] = ()) -> str:
    img = " ".join(["'self'", "data:", "blob:", *filter(None, extra_img)])
    connect = " ".join(["'self'", *filter(None, extra_connect)])
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; "
        f"img-src {img}; connect-src {connect}; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    )


def security_headers_middleware(image_origin: str = "", upload_origin: str = "") -> Middleware:
    csp = build_csp([_origin(image_origin)], [_origin(upload_origin)])

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            _apply(exc.headers, exc.content_type, csp)
            raise
        _apply(response.headers, response.content_type, csp)
        return response

    return middleware


def _apply(headers: MutableMapping[str, str], content_type: str, csp: str) -> None:
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
    if content_type == "text/html":
        headers.setdefault("Content-Security-Policy", csp)
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
