"""What every use case works with: the database engine, the object storage, the
settings, absolute URLs, the libvips worker pool and the background tasks. Built once
when the app starts (`app[ENV]`) and by the CLI; services take it as their first
argument, in every feature alike."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncEngine

from .config import Settings
from .images.derivatives import DerivativePool
from .storage import Storage


class Background:
    """Work that goes on after a request has answered (an upload's display size). Each
    task logs its own failure; `close()` waits for them a little, then cancels the rest."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None], what: str) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                logger.opt(exception=t.exception()).warning("background {} failed", what)

        task.add_done_callback(done)

    async def drain(self) -> None:
        """Wait until nothing runs (tests; the CLI)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self, grace: float = 10.0) -> None:
        if not self._tasks:
            return
        _done, pending = await asyncio.wait(self._tasks, timeout=grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


@dataclass(frozen=True)
class Env:
    engine: AsyncEngine
    storage: Storage
    settings: Settings
    url: Callable[..., str]  # url(route_name, **parts): an absolute URL (routes.AbsoluteUrls)
    derivatives: DerivativePool
    background: Background = field(default_factory=Background)
