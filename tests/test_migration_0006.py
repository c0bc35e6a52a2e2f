"""Migration 0006 on an instance that already has accounts: the oldest becomes the admin,
everyone else a user, all enabled, at auth version 1, following the default quota."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import create_engine, text
from yoyo import get_backend, read_migrations

from imagehost.config import load_settings
from imagehost.db import MIGRATIONS_DIR

from .test_schema import SECRET, _sync_url, fresh_database  # noqa: F401  (the fixture)


def test_the_oldest_existing_account_becomes_the_admin(fresh_database):  # noqa: F811
    settings = load_settings(_env_file=None, database_url=fresh_database, secret_key=SECRET)
    backend = get_backend(settings.yoyo_url)
    try:
        migrations = read_migrations(str(MIGRATIONS_DIR))
        before = migrations.filter(lambda m: m.id < "0006")
        with backend.lock():
            backend.apply_migrations(backend.to_apply(before))
        engine = create_engine(_sync_url(fresh_database))
        with engine.begin() as conn:
            for uid, name, created in (
                ("u-new", "newer", datetime(2025, 3, 1)),
                ("u-old", "oldest", datetime(2024, 1, 1)),
                ("u-mid", "middle", datetime(2024, 6, 1)),
            ):
                conn.execute(
                    text(
                        "INSERT INTO users (id, username, username_key, email, email_key, password_hash, "
                        "storage_used_bytes, created_at) VALUES (:id, :n, :n, :e, :e, 'x', 0, :c)"
                    ),
                    {"id": uid, "n": name, "e": f"{name}@example.com", "c": created},
                )
        with backend.lock():
            backend.apply_migrations(backend.to_apply(migrations))
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT username, role, disabled_at, auth_version, quota_bytes FROM users ORDER BY username")
            ).all()
        engine.dispose()
    finally:
        backend.connection.close()
    assert [tuple(r) for r in rows] == [
        ("middle", "user", None, 1, None),
        ("newer", "user", None, 1, None),
        ("oldest", "admin", None, 1, None),
    ]
