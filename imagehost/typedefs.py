"""Every piece of app and request state has a typed key, defined here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.typedefs import Middleware as AiohttpMiddleware
from sqlalchemy.ext.asyncio import AsyncEngine

from .config import Settings

if TYPE_CHECKING:
    from .accounts.identity import Identity
    from .env import Env
    from .images.derivatives import DerivativePool
    from .images.files import ActiveKeys, HotImages
    from .metrics import Metrics
    from .storage import Storage
    from .web.assets import Assets

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = AiohttpMiddleware  # what `@web.middleware` makes

SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", AsyncEngine)
STORAGE: web.AppKey[Storage] = web.AppKey("storage")
ENV: web.AppKey[Env] = web.AppKey("env")
DERIVATIVES: web.AppKey[DerivativePool] = web.AppKey("derivatives")
ASSETS: web.AppKey[Assets] = web.AppKey("assets")
ACTIVE_KEYS: web.AppKey[ActiveKeys] = web.AppKey("active_keys")
HOT_IMAGES: web.AppKey[HotImages] = web.AppKey("hot_images")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")

REQUEST_ID = web.RequestKey("request_id", str)
CLIENT_ADDR = web.RequestKey("client_addr", str)
IDENTITY: web.RequestKey[Identity | None] = web.RequestKey("identity")
CSRF_FORM_PENDING = web.RequestKey("csrf_form_pending", bool)
METRICS_ALLOWED = web.RequestKey("metrics_allowed", bool)
