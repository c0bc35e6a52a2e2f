"""What a browser downloads for the first screen of a gallery of fifty phone photos
(4000×3000 JPEGs of several MB each): the thumbnails, not the originals."""

from __future__ import annotations

import io
import json
import random
import urllib.request

import pytest
from PIL import Image, ImageDraw
from playwright.sync_api import Browser

from tests.support.browser import new_context, register

from .conftest import _serve

PHOTOS = 50
LIMIT = 2 * 1024 * 1024


@pytest.fixture(scope="module")
def photo_server(request, tmp_path_factory):
    yield from _serve("local", request, tmp_path_factory, {"MAX_UPLOAD_MB": "25"})


def _photos() -> list[bytes]:
    """Fifty distinct 12 MP photos of 3–4 MB, as a phone makes them: gradients and
    sensor-like noise (which compresses like detail does), each with its own shapes."""
    size = (4000, 3000)
    grad = Image.linear_gradient("L").resize(size)
    base = Image.merge("RGB", (grad, grad.rotate(90).resize(size), Image.new("L", size, 90)))
    base = Image.blend(base, Image.effect_noise(size, 18).convert("RGB"), 0.35)
    rng = random.Random(7)
    out = []
    for i in range(PHOTOS):
        im = base.copy()
        draw = ImageDraw.Draw(im)
        for _ in range(6):
            x, y = rng.randrange(3600), rng.randrange(2600)
            draw.ellipse((x, y, x + 400, y + 400), fill=(rng.randrange(256), rng.randrange(256), i * 5))
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    assert all(len(p) > 2_500_000 for p in out)
    return out


def _upload(base: str, key: str, data: bytes, name: str) -> None:
    boundary = "w3ight" + name
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    req = urllib.request.Request(
        f"{base}/api/upload",
        data=body,
        headers={"Authorization": f"Bearer {key}", "Content-Type": f"multipart/form-data; boundary={boundary}"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=120) as resp:
        assert resp.status == 201


def test_the_first_screen_of_a_fifty_photo_gallery_transfers_under_2_mb(browser: Browser, photo_server):
    base = photo_server.base_url
    ctx = new_context(browser, base, viewport={"width": 1366, "height": 768})
    page = ctx.new_page()
    register(page, "photographer")
    key = page.evaluate(
        """async () => {
            const csrf = document.querySelector('meta[name="csrf-token"]').content;
            const r = await fetch('/api/keys', {method: 'POST', credentials: 'same-origin',
                headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrf},
                body: JSON.stringify({name: 'weight test'})});
            return (await r.json()).secret;
        }"""
    )
    photos = _photos()
    total_uploaded = sum(len(p) for p in photos)
    for i, data in enumerate(photos):
        _upload(base, key, data, f"IMG_{i:04d}.jpg")
    page.goto("/gallery", wait_until="networkidle")
    transferred = page.evaluate(
        """() => performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource'))
                 .reduce((n, e) => n + (e.transferSize || e.encodedBodySize || 0), 0)"""
    )
    images = page.evaluate(
        """() => performance.getEntriesByType('resource').filter(e => e.initiatorType === 'img').length"""
    )
    print(
        json.dumps(
            {"photos_bytes": total_uploaded, "first_screen_bytes": transferred, "images_loaded": images}, indent=None
        )
    )
    assert images >= 1  # the first screen shows photos …
    assert transferred < LIMIT  # … their thumbnails, not the originals
    ctx.close()
