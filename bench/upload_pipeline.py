"""What the image pipeline adds to an upload: the latency of `POST /api/upload` for a
12 MP, ~4 MB phone photo with the whole pipeline (metadata stripped, thumbnail made by
a libvips worker before the answer), side by side in one run with the same upload
with the thumbnail step taken out, and with stripping off as well. Rounds are
interleaved; medians and p90 are printed, and the differences.

    .venv/bin/python bench/upload_pipeline.py [--rounds 15]

SQLite + local storage in a temporary folder; the server runs in this process (an
aiohttp test server), the workers in their own processes as in production.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

from aiohttp import FormData
from aiohttp.test_utils import TestClient, TestServer
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from imagehost.accounts.service import create_api_key, register_user
from imagehost.app import create_app
from imagehost.config import load_settings
from imagehost.db import apply_migrations
from imagehost.images import pipeline
from imagehost.images.derivatives import Derivatives, Rendition
from imagehost.typedefs import ENV


def photo() -> bytes:
    size = (4000, 3000)
    grad = Image.linear_gradient("L").resize(size)
    im = Image.merge("RGB", (grad, grad.rotate(90).resize(size), Image.new("L", size, 90)))
    im = Image.blend(im, Image.effect_noise(size, 18).convert("RGB"), 0.35)
    exif = Image.Exif()
    exif[0x0112] = 1
    exif[0x013B] = "Jane Q. Photographer"
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=93, exif=exif)
    return buf.getvalue()


async def main(rounds: int) -> None:
    data = photo()
    tmp = Path(tempfile.mkdtemp(prefix="ih-bench-pipeline-"))
    settings = load_settings(
        _env_file=None,
        database_url=f"sqlite:///{tmp / 'db.sqlite'}",
        local_storage_path=tmp / "images",
        data_dir=tmp / "data",
        secret_key="bench-" + "x" * 40,
        bcrypt_rounds=4,
        gc_interval_seconds=0,
        log_level="WARNING",
        max_upload_mb=25,
    )
    apply_migrations(settings)
    app = create_app(settings)
    client = TestClient(TestServer(app))
    await client.start_server()
    env = app[ENV]
    user = await register_user(env, "bench", "bench@example.com", "correct horse battery")
    _key, secret = await create_api_key(env, user.id, "bench")
    real_thumbnail = pipeline.make_thumbnail

    async def no_thumbnail(env, row, src):  # the control: the same path without the worker job
        r = Rendition(path=src, width=640, height=480, size_bytes=0)
        return pipeline.Made(Derivatives(r, None, False, 4000, 3000, False, 1, 0.0))

    async def one() -> float:
        form = FormData()
        form.add_field("file", io.BytesIO(data), filename="IMG_0001.jpg", content_type="image/jpeg")
        start = time.perf_counter()
        resp = await client.post("/api/upload", data=form, headers={"Authorization": f"Bearer {secret}"})
        assert resp.status == 201, await resp.text()
        await resp.read()
        elapsed = time.perf_counter() - start
        await env.background.drain()  # the display size is made after the answer: not in the figure
        return elapsed * 1000

    cases = ("full pipeline", "no thumbnail", "no thumbnail, no stripping")
    samples: dict[str, list[float]] = {name: [] for name in cases}
    await one()  # warm the worker
    for _ in range(rounds):
        for name in cases:
            pipeline.make_thumbnail = real_thumbnail if name == "full pipeline" else no_thumbnail  # type: ignore[assignment]
            strip = name != "no thumbnail, no stripping"
            app._state[ENV] = env.__class__(
                **{**env.__dict__, "settings": env.settings.model_copy(update={"strip_metadata": strip})}
            )
            samples[name].append(await one())
    pipeline.make_thumbnail = real_thumbnail  # type: ignore[assignment]
    app._state[ENV] = env
    await client.close()

    print(f"POST /api/upload of a {len(data) / 1e6:.1f} MB 12 MP JPEG, {rounds} interleaved rounds (ms)")
    print(f"{'case':<30} {'p50':>8} {'p90':>8}")
    p50 = {}
    for name, xs in samples.items():
        xs.sort()
        p50[name] = statistics.median(xs)
        print(f"{name:<30} {p50[name]:>8.1f} {xs[int(len(xs) * 0.9) - 1]:>8.1f}")
    print(f"thumbnail adds {p50['full pipeline'] - p50['no thumbnail']:.1f} ms at p50 (budget: 150 ms)")
    print(f"stripping adds {p50['no thumbnail'] - p50['no thumbnail, no stripping']:.1f} ms at p50")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    asyncio.run(main(parser.parse_args().rounds))
