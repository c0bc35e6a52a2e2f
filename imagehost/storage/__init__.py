"""Object storage: a local folder or an S3-compatible bucket, behind one interface."""

from __future__ import annotations

from contextlib import AsyncExitStack

from ..config import Settings
from .base import (
    InvalidKey,
    ObjectChanged,
    ObjectInfo,
    ObjectNotFound,
    PresignedPut,
    Storage,
    StorageError,
    check_key,
)
from .local import LocalStorage
from .s3 import S3Storage

__all__ = [
    "InvalidKey",
    "LocalStorage",
    "ObjectChanged",
    "ObjectInfo",
    "ObjectNotFound",
    "PresignedPut",
    "S3Storage",
    "Storage",
    "StorageError",
    "app_routes",
    "check_key",
    "open_storage",
]


def app_routes(settings: Settings) -> dict[str, str]:
    """The routes the configured backend needs the app to serve (name → path)."""
    return (S3Storage if settings.storage_backend == "s3" else LocalStorage).APP_ROUTES


async def open_storage(settings: Settings, stack: AsyncExitStack) -> Storage:
    if settings.storage_backend == "s3":
        return await S3Storage.open(settings, stack)
    return LocalStorage(settings.local_storage_path, settings.public_base_url, settings.secret_key)
