"""One 100 MB upload through POST /api/upload, to local storage and to moto: MB/s and
the server process's peak RSS growth; the same bytes to a bare aiohttp handler that
discards them, in the same run, for the ratio.

    .venv/bin/python bench/upload_throughput.py [--mb 100]

The file is a valid PNG (header, one huge IDAT chunk, IEND) so it passes every check;
the client streams it in 1 MiB chunks (chunked transfer) from one pre-made buffer.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import struct
import subprocess
import time
import zlib

from _harness import PY, RssSampler, free_port, imagehost, moto_server, session, wait_http

BOUNDARY = "benchB0undary"
BARE_APP = r"""
import sys
from aiohttp import web
async def sink(request):
    n = 0
    async for chunk in request.content.iter_chunked(256 * 1024):
        n += len(chunk)
    return web.json_response({"bytes": n}, status=201)
async def ok(request):
    return web.Response(text="ok")
app = web.Application()
app.router.add_post("/sink", sink)
app.router.add_get("/", ok)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


def png_parts(total_mb: int):
    size = total_mb * 1024 * 1024
    ihdr = struct.pack(">IIBBBBB", 4000, 4000, 8, 2, 0, 0, 0)
    ihdr_chunk = struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    idat_len = size - 8 - len(ihdr_chunk) - 12 - 12
    head = (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + b"\x89PNG\r\n\x1a\n"
        + ihdr_chunk
        + struct.pack(">I", idat_len)
        + b"IDAT"
    )
    tail = (
        b"\x00\x00\x00\x00"
        + struct.pack(">I", 0)
        + b"IEND"
        + struct.pack(">I", zlib.crc32(b"IEND"))
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    return head, idat_len, tail, size


async def body(total_mb: int):
    head, idat_len, tail, _ = png_parts(total_mb)
    block = os.urandom(1 << 20)
    yield head
    left = idat_len
    while left:
        n = min(len(block), left)
        yield block[:n]
        left -= n
    yield tail


async def post(url: str, headers: dict, total_mb: int) -> tuple[float, int]:
    async with session() as s:
        t0 = time.perf_counter()
        async with s.post(
            url, data=body(total_mb), headers={**headers, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
        ) as resp:
            await resp.read()
            return time.perf_counter() - t0, resp.status


def measure(label: str, url: str, headers: dict, pid: int, total_mb: int) -> float:
    with RssSampler(pid) as rss:
        seconds, status = asyncio.run(post(url, headers, total_mb))
    mbs = total_mb / seconds
    print(
        f"{label:<28} status {status}  {seconds:6.2f} s  {mbs:7.1f} MB/s   "
        f"peak RSS growth {(rss.peak - rss.start) / 1024:6.1f} MB"
    )
    return mbs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=100)
    args = ap.parse_args()
    limit = {"MAX_UPLOAD_MB": str(args.mb + 10)}
    print(f"# one {args.mb} MB upload (streamed, chunked transfer)")

    port = free_port()
    bare = subprocess.Popen([PY, "-c", BARE_APP, str(port)])
    try:
        wait_http(f"http://127.0.0.1:{port}/")
        bare_mbs = measure("bare aiohttp discard", f"http://127.0.0.1:{port}/sink", {}, bare.pid, args.mb)
    finally:
        bare.terminate()
        bare.wait(10)

    with imagehost("sqlite", "local", **limit) as srv:
        local = measure(
            "imagehost -> local folder",
            f"{srv.base}/api/upload",
            {"Authorization": f"Bearer {srv.api_key}"},
            srv.pid,
            args.mb,
        )
    with moto_server() as (endpoint, _moto_pid), imagehost("sqlite", "s3", endpoint, **limit) as srv:
        s3 = measure(
            "imagehost -> moto S3",
            f"{srv.base}/api/upload",
            {"Authorization": f"Bearer {srv.api_key}"},
            srv.pid,
            args.mb,
        )
    print(f"ratio to bare handler: local {local / bare_mbs:.2f}   moto {s3 / bare_mbs:.2f}   (target >= 0.5)")


if __name__ == "__main__":
    main()
