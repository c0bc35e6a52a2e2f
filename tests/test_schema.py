"""The migrations are the schema's truth: applied to SQLite and PostgreSQL, they must
create exactly the tables and columns the code uses (imagehost/tables.py)."""

from __future__ import annotations

import os
import secrets
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from sqlalchemy import create_engine, inspect

from imagehost.config import load_settings
from imagehost.db import apply_migrations
from imagehost.tables import metadata

SECRET = "s" * 40


@pytest.fixture(params=["sqlite", "pg"])
def fresh_database(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'schema.db'}"
        return
    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        pytest.skip("PostgreSQL tier: TEST_DATABASE_URL is not set")
    name = f"imagehost_schema_{secrets.token_hex(4)}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield urlunsplit(urlsplit(base)._replace(path="/" + name))
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _sync_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1) if url.startswith("postgresql://") else url


def test_migrations_create_the_schema_the_code_uses(fresh_database):
    settings = load_settings(_env_file=None, database_url=fresh_database, secret_key=SECRET)
    applied = apply_migrations(settings)
    assert applied, "a fresh database gets every migration"
    assert apply_migrations(settings) == []  # idempotent

    engine = create_engine(_sync_url(fresh_database))
    try:
        insp = inspect(engine)
        actual = set(insp.get_table_names()) - {t for t in insp.get_table_names() if t.startswith(("_yoyo", "yoyo"))}
        assert actual == set(metadata.tables)
        for table in metadata.sorted_tables:
            cols = {c["name"]: c for c in insp.get_columns(table.name)}
            assert set(cols) == {c.name for c in table.columns}, table.name
            for col in table.columns:
                assert cols[col.name]["nullable"] == col.nullable or col.primary_key, f"{table.name}.{col.name}"
            pk = insp.get_pk_constraint(table.name)["constrained_columns"]
            assert pk == [c.name for c in table.primary_key.columns]
        listing = {ix["name"]: ix["column_names"] for ix in insp.get_indexes("images")}
        assert listing["ix_images_owner_listing"] == ["owner_id", "status", "created_at", "id"]
    finally:
        engine.dispose()


def test_images_stored_before_albums_are_found_by_the_start_of_their_name(fresh_database):
    """0009 indexes existing active images by their whole lower-cased filename; 0010
    replaces that with their words (tests/test_migration_0010.py goes further)."""
    from yoyo import get_backend, read_migrations

    from imagehost.db import MIGRATIONS_DIR

    settings = load_settings(_env_file=None, database_url=fresh_database, secret_key=SECRET)
    migrations = read_migrations(str(MIGRATIONS_DIR))
    before = migrations.filter(lambda m: m.id < "0009")
    backend = get_backend(settings.yoyo_url)
    try:
        with backend.lock():
            backend.apply_migrations(backend.to_apply(before))
    finally:
        backend.connection.close()
    engine = create_engine(_sync_url(fresh_database))
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO users (id, username, username_key, email, email_key, password_hash, created_at) "
                "VALUES ('u1', 'A', 'a', 'a@x', 'a@x', 'h', '2024-01-01 00:00:00')"
            )
            for image_id, status, name in (("i1", "active", "Old Shot.PNG"), ("i2", "pending", "half.png")):
                conn.exec_driver_sql(
                    "INSERT INTO images (id, owner_id, status, storage_key, filename, content_type, size_bytes, "
                    "delete_token_hash, created_at) VALUES "
                    f"('{image_id}', 'u1', '{status}', '{image_id}.png', '{name}', 'image/png', 1, 'h', "
                    "'2024-01-01 00:00:00')"
                )
        backend = get_backend(settings.yoyo_url)
        try:
            with backend.lock():
                backend.apply_migrations(backend.to_apply(migrations.filter(lambda m: m.id < "0010")))
        finally:
            backend.connection.close()
        with engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT image_id, owner_id, word FROM image_words").all()
        assert [tuple(r) for r in rows] == [("i1", "u1", "old shot.png")]
        assert apply_migrations(settings)  # the rest: 0010 splits them into words
        with engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT image_id, word, prev_word FROM image_words ORDER BY word").all()
        assert [tuple(r) for r in rows] == [("i1", "old", ""), ("i1", "png", "old"), ("i1", "shot", "png")]
    finally:
        engine.dispose()
