"""500 uploads of a 200 KB PNG at concurrency 16 through POST /api/upload: uploads/s, p50, p99.

.venv/bin/python bench/upload_concurrency.py [--n 500] [--concurrency 16] [--db sqlite|pg] [--storage local|s3]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os

import aiohttp
from _harness import imagehost, load, moto_server, session, summary
from PIL import Image


def png_200k() -> bytes:
    side = 258  # random RGB pixels barely compress: ~200 KB
    buf = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(buf, "PNG", compress_level=1)
    return buf.getvalue()


async def run(base: str, key: str, n: int, concurrency: int, data: bytes) -> None:
    statuses: dict[int, int] = {}
    async with session(concurrency) as s:

        async def one():
            form = aiohttp.FormData()
            form.add_field("file", data, filename="shot.png", content_type="image/png")
            async with s.post(f"{base}/api/upload", data=form, headers={"Authorization": f"Bearer {key}"}) as r:
                await r.read()
                statuses[r.status] = statuses.get(r.status, 0) + 1

        seconds, lat = await load(one, n, concurrency)
    print(
        summary(f"{n} x {len(data) // 1024} KB PNG, c={concurrency}", seconds, lat).replace("req/s", "uploads/s"),
        f"  statuses {statuses}",
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--db", default="sqlite", choices=["sqlite", "pg"])
    ap.add_argument("--storage", default="local", choices=["local", "s3"])
    args = ap.parse_args()
    data = png_200k()
    print(f"# uploads ({args.db} + {args.storage})")
    if args.storage == "s3":
        with moto_server() as (endpoint, _), imagehost(args.db, "s3", endpoint) as srv:
            asyncio.run(run(srv.base, srv.api_key, args.n, args.concurrency, data))
    else:
        with imagehost(args.db, "local") as srv:
            asyncio.run(run(srv.base, srv.api_key, args.n, args.concurrency, data))


if __name__ == "__main__":
    main()
