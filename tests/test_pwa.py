"""The installable app (imagehost issue 11): the manifest, the service worker's route,
and the share target's server side, which never uploads anything."""

from __future__ import annotations

import io
import json
import re

import aiohttp
import pytest
from PIL import Image

from tests.support.accounts import logged_in_token
from tests.support.uploads import image_bytes, snapshot

pytestmark = pytest.mark.tiers("sqlite-local", "pg-local")


async def test_the_manifest_makes_the_gallery_an_installable_app_with_a_share_target(client, backend):
    resp = await client.get("/manifest.webmanifest")
    assert resp.status == 200 and resp.content_type == "application/manifest+json"
    manifest = json.loads(await resp.text())
    assert manifest["name"] == manifest["short_name"] == "imagehost"
    assert manifest["start_url"] == "/gallery" and manifest["scope"] == "/"
    assert manifest["display"] == "standalone"
    assert re.fullmatch(r"#[0-9a-f]{6}", manifest["theme_color"])
    assert re.fullmatch(r"#[0-9a-f]{6}", manifest["background_color"])
    sizes = {}
    for icon in manifest["icons"]:
        assert icon["type"] == "image/png"
        png = await client.get(icon["src"])
        assert png.status == 200 and png.content_type == "image/png"
        with Image.open(io.BytesIO(await png.read())) as img:
            assert f"{img.width}x{img.height}" == icon["sizes"]
        sizes.setdefault(icon["purpose"], set()).add(icon["sizes"])
    assert sizes == {"any": {"192x192", "512x512"}, "maskable": {"512x512"}}
    share = manifest["share_target"]
    assert share["action"] == "/share"
    assert share["method"] == "POST" and share["enctype"] == "multipart/form-data"
    assert share["params"]["files"] == [{"name": "file", "accept": ["image/*"]}]


async def test_every_page_links_the_manifest_and_the_worker(client, backend):
    page = await (await client.get("/login")).text()
    assert '<link rel="manifest" href="/manifest.webmanifest" data-worker="/sw.js">' in page
    assert 'rel="apple-touch-icon"' in page


async def test_the_service_worker_is_served_from_the_root(client, backend):
    resp = await client.get("/sw.js")
    assert resp.status == 200 and resp.content_type == "text/javascript"
    assert resp.headers["Cache-Control"] == "no-cache"
    assert resp.headers["Service-Worker-Allowed"] == "/"
    first, _, rest = (await resp.text()).partition("\n")
    config = json.loads(first.removeprefix("self.IMAGEHOST = ").removesuffix(";"))
    assert config["share"] == "/share" and config["gallery"] == "/gallery" and len(config["version"]) == 12
    assert "addEventListener('fetch'" in rest
    assert (await client.get("/static/icons/make_icons.py")).status == 404  # the drawing script is not served


def _share_form() -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("file", io.BytesIO(image_bytes()), filename="shared.png", content_type="image/png")
    return form


@pytest.mark.parametrize("site", ["same-origin", "none", "cross-site"])
async def test_a_share_post_that_reaches_the_server_uploads_nothing(client, backend, make_user, site):
    """Without a service worker to take it, the share POST lands here: with the session
    cookie, from any site, it stores nothing and says so on the gallery."""
    account = await make_user()
    await logged_in_token(client, account)
    before = await snapshot(client, backend)
    resp = await client.post("/share", data=_share_form(), headers={"Sec-Fetch-Site": site}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/gallery?shared=lost"
    assert await snapshot(client, backend) == before
    page = await client.get(resp.headers["Location"])
    assert page.status == 200 and "data-share-inbox" in await page.text()


async def test_the_share_exemption_is_only_that_path(client, backend, make_user):
    account = await make_user()
    await logged_in_token(client, account)
    for path in ("/share/x", "/shared", "/keys"):
        resp = await client.post(path, data=_share_form(), allow_redirects=False)
        assert resp.status in (403, 404, 405), (path, resp.status)
