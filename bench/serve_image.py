"""GET /i/<key> for a 60 KB image in local mode: req/s; nginx serving the same file in
the same run, when it is installed.

    .venv/bin/python bench/serve_image.py [--requests 5000] [--concurrency 16]

One Python client drives both servers, so for nginx it is likely the client's limit.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import aiohttp
from _harness import free_port, imagehost, load, session, summary, wait_http
from PIL import Image

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
    with imagehost("sqlite", "local") as srv:
        url = asyncio.run(upload(srv.base, srv.api_key, data))
        ours = asyncio.run(hammer(url, args.requests, args.concurrency, "imagehost (sqlite, local)"))
        if not NGINX:
            print("nginx: not installed, skipped")
            return
        key = url.rsplit("/", 1)[-1]
        prefix = Path(tempfile.mkdtemp(prefix="bench-nginx-"))
        port = free_port()
        (prefix / "logs").mkdir()
        conf = prefix / "nginx.conf"
        user = "user root;" if os.geteuid() == 0 else ""  # the image folder is private to us
        conf.write_text(f"""
{user}
worker_processes 1;
daemon off;
error_log {prefix}/logs/error.log;
pid {prefix}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  sendfile on;
  types {{ image/jpeg jpg; }}
  server {{
    listen 127.0.0.1:{port};
    location /i/ {{ alias {srv.tmp / "images"}/; add_header X-Content-Type-Options nosniff;
      add_header Cache-Control "public, max-age=31536000, immutable"; }}
  }}
}}
""")
        proc = subprocess.Popen([NGINX, "-p", str(prefix), "-c", str(conf)])
        try:
            if proc.poll() is None:
                pass
            wait_http(f"http://127.0.0.1:{port}/i/{key}")
            theirs = asyncio.run(
                hammer(
                    f"http://127.0.0.1:{port}/i/{key}", args.requests, args.concurrency, "nginx (1 worker, same file)"
                )
            )
        finally:
            proc.terminate()
            proc.wait(10)
            shutil.rmtree(prefix, ignore_errors=True)
        print(f"imagehost / nginx: {ours / theirs:.2f}")


if __name__ == "__main__":
    main()
