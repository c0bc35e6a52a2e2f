"""Migration 0010 on an instance with images from before 0009 (indexed by 0009 by their
whole name only): afterwards `?q=` finds them by any word of their name, as a new image."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta

from sqlalchemy import create_engine, insert, select, text
from yoyo import get_backend, read_migrations

from imagehost.accounts import store as apikeys
from imagehost.app import create_app
from imagehost.config import load_settings
from imagehost.db import MIGRATIONS_DIR, transaction, utcnow
from imagehost.images.store import filename_words
from imagehost.tables import image_words, images, users
from imagehost.typedefs import ENGINE
from tests.contract import install_contract_check

from .test_schema import SECRET, _sync_url, fresh_database  # noqa: F401  (the fixture)


def _migration_0010():
    """The migration's module, loaded the way yoyo loads it."""
    (migration,) = read_migrations(str(MIGRATIONS_DIR)).filter(lambda m: m.id == "0010_index_old_filenames")
    migration.load()
    return migration.module


TRICKY = [
    "Screenshot_2024-01-05 at 10.03.PNG",
    "STRASSE Straße.jpg",
    "ＡＢＣ.png",
    "<script>",
    "%_",
    "",
    "ﬁle－name.PNG",  # ligature, full-width hyphen
    "İstanbul.jpg",
    "cafe\u0301-CAFÉ.jpg",  # decomposed and composed
    "x²³ Ⅻ ½.png",
    "日本語の写真.jpg",
    "١٢٣-photo.png",
    "🎉party🎉.gif",
    "tab\tnew\nline.png",
    "word_word word.png",
    "a" * 100 + "-" + "b" * 70 + ".png",
]


def test_the_migration_splits_words_as_the_code_does():
    """0010 carries its own copy of `filename_words`; if this fails, the code's changed:
    old images keep 0010's words, so a new migration must re-index them (never edit 0010)."""
    migration = _migration_0010()
    for name in TRICKY:
        assert migration.filename_words(name) == filename_words(name), repr(name)
    assert migration.filename_words("Holiday_Beach-2023.JPG") == ["holiday", "beach", "2023", "jpg"]


def test_the_migration_indexes_in_batches_and_rolls_back_to_whole_names(monkeypatch):
    """Its steps on a bare sqlite3 connection, with batches of 2 over 5 images."""
    migration = _migration_0010()
    monkeypatch.setattr(migration, "BATCH", 2)
    conn = sqlite3.connect(":memory:")
    conn.execute(
        "CREATE TABLE images (id TEXT, owner_id TEXT, status TEXT, filename TEXT, created_at TEXT, expires_at TEXT)"
    )
    conn.execute(
        "CREATE TABLE image_words (image_id TEXT, owner_id TEXT, word TEXT, prev_word TEXT, "
        "created_at TEXT, expires_at TEXT)"
    )
    names = {"a": "One_Two.png", "b": "three.PNG", "c": "four five", "d": "%_", "e": "six-SEVEN.jpg"}
    for image_id, name in names.items():
        conn.execute(
            "INSERT INTO images VALUES (?, 'u', 'active', ?, '2024-01-01 00:00:00.000000', NULL)", (image_id, name)
        )
    conn.execute("INSERT INTO images VALUES ('p', 'u', 'pending', 'pending one', '2024-01-01 00:00:00.000000', NULL)")
    conn.execute("INSERT INTO image_words VALUES ('a', 'u', 'one_two.png', '', '2024-01-01 00:00:00.000000', NULL)")

    migration.index_words(conn)
    words = conn.execute("SELECT image_id, word, prev_word, created_at FROM image_words ORDER BY image_id, word")
    assert words.fetchall() == [
        (i, w, p, "2024-01-01 00:00:00.000000")
        for i, ws in (
            ("a", ["one", "png", "two"]),
            ("b", ["png", "three"]),
            ("c", ["five", "four"]),
            ("e", ["jpg", "seven", "six"]),
        )
        for w, p in zip(ws, ["", *ws[:-1]], strict=True)
    ]

    migration.whole_names(conn)
    words = conn.execute("SELECT image_id, word, prev_word FROM image_words ORDER BY image_id")
    assert words.fetchall() == [(i, n.lower(), "") for i, n in names.items()]


def _image(uid: str, owner: str, filename: str, created: datetime, **extra) -> dict:
    return {
        "id": uid,
        "owner_id": owner,
        "status": "active",
        "storage_key": f"{uid}-{'x' * 20}.png",
        "filename": filename,
        "content_type": "image/png",
        "size_bytes": 10,
        "delete_token_hash": "h" * 64,
        "created_at": created,
        "expires_at": None,
        "animated": False,
        "pipeline_version": 0,
        "pipeline_attempts": 0,
        **extra,
    }


