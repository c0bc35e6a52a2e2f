"""GET /api/images/ for one user with 100 and with 100 000 images, on SQLite and
PostgreSQL: req/s and p99, and the ratio of the two sizes (keyset pagination and a
kept count should make it flat). Rows are inserted directly with SQL.

    .venv/bin/python bench/list_images.py [--requests 1000] [--concurrency 8] [--db sqlite,pg]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
from datetime import datetime, timedelta

from _harness import imagehost, load, session, summary


def insert_rows(db_url: str, user_id: str, n: int) -> None:
    start = datetime(2024, 1, 1)
    rows = [
        (
            secrets.token_urlsafe(12),
            user_id,
            "active",
            f"{secrets.token_urlsafe(12)}.png",
            None,
            f"img{i}.png",
            "image/png",
            1000,
            10,
            10,
            "0" * 64,
            start + timedelta(seconds=i),
            None,
        )
        for i in range(n)
    ]
    sql = (
        "INSERT INTO images (id, owner_id, status, storage_key, upload_key, filename, content_type, size_bytes, "
        "width, height, delete_token_hash, created_at, expires_at) VALUES ({})"
    )
    if db_url.startswith("sqlite"):
        import sqlite3

        conn = sqlite3.connect(db_url.split(":///", 1)[1])
        with conn:
            conn.executemany(sql.format(",".join("?" * 13)), [(*r[:11], r[11].isoformat(" "), r[12]) for r in rows])
            conn.execute(
                "UPDATE users SET image_count = ?, storage_used_bytes = ? WHERE id = ?", (n, n * 1000, user_id)
            )
            conn.execute("ANALYZE")
        conn.close()
    else:
        import psycopg

        with psycopg.connect(db_url) as conn:
            with conn.cursor() as cur:
                cur.executemany(sql.format(",".join(["%s"] * 13)), rows)
                cur.execute(
                    "UPDATE users SET image_count = %s, storage_used_bytes = %s WHERE id = %s", (n, n * 1000, user_id)
                )
            conn.execute("ANALYZE")


async def measure(base: str, key: str, requests: int, concurrency: int, label: str) -> tuple[float, float]:
    async with session(concurrency) as s:
        headers = {"Authorization": f"Bearer {key}"}

        async def one():
            async with s.get(f"{base}/api/images/", headers=headers) as r:
                body = await r.json()
                assert r.status == 200 and len(body["images"]) == 50, r.status

        await load(one, 50, concurrency)  # warm up
        seconds, lat = await load(one, requests, concurrency)
    print(summary(label, seconds, lat))
    return requests / seconds, sorted(lat)[int(0.99 * len(lat))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--db", default="sqlite,pg")
    args = ap.parse_args()
    print("# GET /api/images/ (first page, 50 images)")
    for db in args.db.split(","):
        figures = {}
        for n in (100, 100_000):
            with imagehost(db, "local") as srv:
                insert_rows(srv.env["DATABASE_URL"], srv.user_id, n)
                figures[n] = asyncio.run(
                    measure(srv.base, srv.api_key, args.requests, args.concurrency, f"{db:<6} {n:>7} images")
                )
        (r1, p1), (r2, p2) = figures[100], figures[100_000]
        print(f"{db:<6} ratio 100 -> 100 000: throughput x{r1 / r2:.2f} slower, p99 x{p2 / p1:.2f}   (target <= 1.2)")


if __name__ == "__main__":
    main()
