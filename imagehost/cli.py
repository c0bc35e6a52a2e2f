"""`imagehost` / `python -m imagehost`: serve, migrate, storage-setup, gc, create-user, set-role,
reset-password, disable-totp."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from urllib.parse import urlsplit

from loguru import logger

from .config import LOCAL_HOSTS, ConfigError, Settings, default_base_url, load_settings
from .env import Env
from .logs import setup_logging


def _fail(message: str) -> int:
    print(f"imagehost: {message}", file=sys.stderr)
    return 1


def with_address(settings: Settings, host: str | None, port: int | None) -> Settings:
    """Settings for `serve --host/--port`: PUBLIC_BASE_URL follows them unless it was set."""
    update: dict[str, object] = {"host": host or settings.host, "port": port or settings.port}
    if settings.base_url_derived:
        update["public_base_url"] = default_base_url(str(update["host"]), int(str(update["port"])))
    return settings.model_copy(update=update)


def serving_lines(settings: Settings) -> list[str]:
    """What `serve` prints at start: the address to open (PUBLIC_BASE_URL: every URL the
    app gives out starts with it), where it listens, and a warning when the two cannot be
    the same server."""
    host = f"[{settings.host}]" if ":" in settings.host and not settings.host.startswith("[") else settings.host
    db = "SQLite" if settings.is_sqlite else "PostgreSQL"
    lines = [
        f"serving on {settings.public_base_url} "
        f"(listening on {host or '*'}:{settings.port}; {settings.storage_backend} storage, {db})"
    ]
    public = urlsplit(settings.public_base_url)
    if public.hostname in LOCAL_HOSTS and (public.port or 80) != settings.port:
        lines.append(
            f"warning: PUBLIC_BASE_URL ({settings.public_base_url}) is this machine on another port than "
            f"PORT ({settings.port}): image, upload and deletion URLs will not reach this server"
        )
    return lines


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from .app import StartupError
    from .serving import cores, run_many, run_one

    settings = with_address(settings, args.host, args.port)
    workers = args.workers if args.workers is not None else settings.workers
    workers = workers or cores()

    def started(_msg: str) -> None:
        first, *warnings = serving_lines(settings)
        logger.info(first)
        for line in warnings:
            logger.warning(line)

    if workers > 1:
        return run_many(settings, workers, started)
    try:
        run_one(settings, started)
    except StartupError as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}")
    return 0


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from .db import apply_migrations

    try:
        applied = apply_migrations(settings)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return _fail(f"database unreachable or migration failed: {type(exc).__name__}: {first}")
    print(f"applied {len(applied)} migration(s){': ' + ', '.join(applied) if applied else ''}; schema is current")
    return 0


def cmd_storage_setup(settings: Settings, args: argparse.Namespace) -> int:
    from .storage import StorageError, open_storage

    origin = args.origin or "{0.scheme}://{0.netloc}".format(urlsplit(settings.public_base_url))
    days = max(1, -(-settings.pending_upload_expiry_seconds // 86400))

    async def run() -> list[str]:
        async with AsyncExitStack() as stack:
            storage = await open_storage(settings, stack)
            return await storage.setup(origin, days)

    try:
        for line in asyncio.run(run()):
            print(line)
    except StorageError as exc:  # it says whether the store refused or did not answer
        return _fail(f"storage-setup ({settings.storage_backend}): {exc}")
    return 0


@asynccontextmanager
async def cli_env(settings: Settings) -> AsyncIterator[Env]:
    """What the services work with, outside the server: the engine, the storage, and
    absolute URLs built from the same route table."""
    from .app import create_app
    from .db import create_engine
    from .images.derivatives import derivative_pool
    from .routes import AbsoluteUrls
    from .storage import open_storage

    engine = create_engine(settings)
    pool = derivative_pool(settings)
    try:
        async with AsyncExitStack() as stack:
            storage = await open_storage(settings, stack)
            urls = AbsoluteUrls(create_app(settings).router, settings.public_base_url)
            env = Env(engine, storage, settings, urls, pool)
            yield env
            await env.background.drain()
    finally:
        await pool.close()
        await engine.dispose()


def cmd_gc(settings: Settings, args: argparse.Namespace) -> int:
    from .images.sweep import sweep, sweep_expired, sweep_partials
    from .storage import StorageError

    async def run() -> dict[str, int]:
        async with cli_env(settings) as env:
            return await sweep(env) | await sweep_expired(env) | await sweep_partials(env)

    try:
        result = asyncio.run(run())
    except StorageError as exc:
        return _fail(f"storage unreachable ({settings.storage_backend}): {exc}")
    except Exception as exc:
        return _fail(f"sweep failed: {type(exc).__name__}: {exc}")
    print(", ".join(f"{k}={v}" for k, v in result.items()))
    return 0


def cmd_derivatives(settings: Settings, args: argparse.Namespace) -> int:
    from .images.pipeline import backfill
    from .storage import StorageError

    async def run() -> dict[str, int]:
        async with cli_env(settings) as env:
            return await backfill(env, batch=args.batch)

    try:
        result = asyncio.run(run())
    except StorageError as exc:
        return _fail(f"storage unreachable ({settings.storage_backend}): {exc}")
    print(", ".join(f"{k}={v}" for k, v in result.items()))
    return 0


def cmd_create_user(settings: Settings, args: argparse.Namespace) -> int:
    from .accounts.service import RegistrationError, register_user
    from .accounts.store import User

    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass("Password: ")

    async def run() -> User:
        async with cli_env(settings) as env:
            return await register_user(env, args.username, args.email, password, role="admin" if args.admin else None)

    try:
        user = asyncio.run(run())
    except RegistrationError as exc:
        return _fail(exc.message)
    print(f"created user {user.username} ({user.id}){', an admin' if user.is_admin else ''}")
    return 0


def cmd_set_role(settings: Settings, args: argparse.Namespace) -> int:
    from .admin import service
    from .errors import AppError

    async def run() -> str:
        async with cli_env(settings) as env:
            user_id = await service.user_id_by_name(env, args.username)
            return (await service.set_role(env, service.CLI, user_id, args.role)).role

    try:
        role = asyncio.run(run())
    except AppError as exc:
        return _fail(exc.message)
    print(f"{args.username} is now {'an admin' if role == 'admin' else 'a user'}")
    return 0


def cmd_reset_password(settings: Settings, args: argparse.Namespace) -> int:
    from .admin import service
    from .errors import AppError

    async def run() -> service.Link:
        async with cli_env(settings) as env:
            user_id = await service.user_id_by_name(env, args.username)
            return await service.issue_reset_link(env, service.CLI, user_id)

    try:
        link = asyncio.run(run())
    except AppError as exc:
        return _fail(exc.message)
    print(link.url)
    print(f"(one use, until {link.to_json()['expires_at']}; setting a password signs {args.username} out everywhere)")
    return 0


def cmd_disable_totp(settings: Settings, args: argparse.Namespace) -> int:
    from .admin import service
    from .errors import AppError

    async def run() -> None:
        async with cli_env(settings) as env:
            user_id = await service.user_id_by_name(env, args.username)
            await service.disable_totp(env, service.CLI, user_id)

    try:
        asyncio.run(run())
    except AppError as exc:
        return _fail(exc.message)
    print(
        f"turned off two-factor sign-in for {args.username} (secret and recovery codes deleted); "
        "their password alone signs them in now"
    )
    return 0


COMMANDS = {
    "serve": (cmd_serve, "serve HTTP (HOST/PORT, default 127.0.0.1:8000; PUBLIC_BASE_URL follows them)"),
    "migrate": (cmd_migrate, "apply database migrations"),
    "storage-setup": (cmd_storage_setup, "create the bucket or folder, its CORS and lifecycle rules"),
    "gc": (cmd_gc, "sweep expired pending uploads and objects whose delete failed"),
    "derivatives": (
        cmd_derivatives,
        "strip metadata and make thumbnails and display sizes of images stored before the pipeline (resumable)",
    ),
    "create-user": (cmd_create_user, "add a user from the command line (works with registration closed)"),
    "set-role": (cmd_set_role, "make a user an admin, or an admin a user (the last admin stays)"),
    "reset-password": (cmd_reset_password, "print a one-use password-reset link for a user (valid for an hour)"),
    "disable-totp": (cmd_disable_totp, "turn off a user's two-factor sign-in (lost authenticator and recovery codes)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imagehost", description="A self-hosted image host.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_fn, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == "serve":
            p.add_argument("--host", help="interface to bind (default: HOST)")
            p.add_argument("--port", type=int, help="port (default: PORT)")
            p.add_argument(
                "--workers",
                type=int,
                help="worker processes on one port (default: WORKERS, 1; 0 = one per core)",
            )
        elif name == "storage-setup":
            p.add_argument("--origin", help="origin allowed to PUT presigned uploads (default: PUBLIC_BASE_URL's)")
        elif name == "derivatives":
            p.add_argument("--batch", type=int, default=20, help="images claimed per round (default: 20)")
        elif name == "create-user":
            p.add_argument("username")
            p.add_argument("email")
            p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
            p.add_argument("--admin", action="store_true", help="make the account an admin")
        elif name == "set-role":
            p.add_argument("username")
            p.add_argument("role", choices=("admin", "user"))
        elif name in ("reset-password", "disable-totp"):
            p.add_argument("username")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        return _fail(str(exc))
    setup_logging(settings.log_level, settings.log_json)
    fn = COMMANDS[args.command][0]
    try:
        return fn(settings, args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
