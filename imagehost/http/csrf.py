"""CSRF for cookie-authenticated requests, checked from headers without reading the body.

For every state-changing request that carries our session cookie:
1. `Sec-Fetch-Site` (when sent) must be `same-origin` or `none`, and `Origin` (when sent)
   must be this site: a foreign origin is refused outright.
2. A token must match the session's: the `X-CSRF-Token` header (JavaScript), or, for a
   urlencoded form, the `csrf_token` field, which `read_form` checks when the handler
   reads the (small) form. A handler that never reads its form cannot have acted on it,
   and the middleware refuses the request if a form was left unchecked.
Requests without the cookie are exempt unless they are forms outside /api (a form without
a session can never pass, which also stops login CSRF): a browser never adds a bearer token
by itself, and the API never starts a session.
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp_session import get_session
from multidict import MultiDictProxy

from ..accounts.identity import SESSION_COOKIE
from ..errors import Forbidden
from ..typedefs import CSRF_FORM_PENDING, SETTINGS, Handler

SAFE_METHODS = {"GET", "HEAD", "OPTIONS", "TRACE"}
# Credentials in the URL itself (an HMAC-signed upload URL, a per-image deletion secret):
# a forged request would need the secret, so these need no session token.
EXEMPT_PREFIXES = ("/api/uploads/", "/d/")
# The share target's fallback (imagehost/web/pwa.py `share_target`): it reads nothing and
# changes nothing (it only redirects), and a browser cannot add a CSRF token to a share.
EXEMPT_PATHS = frozenset({"/share"})
FORM_TYPES = ("application/x-www-form-urlencoded",)


def _origin_of(url: str) -> str:
    p = urlsplit(url)
    return f"{p.scheme}://{p.netloc}".lower()


def _allowed_origins(request: web.Request) -> set[str]:
    own = {_origin_of(request.app[SETTINGS].public_base_url)}
    own.add(f"{request.scheme}://{request.host}".lower())
    return own


@web.middleware
async def csrf_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request[CSRF_FORM_PENDING] = False
    if request.method in SAFE_METHODS or request.path.startswith(EXEMPT_PREFIXES) or request.path in EXEMPT_PATHS:
        return await handler(request)
    if SESSION_COOKIE not in request.cookies and (
        request.path.startswith("/api/") or request.content_type not in FORM_TYPES
    ):
        # No ambient credential (a script with a bearer token, or anonymous JSON; `curl -d`
        # sends JSON as a form): a forged request could not act as anyone, and the API never
        # starts a session, so there is no login CSRF to stop either.
        return await handler(request)
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        raise Forbidden("cross-site request refused (CSRF)", code="csrf_failed")
    origin = request.headers.get("Origin")
    if origin is not None and origin.lower() not in _allowed_origins(request):
        raise Forbidden("cross-origin request refused (CSRF)", code="csrf_failed")
    session = await get_session(request)
    expected = session.get("csrf") or ""
    header = request.headers.get("X-CSRF-Token")
    if header is not None:
        if not expected or not hmac.compare_digest(header, expected):
            raise Forbidden("CSRF token missing or invalid", code="csrf_failed")
        return await handler(request)
    if request.content_type in FORM_TYPES:
        request[CSRF_FORM_PENDING] = True
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            # A redirect is a success too: a handler that redirects without having checked
            # its form must not have acted on it unchecked.
            if exc.status < 400 and request[CSRF_FORM_PENDING]:
                raise Forbidden("CSRF token missing or invalid", code="csrf_failed") from None
            raise
        if request[CSRF_FORM_PENDING]:
            raise Forbidden("CSRF token missing or invalid", code="csrf_failed")
        return response
    raise Forbidden("CSRF token missing or invalid", code="csrf_failed")


async def read_form(request: web.Request) -> MultiDictProxy[str | bytes | bytearray | web.FileField]:
    """The urlencoded form, after checking its `csrf_token` when the middleware asked for it."""
    if request.content_type not in FORM_TYPES:
        raise Forbidden("expected a form")
    form = await request.post()
    if request.get(CSRF_FORM_PENDING):
        session = await get_session(request)
        expected = session.get("csrf") or ""
        given = form.get("csrf_token")
        if not expected or not isinstance(given, str) or not hmac.compare_digest(given, expected):
            raise Forbidden("CSRF token missing or invalid", code="csrf_failed")
        request[CSRF_FORM_PENDING] = False
    return form
