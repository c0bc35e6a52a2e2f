"""The sweep (`imagehost gc`, also run periodically by the server).

1. Pending rows past their expiry (an upload that died with its process, a presigned
   URL never confirmed) go, with their quota; their objects become tombstones.
2. Tombstones in storage_orphans (objects whose delete failed or has not happened yet,
   and presigned keys whose URL may still be used) are deleted from storage, with an
   exponential back-off for those that keep failing.
3. `sweep_partials`: what a write killed mid-way leaves that no row records — the
   local backend's temp files, a bucket's incomplete multipart uploads — once older
   than the pending expiry (no live upload is that old), whatever the bucket's rules.

Safe with several processes at once: a pending row is taken by a conditional DELETE,
a tombstone by a conditional UPDATE of its attempt count; only the process whose
statement matched acts on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from loguru import logger

from ..db import transaction, utcnow
from ..env import Env
from ..storage import InvalidKey, StorageError, check_key
from . import pipeline, store

BATCH = 200
EXPIRY_SWEEP_SECONDS = 30.0  # expired uploads' objects are gone within a minute
MAX_BACKOFF = timedelta(hours=6)


def backoff(attempts: int) -> timedelta:
    return min(MAX_BACKOFF, timedelta(seconds=30 * 2 ** min(attempts, 20)))


async def sweep(env: Env, now: datetime | None = None) -> dict[str, int]:
    """One pass; `now` (naive UTC) is the clock the expiries are read against."""
    engine, storage = env.engine, env.storage
    result = {"pending_removed": 0, "orphans_removed": 0, "orphans_failed": 0}
    now = now or utcnow()
    while True:
        async with engine.connect() as conn:
            ids = await store.expired_pending(conn, now, BATCH)
        for image_id in ids:
            async with transaction(engine) as conn:
                if await store.remove(conn, image_id, status=store.PENDING, orphan_delay=timedelta(0)):
                    result["pending_removed"] += 1
        if len(ids) < BATCH:
            break

    while True:
        async with engine.connect() as conn:
            due = await store.due_orphans(conn, max(now, utcnow()), BATCH)
        for key, attempts in due:
            async with transaction(engine) as conn:
                if not await store.claim_orphan(conn, key, attempts, utcnow() + backoff(attempts)):
                    continue  # another process has it
            try:
                await storage.delete(check_key(key))
            except InvalidKey:
                logger.warning("sweep: dropping an invalid key from storage_orphans: {!r}", key)
            except StorageError as exc:
                result["orphans_failed"] += 1
                logger.warning("sweep: delete of {} failed (attempt {}): {}", key, attempts + 1, exc)
                continue
            async with transaction(engine) as conn:
                await store.drop_orphans(conn, [key])
            result["orphans_removed"] += 1
        if len(due) < BATCH:
            break
    return result


async def sweep_expired(env: Env, now: datetime | None = None) -> dict[str, int]:
    """Expiring uploads past their time: gone for everyone already (every read checks the
    expiry); here their rows go and their objects are deleted. One indexed probe when
    nothing is due, so it runs every EXPIRY_SWEEP_SECONDS."""
    from .service import delete_objects  # the one delete path

    removed = 0
    now = now or utcnow()
    while True:
        async with env.engine.connect() as conn:
            ids = await store.expired_active(conn, now, BATCH)
        for image_id in ids:
            async with transaction(env.engine) as conn:
                row = await store.remove(conn, image_id, status=store.ACTIVE, orphan_delay=timedelta(0))
            if row is not None:
                removed += 1
                await delete_objects(env, row.keys)
        if len(ids) < BATCH:
            return {"expired_removed": removed}


async def expire_periodically(env: Env, interval: float = EXPIRY_SWEEP_SECONDS) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            result = await sweep_expired(env)
            if result["expired_removed"]:
                logger.info("sweep: {}", result)
        except Exception as exc:
            logger.warning("expiry sweep failed: {}: {}", type(exc).__name__, exc)


async def sweep_partials(env: Env, now: datetime | None = None) -> dict[str, int]:
    cutoff = (now or utcnow()) - timedelta(seconds=env.settings.pending_upload_expiry_seconds)
    work = await asyncio.get_running_loop().run_in_executor(
        None, pipeline.clean_work_dir, env, cutoff.replace(tzinfo=UTC).timestamp()
    )
    return {"partials_removed": await env.storage.clean_partials(cutoff) + work}


async def run_periodically(
    env: Env, interval: float, on_result: Callable[[dict[str, int]], None] | None = None
) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            result = await sweep(env) | await sweep_partials(env)
            # A step of the pipeline's backfill: older images, and display sizes that failed.
            made = await pipeline.backfill(env, max_rows=BATCH)
            result |= {f"pipeline_{k}": v for k, v in made.items()}
            if on_result is not None:
                on_result(result)
            if any(result.values()):
                logger.info("sweep: {}", result)
        except Exception as exc:
            logger.warning("sweep failed: {}: {}", type(exc).__name__, exc)
