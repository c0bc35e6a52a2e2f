"""The database: an SQLAlchemy asyncio engine, transactions, and yoyo migrations.

PostgreSQL goes through psycopg 3, the one driver that serves both SQLAlchemy's
asyncio layer and yoyo's synchronous migrations (`postgresql+psycopg://`), so
production needs a single PostgreSQL client library. SQLite goes through aiosqlite.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import secrets
import sqlite3
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, and_, event, or_, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from .config import Settings
from .errors import BadRequest

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def utcnow() -> datetime:
    """Naive UTC, the form every timestamp column holds."""
    return datetime.now(UTC).replace(tzinfo=None)


def json_time(value: datetime) -> str:
    """A timestamp column's value as JSON shows it: ISO 8601 in UTC, with a `Z`."""
    return value.isoformat() + "Z"


def new_id(nbytes: int = 12) -> str:
    """A random, URL-safe id: 96 bits by default."""
    return secrets.token_urlsafe(nbytes)


def sha256_hex(secret: str) -> str:
    """How a full-entropy secret (API key, deletion token, reset link) is stored: a fast
    hash is right, since there is nothing to brute-force, and it is looked up by equality."""
    return hashlib.sha256(secret.encode()).hexdigest()


def create_engine(settings: Settings) -> AsyncEngine:
    if settings.is_sqlite:
        _ensure_sqlite_dir(settings.database_url)
        engine = create_async_engine(settings.database_url, connect_args={"timeout": 30})
        _sqlite_pragmas(engine)
        return engine
    return create_async_engine(
        settings.database_url,
        pool_size=10,
        max_overflow=10,
        pool_pre_ping=True,
        connect_args={"connect_timeout": 5},
    )


def _ensure_sqlite_dir(url: str) -> None:
    path = url.split(":///", 1)[-1]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)


def use_wal(settings: Settings) -> None:
    """Put an SQLite file in WAL mode now, once (the mode is kept in the file). Every
    connection asks for WAL too, but switching a file's mode needs it to itself: several
    worker processes opening a file still in rollback mode at the same moment would get
    "database is locked" from all but one. So the migration and `serve --workers` (before
    it forks) switch it first, alone."""
    if not settings.is_sqlite:
        return
    path = settings.database_url.split(":///", 1)[-1].split("?", 1)[0]
    if not path or path == ":memory:":
        return
    _ensure_sqlite_dir(settings.database_url)
    conn = sqlite3.connect(path, timeout=30)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
    finally:
        conn.close()


def _sqlite_pragmas(engine: AsyncEngine) -> None:
    """Foreign keys on, WAL, and every `transaction()` opened `BEGIN IMMEDIATE`, so two
    writers queue on the busy timeout instead of failing on a lock upgrade; plain reads
    (`engine.connect()`) stay deferred and never wait for a writer (WAL)."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:  # pragma: no cover - driver callback
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys = ON")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.execute("PRAGMA busy_timeout = 30000")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:  # pragma: no cover - driver callback
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN")


_WRITE = "imagehost_write"


@asynccontextmanager
async def transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """One unit of work that may write: committed when the block ends, rolled back if
    it raises. Reads that write nothing use `engine.connect()`."""
    lock = _sqlite_writer_lock(engine)
    if lock is None:
        async with engine.begin() as conn:
            yield conn
        return
    # SQLite has one writer at a time. Queue this process's writers on an asyncio lock
    # rather than in SQLite's busy handler, which sleeps in growing steps (up to 100 ms)
    # and turns contention into long tail latencies; other processes still wait on the
    # busy timeout.
    async with lock, engine.connect() as conn:
        await conn.execution_options(**{_WRITE: True})
        async with conn.begin():
            yield conn


_writer_locks: weakref.WeakKeyDictionary[object, asyncio.Lock] = weakref.WeakKeyDictionary()


def _sqlite_writer_lock(engine: AsyncEngine) -> asyncio.Lock | None:
    if engine.dialect.name != "sqlite":
        return None
    lock = _writer_locks.get(engine.sync_engine)
    if lock is None:
        lock = _writer_locks[engine.sync_engine] = asyncio.Lock()
    return lock


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


def apply_migrations(settings: Settings) -> list[str]:
    """Apply every pending migration (synchronous; call it from a thread in async code).
    Returns the ids applied."""
    from yoyo import get_backend, read_migrations

    if settings.is_sqlite:
        _ensure_sqlite_dir(settings.database_url)
    backend = get_backend(settings.yoyo_url)
    try:
        migrations = read_migrations(str(MIGRATIONS_DIR))
        with backend.lock():
            todo = backend.to_apply(migrations)
            backend.apply_migrations(todo)
    finally:
        backend.connection.close()
    use_wal(settings)
    return [m.id for m in todo]


@dataclass(frozen=True)
class Cursor:
    """A keyset position in a newest-first listing: the (time, id) of a page's last row.
    Every listing (images, albums, the admin's users and audit trail) pages with it, so
    its cost never grows with the page number."""

    created_at: datetime
    id: str

    def encode(self) -> str:
        raw = f"{self.created_at.isoformat()}|{self.id}".encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    @classmethod
    def decode(cls, value: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
            ts, row_id = raw.split("|", 1)
            if not row_id or len(row_id) > 32:
                raise ValueError
            return cls(datetime.fromisoformat(ts), row_id)
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise BadRequest("invalid cursor", code="invalid_cursor") from None

    def before(self, time_col: Any, id_col: Any) -> ColumnElement[bool]:
        """Rows after this position in (time, id) descending order."""
        return or_(time_col < self.created_at, and_(time_col == self.created_at, id_col < self.id))
