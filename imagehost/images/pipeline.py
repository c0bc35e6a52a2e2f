"""The image pipeline around the bytes: a local copy of the stored original for the
libvips workers, the thumbnail made before an upload answers, the display size made
right after, and the backfill of images stored before the pipeline existed.

Derivatives follow every invariant of the original: a key is recorded before its object
is written (on the pending row, or as a tombstone in storage_orphans that the same
transaction as the row's update drops), and is deleted with the image.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO

from loguru import logger

from ..db import new_id, transaction
from ..env import Env
from ..errors import AppError, Unavailable, Unprocessable
from ..storage import LocalStorage, StorageError
from . import store
from .derivatives import DerivativeError, Derivatives, Rendition
from .formats import EXTENSIONS
from .metadata import strip_file
from .store import ImageRow

CHUNK = 1 << 20
RECORD_DELAY = timedelta(hours=1)  # a derivative being made is tracked this long before the sweep may take it
MAX_ATTEMPTS = 3  # a stored image whose pipeline keeps failing is left alone after this many tries


def work_dir(env: Env) -> Path:
    """Where the workers read originals and write derivatives (never public)."""
    path = env.settings.data_dir.resolve() / "work"
    path.mkdir(parents=True, exist_ok=True)
    return path


def clean_work_dir(env: Env, older_than: float) -> int:
    """Files a killed process left in the work folder (blocking: call in an executor)."""
    removed = 0
    for path in work_dir(env).iterdir():
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mtime < older_than:
                path.unlink()
                removed += 1
    return removed


def derivative_key() -> str:
    return f"{new_id()}.webp"


def refusal(exc: DerivativeError) -> AppError:
    """A derivative job's failure as the upload's answer: a file libvips cannot decode
    (or that crashes, hangs or exhausts a worker) is not an image people can see."""
    if exc.reason == "too many pixels":
        return Unprocessable("image has too many pixels", {"reason": exc.reason}, code="too_many_pixels")
    if exc.reason in ("unavailable", "closed", "cannot write"):
        return Unavailable("image processing is unavailable; try again", {"reason": exc.reason})
    return Unprocessable("the image cannot be decoded", {"reason": exc.reason}, code="invalid_image")


# --------------------------------------------------------------------------- a local copy


class Spool:
    """A local file the stored bytes are copied to while they stream, for the workers
    to read (the local backend's own file is used instead: nothing is copied)."""

    def __init__(self, env: Env, key: str) -> None:
        storage = env.storage
        self.local = isinstance(storage, LocalStorage)
        ext = key.rsplit(".", 1)[-1]
        self.path = storage.path(key) if isinstance(storage, LocalStorage) else work_dir(env) / f"{new_id()}.{ext}"
        self._fh: int | None = None

    async def write(self, chunk: bytes) -> None:
        if self.local:
            return
        loop = asyncio.get_running_loop()
        if self._fh is None:
            self._fh = await loop.run_in_executor(
                None, lambda: os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            )
        fh = self._fh
        await loop.run_in_executor(None, os.write, fh, chunk)

    def close(self) -> None:
        if self._fh is not None:
            os.close(self._fh)
            self._fh = None

    def discard(self) -> None:
        self.close()
        if not self.local:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


def _open_and_read(path: Path) -> tuple[BinaryIO, bytes]:
    fh = open(path, "rb")  # noqa: SIM115 (closed by the caller, or here on failure)
    try:
        return fh, fh.read(CHUNK)
    except BaseException:
        fh.close()
        raise


async def _put_file(env: Env, key: str, rendition: Rendition, *, replace: bool = False) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        # Opening and the first read are one hop to the executor, and a short read is the
        # end of the file: a thumbnail (a few KB) is one hop, and its open no longer blocks the loop.
        loop = asyncio.get_running_loop()
        fh, data = await loop.run_in_executor(None, _open_and_read, rendition.path)
        with fh:
            while data:
                yield data
                if len(data) < CHUNK:
                    return
                data = await loop.run_in_executor(None, fh.read, CHUNK)

    await env.storage.put_stream(key, chunks(), rendition.content_type, replace=replace)


def _remove(*renditions: Rendition | None) -> None:
    for r in renditions:
        if r is not None:
            with contextlib.suppress(FileNotFoundError):
                r.path.unlink()


# --------------------------------------------------------------------------- during an upload


@dataclass(frozen=True)
class Made:
    derivatives: Derivatives

    @property
    def thumb(self) -> tuple[int, int]:
        return self.derivatives.thumbnail.width, self.derivatives.thumbnail.height


async def make_thumbnail(env: Env, row: ImageRow, src: Path) -> Made:
    """The thumbnail of an upload whose verified, stripped bytes are at `src`, written to
    the pending row's thumb key before the upload answers. Raises an AppError (422/503)
    if libvips cannot make it; the caller's unit of work then removes everything."""
    assert row.thumb_key is not None
    try:
        made = await env.derivatives.make(
            src, row.content_type, work_dir(env), env.settings.max_image_pixels, display=False
        )
    except DerivativeError as exc:
        logger.info("upload {} refused by the decoder: {}", row.id, exc)
        raise refusal(exc) from None
    try:
        await _put_file(env, row.thumb_key, made.thumbnail)
    finally:
        _remove(made.thumbnail)
    return Made(made)


async def make_display_later(env: Env, row: ImageRow, src: Path, spool: Spool) -> None:
    """After the upload answered: the display size, recorded before it is written, then
    set on the row (pages use the original until then). The backfill retries a failure."""
    try:
        async with _recorded(env, [derivative_key()]) as (key,):
            try:
                display = await env.derivatives.make_display(
                    src, row.content_type, work_dir(env), env.settings.max_image_pixels
                )
            except DerivativeError as exc:
                logger.warning("display size of {} failed, the backfill retries: {}", row.id, exc)
                return
            try:
                if display is not None:
                    await _put_file(env, key, display)
            finally:
                _remove(display)
            async with transaction(env.engine) as conn:
                size = (display.width, display.height) if display is not None else None
                done = await store.set_display(conn, row.id, key if display is not None else None, size)
                if done and display is not None:
                    await store.drop_orphans(conn, [key])
    finally:
        spool.discard()


@asynccontextmanager
async def _recorded(env: Env, keys: list[str]) -> AsyncIterator[list[str]]:
    """Keys recorded in storage_orphans before anything is written under them; whoever
    makes a row own a key drops its record in the same transaction. A key still recorded
    when the block ends (failure, or the image deleted meanwhile) is deleted now, else by
    the sweep."""
    async with transaction(env.engine) as conn:
        await store.add_orphans(conn, keys, delay=RECORD_DELAY)
    try:
        yield keys
    finally:
        async with env.engine.connect() as conn:
            left = await store.recorded(conn, keys)
        if left:
            from .service import delete_objects  # the one delete path

            await asyncio.shield(delete_objects(env, left))


# --------------------------------------------------------------------------- the backfill


async def backfill(
    env: Env, batch: int = 20, max_attempts: int = MAX_ATTEMPTS, max_rows: int | None = None
) -> dict[str, int]:
    """Make what the pipeline would have made for images stored before it existed (or
    whose display size failed): strip the original's metadata in place, make the
    thumbnail and display size. Batched, resumable (the work list is the rows whose
    pipeline is incomplete) and safe with several processes (each row is claimed by a
    conditional UPDATE). A row that keeps failing is left after `max_attempts` tries,
    without derivatives: the original is still served."""
    result = {"processed": 0, "failed": 0}
    last: ImageRow | None = None  # one pass: each image at most once per run
    while True:
        async with env.engine.connect() as conn:
            rows = await store.pipeline_todo(conn, batch, max_attempts, after=last)
        if not rows:
            return result
        last = rows[-1]
        if max_rows is not None and result["processed"] + result["failed"] >= max_rows:
            return result
        for row in rows:
            async with transaction(env.engine) as conn:
                attempt = await store.claim_pipeline(conn, row.id)
            if attempt is None:
                continue  # another process has it, or it is done
            try:
                await _backfill_one(env, row)
                result["processed"] += 1
            except (DerivativeError, AppError, StorageError, OSError) as exc:
                result["failed"] += 1
                logger.warning("pipeline of {} failed (attempt {}): {}", row.id, attempt + 1, exc)


async def _backfill_one(env: Env, row: ImageRow) -> None:
    work = work_dir(env)
    ext = EXTENSIONS.get(row.content_type, "bin")
    original = work / f"{new_id()}.{ext}"
    stripped = work / f"{new_id()}.{ext}"
    loop = asyncio.get_running_loop()
    try:
        await _download(env, row.storage_key, original)
        changed = True
        if env.settings.strip_metadata:
            changed = await loop.run_in_executor(None, strip_file, original, stripped, row.content_type)
        source = stripped if changed and env.settings.strip_metadata else original
        made = await env.derivatives.make(source, row.content_type, work, env.settings.max_image_pixels)
        try:
            keys = [derivative_key(), derivative_key()]
            async with _recorded(env, keys) as (thumb_key, display_key):
                if env.settings.strip_metadata and changed:
                    # In place: the image's public URL stays what it was.
                    await _put_file(env, row.storage_key, _as_rendition(stripped, row.content_type), replace=True)
                await _put_file(env, thumb_key, made.thumbnail)
                if made.display is not None:
                    await _put_file(env, display_key, made.display)
                size = (await loop.run_in_executor(None, source.stat)).st_size
                async with transaction(env.engine) as conn:
                    if await store.finish_pipeline(
                        conn,
                        row,
                        size_bytes=size,
                        width=made.width,
                        height=made.height,
                        thumb_key=thumb_key,
                        thumb=(made.thumbnail.width, made.thumbnail.height),
                        display_key=display_key if made.display is not None else None,
                        animated=made.animated,
                        display_size=(made.display.width, made.display.height) if made.display is not None else None,
                    ):
                        await store.drop_orphans(conn, keys if made.display is not None else [thumb_key])
                old = [k for k in (row.thumb_key, row.display_key) if k]
                if old:  # an earlier attempt's derivatives, replaced now
                    async with transaction(env.engine) as conn:
                        await store.add_orphans(conn, old)
        finally:
            _remove(made.thumbnail, made.display)
    finally:
        for path in (original, stripped):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def _as_rendition(path: Path, content_type: str) -> Rendition:
    return Rendition(path=path, width=0, height=0, size_bytes=path.stat().st_size, content_type=content_type)


async def _download(env: Env, key: str, dest: Path) -> None:
    info = await env.storage.head(key)
    if info is None:
        raise StorageError(f"{key} is missing")
    loop = asyncio.get_running_loop()
    fd = await loop.run_in_executor(None, lambda: os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        offset = 0
        while offset < info.size:
            data = await env.storage.read_range(key, offset, min(4 * CHUNK, info.size - offset), if_match=info.etag)
            if not data:
                raise StorageError(f"{key} ended early")
            await loop.run_in_executor(None, os.write, fd, data)
            offset += len(data)
    finally:
        os.close(fd)
