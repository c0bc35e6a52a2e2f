"""Every piece of app and request state has a typed key, defined here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from .config import Settings

if TYPE_CHECKING:
    from .accounts.identity import Identity
    from .images.serve import ActiveKeys
    from .storage import Storage
    from .web.assets import Assets

SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", AsyncEngine)
STORAGE: web.AppKey[Storage] = web.AppKey("storage")
ASSETS: web.AppKey[Assets] = web.AppKey("assets")
ACTIVE_KEYS: web.AppKey[ActiveKeys] = web.AppKey("active_keys")

REQUEST_ID = web.RequestKey("request_id", str)
CLIENT_ADDR = web.RequestKey("client_addr", str)
IDENTITY: web.RequestKey[Identity | None] = web.RequestKey("identity")
CSRF_FORM_PENDING = web.RequestKey("csrf_form_pending", bool)
