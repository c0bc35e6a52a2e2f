"""`imagehost serve`: one process, or several worker processes on one port.

Several workers are several copies of the same program: each is forked from this process
before any event loop, engine or connection exists, builds its own app and binds its own
listening socket to the same address with SO_REUSEPORT, so the kernel spreads incoming
connections across them (no process in between, no dependency beyond aiohttp; gunicorn's
`GunicornWebWorker` would do the same with one more process manager to configure). What
they share lives in the database and the storage, which every path already treats as
shared with other processes (a `pg` or SQLite database, conditional statements, the
sweep's claims); what each keeps in memory is either safe to be per process (throttle
buckets are in the database; the API-key cache lives ≤ 1 s, see accounts/keycache.py;
the image caches check the file and the row's expiry) or is only a cache.

The periodic sweep runs in worker 0 only: it would be safe in all of them (every sweep
statement is conditional, so two processes never both act on one row or object), but
running it N times would only multiply the work.

The parent only supervises: SIGTERM or SIGINT stops every worker gracefully; if a worker
exits on its own (a startup error, a crash), the others are stopped too and the exit
status says so, so a supervisor (systemd, Docker's restart policy) restarts the whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from loguru import logger

from . import db
from .config import Settings


def event_loop(settings: Settings) -> asyncio.AbstractEventLoop:
    """EVENT_LOOP: `uvloop` (measured faster on every path, see bench/side_by_side.py),
    `asyncio`, or `auto` (uvloop when it is installed)."""
    if settings.event_loop != "asyncio":
        try:
            import uvloop
        except ImportError:
            if settings.event_loop == "uvloop":
                raise
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def worker_settings(settings: Settings, index: int, workers: int) -> Settings:
    """One worker's settings: the sweep in worker 0 only, and the libvips processes
    shared out (DERIVATIVE_WORKERS=0 means one per core for the whole server)."""
    update: dict[str, Any] = {}
    if index > 0:
        update["gc_interval_seconds"] = 0
    if settings.derivative_workers == 0 and workers > 1:
        update["derivative_workers"] = max(1, cores() // workers)
    return settings.model_copy(update=update) if update else settings


def run_one(settings: Settings, started: Callable[[str], None] | None, reuse_port: bool = False) -> None:
    """Serve in this process until SIGINT/SIGTERM (raises StartupError, OSError).

    What `web.run_app` does (its signal handling, shutdown and keep-alive time), with the
    connections made by `HotSite`: hot `/i/` requests are answered below aiohttp's
    request machinery, everything else by aiohttp (see images/hotwire.py)."""
    from aiohttp import web

    from .app import create_app

    loop = event_loop(settings)
    asyncio.set_event_loop(loop)
    main = loop.create_task(_serve(create_app(settings), settings, started, reuse_port))
    try:
        loop.run_until_complete(main)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        try:
            if not main.done():
                main.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    loop.run_until_complete(main)
        finally:
            _cancel_all(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            asyncio.set_event_loop(None)


async def _serve(app: Any, settings: Settings, started: Callable[[str], None] | None, reuse_port: bool) -> None:
    from aiohttp import web

    from .images.hotwire import KEEPALIVE, HotSite

    runner = web.AppRunner(app, handle_signals=True, access_log=None, keepalive_timeout=KEEPALIVE)
    await runner.setup()  # our access-log middleware records every request
    try:
        site = HotSite(runner, settings.host, settings.port, reuse_port=reuse_port or None)
        await site.start()
        if started is not None:
            started(f"======== Running on {site.name} ========")
        await asyncio.Event().wait()  # until a signal stops the loop (GracefulExit)
    finally:
        await runner.cleanup()


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what is left on the loop and let it finish (as asyncio.run does)."""
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))


def _child(settings: Settings, index: int, workers: int, started: Callable[[str], None]) -> int:
    from .app import StartupError

    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        run_one(worker_settings(settings, index, workers), started if index == 0 else None, reuse_port=True)
    except StartupError as exc:
        print(f"imagehost: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"imagehost: cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


def run_many(settings: Settings, workers: int, started: Callable[[str], None]) -> int:
    """Fork `workers` processes serving on one port; wait; the worst exit status."""
    children: dict[int, int] = {}  # pid → index
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    db.use_wal(settings)  # before the workers open the file together
    old = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        for index in range(workers):
            if stopping:  # a signal came while the workers were being started
                break
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child
                code = 1
                try:
                    code = _child(settings, index, workers, started)
                finally:
                    sys.stdout.flush()
                    sys.stderr.flush()
                    os._exit(code)
            children[pid] = index
        logger.info("{} worker processes (pids {})", workers, ", ".join(map(str, children)))
        status = 0
        while children:
            try:
                pid, wait_status = os.wait()
            except ChildProcessError:
                break
            except InterruptedError:  # pragma: no cover - PEP 475 retries for us
                continue
            index = children.pop(pid, -1)
            code = os.waitstatus_to_exitcode(wait_status)
            if code != 0 and not stopping:
                logger.error("worker {} (pid {}) exited with status {}: stopping the others", index, pid, code)
            if not stopping:
                status = code or 1
                stop(signal.SIGTERM, None)
            elif code not in (0, -signal.SIGTERM, -signal.SIGINT):
                status = status or 1
        return status
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
