"""Thumbnails and display sizes, made by libvips in a pool of worker processes.

The server never decodes an image. `DerivativePool` keeps N long-lived workers (one per
core by default), each a separate `python -P vips_worker.py` started with
`asyncio.create_subprocess_exec` and talking length-prefixed JSON over its stdin and
stdout (see `vips_worker.py`). A subprocess rather than `multiprocessing`: nothing is
forked from a process that has an event loop and threads, nothing is pickled, there is
no resource tracker or manager process, the event loop reads the pipes natively, and a
worker is an ordinary child whose death shows as the end of its stdout and whose
replacement is one more `create_subprocess_exec`. The worker imports only pyvips.

Each worker does one job at a time under a memory limit (RLIMIT_DATA, set by the worker
at start) and a time limit (the pool kills it). A worker that times out, crashes or runs
out of memory fails only its own job, with a `DerivativeError`; the pool starts a
replacement at once, and the files the job had begun are removed. A job cancelled by
its caller kills its worker too (its reply would otherwise arrive for the next job).

What a job makes from a verified original (see `DerivativePool.make`):

- a thumbnail: WebP, longest side at most 640 px, never upscaled, orientation applied,
  colour in sRGB, no metadata; for an animated GIF/WebP, the first frame (still);
- a display size: WebP, longest side at most 2048 px — only when the original needs one:
  larger than 2048 px, or with an EXIF orientation to apply. Otherwise `display` is None
  and pages use the original. An animated original within 2048 px is used as it is; a
  larger one gets an animated WebP display with every frame, unless all its frames
  together exceed the pixel limit (then the original is used: resizing that many
  pixels would hit the time limit anyway, and browsers play the original fine).

Typical use, in `create_app`'s `cleanup_ctx`:

    async def derivatives_ctx(app):
        async with DerivativePool() as pool:
            app[DERIVATIVES] = pool
            yield
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import struct
import sys
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from loguru import logger

from ..config import Settings

THUMBNAIL_SIZE = 640
DISPLAY_SIZE = 2048
QUALITY = 80
# libvips' WebP `effort` (0–6, its default 4) for the thumbnail, which an upload waits
# for: 2 takes about half the encoding time of 4 for about 2 % more bytes (measured on
# a 1280×720 screenshot: 7.5 vs 15.1 ms, 21.1 vs 20.7 KB); the display size, made after
# the answer and looked at full size, keeps the default.
THUMBNAIL_EFFORT = 2
WEBP = "image/webp"
SUPPORTED = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp", "image/avif"})
WORKER_SCRIPT = Path(__file__).with_name("vips_worker.py")
_HEADER = struct.Struct(">I")
_MAX_REPLY = 1 << 20


class DerivativeError(Exception):
    """A job failed. `reason` is short and stable: "cannot decode", "too many pixels",
    "timeout", "crashed", "out of memory", "cannot write", "unsupported type",
    "unavailable" (no worker could start), "closed", "failed" (a bug in the worker).
    `detail` is for the log only."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Rendition:
    """One file a job wrote."""

    path: Path
    width: int
    height: int  # of one frame, for an animated WebP
    size_bytes: int
    content_type: str = WEBP


@dataclass(frozen=True)
class Probe:
    """What an original's header says, read without decoding."""

    width: int  # after orientation: as the image is shown
    height: int
    orientation: int  # EXIF orientation, 1 when none
    animated: bool
    pages: int  # frames of an animated GIF/WebP, else 1


@dataclass(frozen=True)
class Derivatives:
    thumbnail: Rendition
    display: Rendition | None  # None: use the original (or not made: see display_wanted)
    display_wanted: bool  # the original needs a display file (made unless make(display=False))
    width: int  # of the original after orientation
    height: int
    animated: bool
    pages: int
    cpu_seconds: float  # the worker's CPU time for this job (for metrics)


def _frame(message: dict[str, Any]) -> bytes:
    body = json.dumps(message, separators=(",", ":")).encode()
    return _HEADER.pack(len(body)) + body


async def _read_frame(stream: asyncio.StreamReader) -> dict[str, Any]:
    (length,) = _HEADER.unpack(await stream.readexactly(_HEADER.size))
    if length > _MAX_REPLY:
        raise DerivativeError("crashed", f"reply of {length} bytes")
    message: dict[str, Any] = json.loads(await stream.readexactly(length))
    return message


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exit status {code}"


def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.kill()


