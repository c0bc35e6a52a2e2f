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
