"""The sweep (`imagehost gc`, also run periodically by the server)."""

from __future__ import annotations

import asyncio

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncEngine

from ..config import Settings
from ..storage import Storage


async def sweep(engine: AsyncEngine, storage: Storage, settings: Settings) -> dict[str, int]:
    return {"pending_removed": 0, "orphans_removed": 0}


async def run_periodically(engine: AsyncEngine, storage: Storage, settings: Settings, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            result = await sweep(engine, storage, settings)
            if any(result.values()):
                logger.info("sweep: {}", result)
        except Exception as exc:
            logger.warning("sweep failed: {}: {}", type(exc).__name__, exc)