def _remove_outputs(out_dir: Path, prefix: str) -> None:
    """Remove every file a job wrote or began in out_dir (blocking: run in a thread)."""
    with contextlib.suppress(FileNotFoundError), os.scandir(out_dir) as entries:
        for entry in entries:
            if entry.name.startswith(prefix):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)


@dataclass
class _Child:
    """One worker process, with the last lines it wrote to stderr."""

    proc: asyncio.subprocess.Process
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=8))
    stderr: asyncio.Task[None] | None = None

    def describe(self) -> str:
        return f"{_describe_exit(self.proc.returncode)} {' | '.join(self.tail)}".strip()


class _Worker:
    """One slot of the pool: a worker process, started when first needed and again after
    one died. Only the job holding the slot talks to its process."""

    def __init__(self, pool: DerivativePool, slot: int) -> None:
        self.pool = pool
        self.slot = slot
        self.child: _Child | None = None
        self.libvips = ""
        self._lock = asyncio.Lock()

    @property
    def pid(self) -> int | None:
        child = self.child
        return child.proc.pid if child is not None and child.proc.returncode is None else None

    async def ensure_started(self) -> _Child:
        async with self._lock:
            child = self.child
            if child is not None:
                if child.proc.returncode is None:
                    return child
                self.child = None  # died while idle
                await self._finish(child, "died", replace=False)
            if self.pool._closed:
                raise DerivativeError("closed")
            return await self._spawn()

    async def _spawn(self) -> _Child:
        pool = self.pool
        config = {"memory_limit": pool.memory_limit, "test_hooks": pool._test_hooks}
        env = {**os.environ, "VIPS_CONCURRENCY": "1", "MALLOC_ARENA_MAX": "2"}
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-P",  # the script's folder (imagehost/images) must not shadow packages
                str(WORKER_SCRIPT),
                json.dumps(config),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                start_new_session=True,  # a Ctrl-C meant for the server is not theirs
            )
        except OSError as e:
            raise DerivativeError("unavailable", f"cannot start a worker: {e}") from None
        child = _Child(proc)
        assert proc.stdout is not None and proc.stderr is not None
        child.stderr = asyncio.create_task(self._drain(proc.stderr, child))
        try:
            async with asyncio.timeout(pool.start_timeout):
                hello = await _read_frame(proc.stdout)
            self.libvips = str(hello["ready"]["libvips"])
        except (TimeoutError, asyncio.IncompleteReadError, ValueError, KeyError, TypeError, DerivativeError):
            await self._finish(child, "did not start", replace=False)
            raise DerivativeError("unavailable", f"worker did not start: {child.describe()}") from None
        self.child = child
        logger.debug("vips worker {} started (pid {}, libvips {})", self.slot, proc.pid, self.libvips)
        return child

    async def call(self, request: dict[str, Any], on_failure: Callable[[], Awaitable[None]]) -> dict[str, Any]:
        """Send one request and wait for its reply. On any failure `on_failure` runs once
        the worker can no longer write anything (after its death, if it died)."""
        child = await self.ensure_started()
        proc = child.proc
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(_frame(request))
            async with asyncio.timeout(self.pool.time_limit):
                await proc.stdin.drain()
                reply = await _read_frame(proc.stdout)
        except TimeoutError:
            self.child = None
            await self._settle(child, "timeout", on_failure)
            raise DerivativeError("timeout", f"over {self.pool.time_limit:g} s") from None
        except (asyncio.IncompleteReadError, ConnectionError, ValueError, DerivativeError):
            self.child = None
            await self._settle(child, "crashed", on_failure)
            raise DerivativeError("crashed", child.describe()) from None
        except asyncio.CancelledError:
            # Its reply would come in answer to the next request: this worker goes, now.
            self.child = None
            _kill(proc)
            self.pool._in_background(self._finish(child, "cancelled", on_failure))
            raise
        if "error" in reply:
            if reply.get("exiting"):  # out of memory: it leaves by itself; then a successor
                self.child = None
                await self._settle(child, None, on_failure)
            else:
                await self._settle(None, None, on_failure)
            raise DerivativeError(str(reply["error"]), str(reply.get("detail", "")))
        result: dict[str, Any] = reply["ok"]
        return result

    async def _settle(self, child: _Child | None, why: str | None, on_failure: Callable[[], Awaitable[None]]) -> None:
        """`_finish`, then the job's clean-up; carried through even if the caller is
        cancelled meanwhile."""
        await asyncio.shield(self.pool._in_background(self._finish(child, why, on_failure)))

    async def _finish(
        self,
        child: _Child | None,
        why: str | None,
        on_failure: Callable[[], Awaitable[None]] | None = None,
        *,
        replace: bool = True,
    ) -> None:
        """Make sure a detached process is gone (killed unless it exits by itself within a
        moment), close its pipes, read the rest of its stderr, start a replacement; then
        run the failed job's clean-up, when nothing can write any more."""
        if child is not None:
            proc = child.proc
            if proc.returncode is None:
                if why in ("timeout", "cancelled", "did not start"):
                    _kill(proc)
                try:
                    async with asyncio.timeout(2):
                        await proc.wait()
                except TimeoutError:
                    _kill(proc)
                    await proc.wait()
            if proc.stdin is not None:
                proc.stdin.close()
            if child.stderr is not None:
                await child.stderr
            if why:
                logger.warning("vips worker {} (pid {}) {}: {}", self.slot, proc.pid, why, child.describe())
            if replace:
                self.pool._replace(self)
        if on_failure is not None:
            await on_failure()

    async def close(self, grace: float) -> None:
        async with self._lock:
            child, self.child = self.child, None
            if child is None:
                return
            proc = child.proc
            if proc.returncode is None and proc.stdin is not None:
                proc.stdin.close()  # end of input: the worker exits
                try:
                    async with asyncio.timeout(grace):
                        await proc.wait()
                except TimeoutError:
                    _kill(proc)
            await self._finish(child, None, replace=False)

    async def _drain(self, stream: asyncio.StreamReader, child: _Child) -> None:
        """libvips and Python write warnings to stderr: log them, keep the last lines."""
        pending = b""
        while chunk := await stream.read(65536):
            *lines, pending = (pending + chunk).split(b"\n")
            pending = pending[-4096:]
            for raw in lines:
                line = raw.decode(errors="replace").strip()[:500]
                if line:
                    child.tail.append(line)
                    logger.debug("vips worker {} (pid {}): {}", self.slot, child.proc.pid, line)


