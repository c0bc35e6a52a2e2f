"""(filled in by its feature)"""

from __future__ import annotations

from aiohttp import web


def setup_routes(app: web.Application) -> None:
    pass
