"""GET /api/export of ≥ 1 GB of originals: the server's RSS while the ZIP streams
(idle, peak, peak − idle) beside the archive's size and the download's speed, for local
storage and for S3 (a moto server). The originals are written straight to the folder or
the bucket and their rows inserted with SQL (no uploads: the export only copies bytes,
so they need not be images). The downloaded archive is checked: its length is the
announced Content-Length and every entry's CRC matches (zipfile.testzip).

    .venv/bin/python bench/export_memory.py [--mb 1024] [--files 64] [--storage local,s3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sqlite3
import tempfile
import time
import zipfile
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from _harness import RssSampler, Server, imagehost, moto_server, session


def seed(server: Server, files: int, size: int, put: Callable[[str, bytes], None]) -> int:
    """`files` originals of `size` bytes each, stored by `put(key, data)`, and their rows
    (active, pipeline done, so nothing in the background touches them)."""
    block = os.urandom(size)
    start = datetime(2024, 1, 1)
    rows = []
    for i in range(files):
        key = f"{secrets.token_urlsafe(12)}.png"
        # each object differs from the others in its first bytes: the CRCs are checked per entry
        put(key, i.to_bytes(8, "big") + block[8:])
        rows.append(
            (
                secrets.token_urlsafe(12),
                server.user_id,
                "active",
                key,
                f"export-{i:04}.png",
                "image/png",
                size,
                100,
                100,
                "0" * 64,
                (start + timedelta(seconds=i)).isoformat(" "),
                1,
                0,
            )
        )
    db = server.env["DATABASE_URL"].split(":///", 1)[1]
    conn = sqlite3.connect(db)
    with conn:
        conn.executemany(
            "INSERT INTO images (id, owner_id, status, storage_key, filename, content_type, size_bytes, width, "
            "height, delete_token_hash, created_at, pipeline_version, animated) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        conn.execute(
            "UPDATE users SET image_count = ?, storage_used_bytes = ? WHERE id = ?",
            (files, files * size, server.user_id),
        )
    conn.close()
    return files * size


async def download(server: Server, fh: BinaryIO) -> tuple[int, int, float, int, int]:
    """(announced length, bytes received, seconds, idle RSS kB, peak RSS kB)."""
    headers = {"Authorization": f"Bearer {server.api_key}"}
    idle = server.rss_kb()[0]
    async with session(1) as s:
        t0 = time.perf_counter()
        with RssSampler(server.pid) as rss:
            async with s.get(f"{server.base}/api/export", headers=headers) as resp:
                assert resp.status == 200, resp.status
                announced = int(resp.headers["Content-Length"])
                received = 0
                async for chunk in resp.content.iter_chunked(1 << 20):
                    fh.write(chunk)
                    received += len(chunk)
        seconds = time.perf_counter() - t0
    return announced, received, seconds, idle, rss.peak


def check(dest: Path, files: int) -> None:
    with zipfile.ZipFile(dest) as archive:
        bad = archive.testzip()
        assert bad is None, f"CRC mismatch in {bad}"
        names = archive.namelist()
        assert len(names) == files + 1 and names[-1] == "metadata.json", names[-3:]


def run(storage: str, files: int, size: int) -> None:
    with moto_server() if storage == "s3" else _none() as (endpoint, _moto_pid):
        extra = {"s3_endpoint": endpoint} if storage == "s3" else {}
        with imagehost(storage=storage, **extra) as server:
            if storage == "s3":
                import boto3

                s3 = boto3.client(
                    "s3",
                    endpoint_url=endpoint,
                    region_name="us-east-1",
                    aws_access_key_id="testing",
                    aws_secret_access_key="testing",
                )
                bucket = server.env["R2_BUCKET_NAME"]

                def put(key: str, data: bytes) -> None:
                    s3.put_object(Bucket=bucket, Key=key, Body=data)
            else:
                root = Path(server.env["LOCAL_STORAGE_PATH"])

                def put(key: str, data: bytes) -> None:
                    (root / key).write_bytes(data)

            t0 = time.perf_counter()
            total = seed(server, files, size, put)
            print(f"[{storage}] seeded {files} originals, {total / 2**20:.0f} MiB, in {time.perf_counter() - t0:.1f} s")
            with tempfile.TemporaryDirectory(prefix="export-bench-") as tmp:
                dest = Path(tmp) / "export.zip"
                with open(dest, "wb") as fh:
                    announced, received, seconds, idle, peak = asyncio.run(download(server, fh))
                assert received == announced == dest.stat().st_size, (announced, received)
                check(dest, files)
            print(
                f"[{storage}] archive {received / 2**20:.0f} MiB (Content-Length {announced}, all received, "
                f"CRCs ok) in {seconds:.1f} s = {received / 2**20 / seconds:.0f} MiB/s\n"
                f"[{storage}] server RSS: idle {idle / 1024:.1f} MiB, peak {peak / 1024:.1f} MiB, "
                f"peak - idle {(peak - idle) / 1024:.1f} MiB"
            )


class _none:
    def __enter__(self) -> tuple[str, int]:
        return "", 0

    def __exit__(self, *exc: object) -> None:
        return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=1024, help="MiB of originals in all")
    ap.add_argument("--files", type=int, default=64)
    ap.add_argument("--storage", default="local,s3")
    args = ap.parse_args()
    size = args.mb * 2**20 // args.files
    for storage in args.storage.split(","):
        run(storage, args.files, size)


if __name__ == "__main__":
    main()
