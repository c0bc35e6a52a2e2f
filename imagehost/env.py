"""What every use case works with: the database engine, the object storage and the
settings. Built once when the app starts (`app[ENV]`) and by the CLI; services take it
as their first argument, in every feature alike."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from .config import Settings
from .storage import Storage


@dataclass(frozen=True)
class Env:
    engine: AsyncEngine
    storage: Storage
    settings: Settings
    url: Callable[..., str]  # url(route_name, **parts): an absolute URL (routes.AbsoluteUrls)
