"""The application factory: the map of the whole program."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import aiohttp_jinja2
import jinja2
from aiohttp import web
from aiohttp_session import session_middleware
from aiohttp_session.cookie_storage import EncryptedCookieStorage
from loguru import logger

from . import db
from .accounts.identity import SESSION_COOKIE, identity_middleware
from .config import Settings
from .env import Env
from .http.access import access_log_middleware
from .http.csrf import csrf_middleware
from .http.errors import error_middleware
from .http.forwarded import client_address_middleware
from .http.headers import security_headers_middleware
from .images import sweep
from .images.derivatives import derivative_pool
from .images.files import ActiveKeys, HotImages, hot_image_middleware
from .metrics import Metrics, metrics_middleware
from .routes import AbsoluteUrls, setup_routes
from .storage import StorageError, app_routes, open_storage
from .typedefs import ACTIVE_KEYS, ASSETS, DERIVATIVES, ENGINE, ENV, HOT_IMAGES, METRICS, SETTINGS, STORAGE
from .web.assets import TEMPLATES_DIR, Assets


class StartupError(Exception):
    """A dependency is unreachable at start; the message names it in one line."""


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        middlewares=[
            hot_image_middleware(),  # answers hot small images by itself; the rest go on
            access_log_middleware,
            metrics_middleware,
            security_headers_middleware(image_origin=_image_origin(settings), upload_origin=_upload_origin(settings)),
            error_middleware,
            client_address_middleware(settings.trusted_proxies),
            session_middleware(_session_storage(settings)),
            identity_middleware,
            csrf_middleware,
        ],
        client_max_size=1024 * 1024,  # forms and JSON; uploads are streamed and capped separately
    )
    app[SETTINGS] = settings
    app[ASSETS] = Assets()
    app[ACTIVE_KEYS] = ActiveKeys()
    app[HOT_IMAGES] = HotImages()
    app[METRICS] = Metrics()
    aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(TEMPLATES_DIR), autoescape=True)

    # External resources, in the order they depend on each other.
    app.cleanup_ctx.append(database_ctx)
    app.cleanup_ctx.append(storage_ctx)
    app.cleanup_ctx.append(derivatives_ctx)
    app.cleanup_ctx.append(env_ctx)
    app.cleanup_ctx.append(sweep_ctx)

    setup_routes(app, app_routes(settings))
    return app


def _session_storage(settings: Settings) -> EncryptedCookieStorage:
    key = hashlib.sha256(b"imagehost-session-v1:" + settings.secret_key.encode()).digest()
    return EncryptedCookieStorage(
        key,
        cookie_name=SESSION_COOKIE,
        httponly=True,
        samesite="Lax",
        secure=settings.cookie_secure,
        max_age=30 * 24 * 3600,
    )


def _image_origin(settings: Settings) -> str:
    # Local storage: the app serves the images at PUBLIC_BASE_URL, which a page opened
    # under another name for this machine (127.0.0.1 for localhost) must be able to show.
    return settings.r2_public_url if settings.storage_backend == "s3" else settings.public_base_url


def _upload_origin(settings: Settings) -> str:
    return settings.s3_endpoint if settings.storage_backend == "s3" else ""


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    engine = db.create_engine(app[SETTINGS])
    try:
        await asyncio.wait_for(db.ping(engine), 10)
    except Exception as exc:
        await engine.dispose()
        raise StartupError(f"database unreachable: {type(exc).__name__}: {_first_line(exc)}") from None
    app[ENGINE] = engine
    yield
    await engine.dispose()


async def storage_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    async with AsyncExitStack() as stack:
        storage = await open_storage(settings, stack)
        await storage.start()
        try:
            await asyncio.wait_for(storage.check(), 10)
        except (TimeoutError, StorageError, OSError) as exc:
            raise StartupError(f"storage unreachable ({settings.storage_backend}): {_first_line(exc)}") from None
        app[STORAGE] = storage
        yield


async def derivatives_ctx(app: web.Application) -> AsyncIterator[None]:
    """The libvips worker processes (each starts on first use)."""
    pool = derivative_pool(app[SETTINGS])
    app[DERIVATIVES] = pool
    yield
    await pool.close()


async def env_ctx(app: web.Application) -> AsyncIterator[None]:
    """What the services work with, once the engine, the storage and the workers are up;
    on the way out, work still running in the background gets a moment to finish."""
    settings = app[SETTINGS]
    urls = AbsoluteUrls(app.router, settings.public_base_url)
    env = app[ENV] = Env(app[ENGINE], app[STORAGE], settings, urls, app[DERIVATIVES])
    yield
    await env.background.close()


async def sweep_ctx(app: web.Application) -> AsyncIterator[None]:
    """The periodic sweep (every GC_INTERVAL_SECONDS; 0 turns it off) and, beside it, the
    cheap one that removes expired uploads within a minute."""
    interval = app[SETTINGS].gc_interval_seconds
    tasks = (
        [
            asyncio.create_task(sweep.run_periodically(app[ENV], interval, app[METRICS].record_sweep)),
            asyncio.create_task(sweep.expire_periodically(app[ENV])),
        ]
        if interval
        else []
    )
    yield
    for task in tasks:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        except Exception:  # pragma: no cover - the loops log their own failures
            logger.exception("sweep task failed")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
