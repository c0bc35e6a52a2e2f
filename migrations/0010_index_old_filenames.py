"""Re-index the filename words of the images stored before 0009.

0009 could only index those images by their whole lower-cased filename (plain SQL cannot
split words on both databases), so `?q=` found them by the start of their name alone.
This migration gives every active image the words `_add_words` (imagehost/images/store.py)
writes for a new one: its image_words rows are deleted and replaced by its sorted filename
words, each with prev_word (the word before it in that order, '' for the first), with the
image's own created_at and expires_at. Pending images get no words, as ever.

It is a Python migration because the splitting (NFKC, case-folding, letters and digits) is
Python's. yoyo runs it in one transaction, on its synchronous drivers: sqlite3 (`?`
parameters) or psycopg 3 (`%s`). Images are read in batches by id; created_at and
expires_at are copied by the database itself (INSERT ... SELECT), never round-tripped
through Python: yoyo's sqlite3 connection would turn them into datetimes and write them
back in another text form than SQLAlchemy's, which would break SQLite's ordering.

Rollback restores 0009's indexing: each active image's whole lower-cased name as one word.
"""

from __future__ import annotations

import re
import sqlite3
import unicodedata
from typing import Any

from yoyo import step

__depends__ = {"0009_albums"}

BATCH = 500

# These must match imagehost/images/store.py `filename_words` (and MAX_WORD) as they were
# when 0010 was written: a migration must not change when the code does.
# tests/images/test_search.py checks that the two still agree.
MAX_WORD = 64
_WORD = re.compile(r"[^\W_]+")


def filename_words(text: str) -> list[str]:
    """NFKC, case-folded, split at anything that is not a letter or digit, each word
    clipped to 64 characters, without repeats (first occurrence order)."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return list(dict.fromkeys(w[:MAX_WORD] for w in _WORD.findall(folded)))


def _sql(conn: Any, statement: str) -> str:
    """The statement in the driver's parameter style (written with `?`)."""
    return statement if isinstance(conn, sqlite3.Connection) else statement.replace("?", "%s")


def _active_batches(conn: Any) -> Any:
    """(id, filename) of every active image, in batches ordered by id."""
    last = ""
    query = _sql(conn, "SELECT id, filename FROM images WHERE status = 'active' AND id > ? ORDER BY id LIMIT ?")
    while True:
        cur = conn.cursor()
        try:
            cur.execute(query, (last, BATCH))
            rows = cur.fetchall()
        finally:
            cur.close()
        if not rows:
            return
        yield rows
        last = rows[-1][0]


def index_words(conn: Any) -> None:
    delete = _sql(conn, "DELETE FROM image_words WHERE image_id = ?")
    insert = _sql(
        conn,
        "INSERT INTO image_words (image_id, owner_id, word, prev_word, created_at, expires_at) "
        "SELECT id, owner_id, ?, ?, created_at, expires_at FROM images WHERE id = ?",
    )
    for rows in _active_batches(conn):
        cur = conn.cursor()
        try:
            cur.executemany(delete, [(image_id,) for image_id, _ in rows])
            params: list[tuple[str, str, str]] = []
            for image_id, filename in rows:
                words = sorted(filename_words(filename))
                params.extend((w, p, image_id) for w, p in zip(words, ["", *words][: len(words)], strict=True))
            if params:
                cur.executemany(insert, params)
        finally:
            cur.close()


def whole_names(conn: Any) -> None:
    """0009's indexing of the images it found: the whole lower-cased name, one word."""
    cur = conn.cursor()
    try:
        cur.execute("DELETE FROM image_words")
        cur.execute(
            "INSERT INTO image_words (image_id, owner_id, word, prev_word, created_at, expires_at) "
            "SELECT id, owner_id, LOWER(SUBSTR(filename, 1, 255)), '', created_at, expires_at "
            "FROM images WHERE status = 'active'"
        )
    finally:
        cur.close()


steps = [step(index_words, whole_names)]
