"""Reading request bodies: one JSON reader for every endpoint (forms are read by
`csrf.read_form`, uploads are streamed by their handler)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..errors import BadRequest

_HINT = {"hint": "send a JSON object"}


async def read_json(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object, or 400 `malformed_json`. The Content-Type is not insisted
    on (`curl -d` sends JSON labelled as a form); the body is capped by the app's
    `client_max_size`. Nesting deep enough to exhaust the parser's recursion is malformed
    too, not a server error."""
    try:
        data = await request.json()
    except (ValueError, RecursionError):  # JSONDecodeError, bytes that are not UTF-8, too deep
        raise BadRequest("malformed JSON", _HINT, code="malformed_json") from None
    if not isinstance(data, dict):
        raise BadRequest("malformed JSON", _HINT, code="malformed_json")
    return data