async def test_images_from_before_0009_are_found_by_any_word(fresh_database, aiohttp_client, tmp_path):  # noqa: F811
    settings = load_settings(
        _env_file=None,
        database_url=fresh_database,
        secret_key=SECRET,
        data_dir=tmp_path / "data",
        public_base_url="http://localhost:8000",
        storage_backend="local",
        local_storage_path=tmp_path / "images",
        gc_interval_seconds=0,
        log_level="WARNING",
    )
    backend = get_backend(settings.yoyo_url)
    engine = create_engine(_sync_url(fresh_database))
    try:
        migrations = read_migrations(str(MIGRATIONS_DIR))
        with backend.lock():
            backend.apply_migrations(backend.to_apply(migrations.filter(lambda m: m.id < "0009")))
        base = datetime(2024, 1, 1, 12, 0, 0)  # whole seconds: SQLite's text form must survive
        with engine.begin() as conn:
            for uid, name in (("u-a", "alice"), ("u-b", "bob")):
                conn.execute(
                    insert(users).values(
                        id=uid,
                        username=name,
                        username_key=name,
                        email=f"{name}@example.com",
                        email_key=f"{name}@example.com",
                        password_hash="x",
                        storage_used_bytes=40,
                        created_at=base,
                        image_count=4 if name == "alice" else 1,
                        role="admin" if name == "alice" else "user",  # else the instance awaits its first admin
                    )
                )
            conn.execute(
                insert(images),
                [
                    _image("i1", "u-a", "Holiday_Beach-2023.JPG", base),
                    _image("i2", "u-a", "beach party.png", base + timedelta(seconds=1)),
                    _image("i3", "u-a", "Screenshot 2023-05-01.png", base + timedelta(seconds=2)),
                    _image("i4", "u-a", "%_.png", base + timedelta(seconds=3)),
                    _image("i5", "u-a", "beach pending.png", base + timedelta(seconds=4), status="pending"),
                    _image(
                        "i6", "u-a", "old beach.png", base + timedelta(seconds=5), expires_at=base + timedelta(days=1)
                    ),
                    _image("i7", "u-b", "Beach of bob.png", base + timedelta(seconds=6)),
                ],
            )
        with backend.lock():
            applied = backend.to_apply(migrations)
            assert [m.id for m in applied] == ["0009_albums", "0010_index_old_filenames"]
            backend.apply_migrations(applied)
        with engine.connect() as conn:
            rows = conn.execute(
                select(image_words.c.image_id, image_words.c.word, image_words.c.prev_word).order_by(
                    image_words.c.image_id, image_words.c.word
                )
            ).all()
            # created_at and expires_at copied exactly (the search sorts and compares them)
            copied = conn.execute(
                text(
                    "SELECT COUNT(*) FROM image_words w JOIN images i ON i.id = w.image_id "
                    "WHERE w.created_at = i.created_at AND (w.expires_at = i.expires_at OR "
                    "(w.expires_at IS NULL AND i.expires_at IS NULL))"
                )
            ).scalar_one()
    finally:
        engine.dispose()
        backend.connection.close()

    assert [tuple(r) for r in rows if r[0] == "i1"] == [
        ("i1", "2023", ""),
        ("i1", "beach", "2023"),
        ("i1", "holiday", "beach"),
        ("i1", "jpg", "holiday"),
    ]
    assert {r[0] for r in rows} == {"i1", "i2", "i3", "i4", "i6", "i7"}  # not the pending one
    assert [r[1] for r in rows if r[0] == "i4"] == ["png"]
    assert copied == len(rows)

    app = install_contract_check(create_app(settings))
    client = await aiohttp_client(app)
    async with transaction(app[ENGINE]) as conn:
        _key, secret = await apikeys.create_key(conn, "u-a", "tests")
    auth = {"Authorization": f"Bearer {secret}"}

    async def search(q: str) -> tuple[list[str], int]:
        resp = await client.get("/api/images/", params={"q": q}, headers=auth)
        body = await resp.json()
        assert resp.status == 200, body
        return [i["filename"] for i in body["images"]], body["total"]

    assert utcnow() > base + timedelta(days=1)  # i6 has expired
    assert await search("beach") == (["beach party.png", "Holiday_Beach-2023.JPG"], 2)
    assert await search("PARTY") == (["beach party.png"], 1)
    assert await search("2023") == (["Screenshot 2023-05-01.png", "Holiday_Beach-2023.JPG"], 2)
    assert await search("hol 20 jp") == (["Holiday_Beach-2023.JPG"], 1)
    assert await search("png") == (["%_.png", "Screenshot 2023-05-01.png", "beach party.png"], 3)
    assert await search("pending") == ([], 0)  # a pending image has no words
    assert await search("bob") == ([], 0)  # someone else's
    assert await search("each") == ([], 0)  # a word's start, not its middle