class DerivativePool:
    """Long-lived libvips workers; `await pool.make(...)` from any coroutine.

    `size` workers (default: one per core), each limited to `memory_limit` bytes of data
    (0: no limit) and `time_limit` seconds per job. Workers start on `start()` (or on
    first use) and stop on `close()`; `async with DerivativePool() as pool:` does both.
    `_test_hooks` lets the tests ask a worker to crash, hang or exhaust its memory; never
    set it elsewhere."""

    def __init__(
        self,
        size: int | None = None,
        *,
        memory_limit: int = 1 << 30,
        time_limit: float = 30.0,
        start_timeout: float = 30.0,
        thumbnail_size: int = THUMBNAIL_SIZE,
        display_size: int = DISPLAY_SIZE,
        quality: int = QUALITY,
        _test_hooks: bool = False,
    ) -> None:
        self.size = size or os.cpu_count() or 1
        self.memory_limit = memory_limit
        self.time_limit = time_limit
        self.start_timeout = start_timeout
        self.thumbnail_size = thumbnail_size
        self.display_size = display_size
        self.quality = quality
        self._test_hooks = _test_hooks
        self._workers = [_Worker(self, i) for i in range(self.size)]
        self._idle: asyncio.LifoQueue[_Worker] = asyncio.LifoQueue()
        for worker in reversed(self._workers):
            self._idle.put_nowait(worker)
        self._tasks: set[asyncio.Future[None]] = set()
        self._closed = False

    # ---------------------------------------------------------------- life cycle

    async def start(self) -> None:
        """Start every worker now (else each starts on first use). Raises
        DerivativeError("unavailable") if libvips cannot start."""
        await asyncio.gather(*(w.ensure_started() for w in self._workers))

    async def close(self, grace: float = 5.0) -> None:
        """Stop the workers (a job still running fails) and wait for them."""
        self._closed = True
        await asyncio.gather(*(w.close(grace) for w in self._workers))
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(w.close(grace) for w in self._workers))  # any replacement

    async def __aenter__(self) -> DerivativePool:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def libvips_version(self) -> str:
        """The libvips version the workers run ("" before one has started)."""
        return next((w.libvips for w in self._workers if w.libvips), "")

    def worker_pids(self) -> list[int]:
        return [pid for w in self._workers if (pid := w.pid) is not None]

    # ---------------------------------------------------------------- jobs

    async def make(
        self, src: Path, content_type: str, out_dir: Path, max_pixels: int, *, display: bool = True
    ) -> Derivatives:
        """Make the thumbnail and, when the original needs one, the display size, as files
        in `out_dir` named `<random>.thumb.webp` and `<random>.display.webp`. They are the
        caller's to move or delete. `display=False` makes the thumbnail only (quicker, for
        an upload that answers first); `display_wanted` then says whether to call
        `make_display` later. On failure nothing is left in out_dir and DerivativeError
        says why; the pool goes on working."""
        result = await self._job("make", src, content_type, out_dir, max_pixels, thumbnail=True, display=display)
        thumbnail = _rendition(result["thumbnail"])
        assert thumbnail is not None
        return Derivatives(
            thumbnail=thumbnail,
            display=_rendition(result["display"]),
            display_wanted=bool(result["display_wanted"]),
            width=int(result["oriented_width"]),
            height=int(result["oriented_height"]),
            animated=bool(result["animated"]),
            pages=int(result["pages"]),
            cpu_seconds=float(result["cpu_seconds"]),
        )

    async def make_display(self, src: Path, content_type: str, out_dir: Path, max_pixels: int) -> Rendition | None:
        """The display size alone (`<random>.display.webp`), or None: use the original."""
        result = await self._job("make", src, content_type, out_dir, max_pixels, thumbnail=False, display=True)
        return _rendition(result["display"])

    async def probe(self, src: Path, content_type: str) -> Probe:
        """The oriented size and frame count from the header, decoding no pixels."""
        result = await self._job("probe", src, content_type, src.parent, 0)
        return Probe(
            width=int(result["oriented_width"]),
            height=int(result["oriented_height"]),
            orientation=int(result["orientation"]),
            animated=bool(result["animated"]),
            pages=int(result["pages"]),
        )

    async def _job(
        self,
        op: str,
        src: Path,
        content_type: str,
        out_dir: Path,
        max_pixels: int,
        *,
        thumbnail: bool = False,
        display: bool = False,
    ) -> dict[str, Any]:
        if self._closed:
            raise DerivativeError("closed")
        if content_type not in SUPPORTED and not (self._test_hooks and content_type.startswith("x-test/")):
            raise DerivativeError("unsupported type", content_type)
        if not (src.is_absolute() and out_dir.is_absolute()):
            raise ValueError("src and out_dir must be absolute paths")
        prefix = secrets.token_hex(8) + "."
        request = {
            "op": op,
            "src": str(src),
            "content_type": content_type,
            "out_dir": str(out_dir),
            "prefix": prefix,
            "max_pixels": max_pixels,
            "thumbnail": thumbnail,
            "display": display,
            "thumbnail_size": self.thumbnail_size,
            "display_size": self.display_size,
            "quality": self.quality,
            "thumbnail_effort": THUMBNAIL_EFFORT,
        }

        async def clean_up() -> None:
            if op == "make":
                await asyncio.to_thread(_remove_outputs, out_dir, prefix)

        worker = await self._idle.get()
        try:
            return await worker.call(request, clean_up)
        finally:
            self._idle.put_nowait(worker)

    # ---------------------------------------------------------------- replacement

    def _replace(self, worker: _Worker) -> None:
        """Start a dead worker's successor now, so the next job does not wait for it."""
        if not self._closed:
            self._in_background(self._restart(worker))

    async def _restart(self, worker: _Worker) -> None:
        try:
            await worker.ensure_started()
        except DerivativeError as e:  # the next job on this slot tries again
            logger.warning("vips worker {} could not be replaced: {}", worker.slot, e)

    def _in_background(self, coro: Awaitable[None]) -> asyncio.Future[None]:
        task: asyncio.Future[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


def _rendition(data: dict[str, Any] | None) -> Rendition | None:
    if data is None:
        return None
    return Rendition(
        path=Path(data["path"]),
        width=int(data["width"]),
        height=int(data["height"]),
        size_bytes=int(data["size_bytes"]),
    )


def derivative_pool(settings: Settings) -> DerivativePool:
    """The pool the settings ask for (DERIVATIVE_WORKERS, _MEMORY_MB, _TIMEOUT_SECONDS)."""
    return DerivativePool(
        settings.derivative_workers or None,
        memory_limit=settings.derivative_memory_mb << 20,
        time_limit=settings.derivative_timeout_seconds,
    )
