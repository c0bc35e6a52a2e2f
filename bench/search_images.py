"""GET /api/images/?q= (the filename search) beside the plain list, for one user with 100
and with 100 000 images, on SQLite and PostgreSQL: req/s and p99, the ratio of the two
sizes, and search against the plain list. Rows (and their search words) are inserted
directly with SQL. Two searches: a rare word (1 image in 100 has it: `invoice`) and a
two-word search whose second word starts a number in one name in nine (`invoice 7`), and
a word nearly every name has (`screenshot`).

    .venv/bin/python bench/search_images.py [--requests 1000] [--concurrency 8] [--db sqlite,pg]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
from datetime import datetime, timedelta

from _harness import imagehost, load, session, summary

from imagehost.images.store import filename_words

QUERIES = {"list": None, "q=invoice": "invoice", "q=invoice 7": "invoice 7", "q=screenshot": "screenshot"}


def name_of(i: int) -> str:
    return f"invoice-{i}.png" if i % 100 == 7 else f"Screenshot_2024-01-05_{i}.png"


def insert_rows(db_url: str, user_id: str, n: int) -> None:
    start = datetime(2024, 1, 1)
    rows, words = [], []
    for i in range(n):
        image_id = secrets.token_urlsafe(12)
        name = name_of(i)
        rows.append(
            (
                image_id,
                user_id,
                "active",
                f"{secrets.token_urlsafe(12)}.png",
                None,
                name,
                "image/png",
                1000,
                10,
                10,
                "0" * 64,
                start + timedelta(seconds=i),
                None,
            )
        )
        sorted_words = sorted(filename_words(name))
        prev = ["", *sorted_words[:-1]]
        words += [(image_id, user_id, w, p, rows[-1][11], None) for w, p in zip(sorted_words, prev, strict=True)]
    sql = (
        "INSERT INTO images (id, owner_id, status, storage_key, upload_key, filename, content_type, size_bytes, "
        "width, height, delete_token_hash, created_at, expires_at) VALUES ({})"
    )
    words_sql = "INSERT INTO image_words (image_id, owner_id, word, prev_word, created_at, expires_at) VALUES ({})"
    if db_url.startswith("sqlite"):
        import sqlite3

        conn = sqlite3.connect(db_url.split(":///", 1)[1])
        with conn:
            conn.executemany(sql.format(",".join("?" * 13)), [(*r[:11], r[11].isoformat(" "), r[12]) for r in rows])
            conn.executemany(words_sql.format("?,?,?,?,?,?"), [(*r[:4], r[4].isoformat(" "), r[5]) for r in words])
            conn.execute(
                "UPDATE users SET image_count = ?, storage_used_bytes = ? WHERE id = ?", (n, n * 1000, user_id)
            )
            conn.execute("ANALYZE")
        conn.close()
    else:
        import psycopg

        with psycopg.connect(db_url) as conn, conn.cursor() as cur:
            cur.executemany(sql.format(",".join(["%s"] * 13)), rows)
            cur.executemany(words_sql.format("%s,%s,%s,%s,%s,%s"), words)
            cur.execute(
                "UPDATE users SET image_count = %s, storage_used_bytes = %s WHERE id = %s", (n, n * 1000, user_id)
            )
        # as autovacuum leaves a table in service: statistics, and the visibility map that
        # lets the count be an index-only scan
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE images")
            conn.execute("VACUUM ANALYZE image_words")


async def measure(base: str, key: str, q: str | None, requests: int, concurrency: int, label: str) -> float:
    async with session(concurrency) as s:
        headers = {"Authorization": f"Bearer {key}"}
        params = {"q": q} if q else {}

        async def one():
            async with s.get(f"{base}/api/images/", params=params, headers=headers) as r:
                body = await r.json()
                assert r.status == 200 and body["images"], (r.status, body)

        await load(one, 50, concurrency)  # warm up
        seconds, lat = await load(one, requests, concurrency)
    print(summary(label, seconds, lat))
    return requests / seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--db", default="sqlite,pg")
    args = ap.parse_args()
    print("# GET /api/images/ (first page of 50) beside ?q= searches")
    for db in args.db.split(","):
        rates: dict[tuple[int, str], float] = {}
        for n in (100, 100_000):
            with imagehost(db, "local") as srv:
                insert_rows(srv.env["DATABASE_URL"], srv.user_id, n)
                for what, q in QUERIES.items():
                    label = f"{db:<6} {n:>7} images  {what:<15}"
                    run = measure(srv.base, srv.api_key, q, args.requests, args.concurrency, label)
                    rates[n, what] = asyncio.run(run)
        for what in QUERIES:
            r1, r2 = rates[100, what], rates[100_000, what]
            print(f"{db:<6} {what:<15} 100 -> 100 000 images: throughput x{r1 / r2:.2f} slower")
        for n in (100, 100_000):
            for what in list(QUERIES)[1:]:
                ratio = rates[n, "list"] / rates[n, what]
                print(f"{db:<6} {n:>7} images: {what:<15} x{ratio:.2f} slower than the plain list")


if __name__ == "__main__":
    main()
