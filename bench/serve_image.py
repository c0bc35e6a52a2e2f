"""GET /i/<key> for a 60 KB image in local mode: req/s; nginx serving the same file in
the same run, when it is installed.

    .venv/bin/python bench/serve_image.py [--requests 5000] [--concurrency 16]

One Python client drives both servers, so for nginx it is likely the client's limit.
Both servers run on CPU 0 (nginx as bench/side_by_side.py configures it).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import shutil

import aiohttp
from _harness import imagehost, load, session, summary
from PIL import Image
from side_by_side import SERVER_CPU, nginx_for

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)


def jpeg_60k() -> bytes:
    side = 240
    for q in range(95, 10, -5):
        buf = io.BytesIO()
        Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(buf, "JPEG", quality=q)
        if len(buf.getvalue()) <= 62_000:
            return buf.getvalue()
    return buf.getvalue()


async def hammer(url: str, requests: int, concurrency: int, label: str) -> float:
    async with session(concurrency) as s:

        async def one():
            async with s.get(url) as r:
                await r.read()
                assert r.status == 200, r.status

        await load(one, 100, concurrency)
        seconds, lat = await load(one, requests, concurrency)
    print(summary(label, seconds, lat))
    return requests / seconds


async def upload(base: str, key: str, data: bytes) -> str:
    async with aiohttp.ClientSession() as s:
        form = aiohttp.FormData()
        form.add_field("file", data, filename="x.jpg", content_type="image/jpeg")
        async with s.post(f"{base}/api/upload", data=form, headers={"Authorization": f"Bearer {key}"}) as r:
            return (await r.json())["public_url"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args()
    data = jpeg_60k()
    print(f"# GET /i/<key>, {len(data) // 1024} KB JPEG, c={args.concurrency}")
    with imagehost("sqlite", "local", pin=SERVER_CPU) as srv:
        url = asyncio.run(upload(srv.base, srv.api_key, data))
        ours = asyncio.run(hammer(url, args.requests, args.concurrency, "imagehost (sqlite, local)"))
        if not NGINX:
            print("nginx: not installed, skipped")
            return
        key = url.rsplit("/", 1)[-1]
        with nginx_for(NGINX, srv.tmp / "images") as base:  # side_by_side's nginx, same headers
            label = "nginx (1 worker, same file)"
            theirs = asyncio.run(hammer(f"{base}/i/{key}", args.requests, args.concurrency, label))
        print(f"imagehost / nginx: {ours / theirs:.2f}")


if __name__ == "__main__":
    main()
