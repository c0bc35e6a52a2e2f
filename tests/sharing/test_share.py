"""The share page `/v/<id>` as a chat app's link-preview crawler reads it: no cookies,
the meta tags parsed with html.parser, the oEmbed answer found through the discovery
link, and `og:image` fetched — on every tier (in S3 mode `og:image` is the bucket's URL)."""

from __future__ import annotations

import io
from urllib.parse import parse_qs, urlsplit

import pytest
from PIL import Image
from sqlalchemy import update

from imagehost.images import pipeline, store
from imagehost.tables import images
from imagehost.typedefs import ENGINE, ENV
from tests.images.test_expiry import _age
from tests.support.uploads import image_bytes, snapshot, upload, uploaded

from .support import BASE, fetch_public, local_path, parse

CRAWLER = {"User-Agent": "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)"}


async def _crawl(client, page_url: str):
    client.session.cookie_jar.clear()
    resp = await client.get(local_path(page_url), headers=CRAWLER)
    return resp, await resp.text()


async def test_a_crawler_gets_the_preview_of_a_large_image_from_its_display_size(client, backend, make_user):
    user = await make_user()
    body = await uploaded(client, user, image_bytes("PNG", (2400, 1200)), filename="wide-view.png")
    await client.server.app[ENV].background.drain()  # the display size is made after the upload answered
    body = await (await client.get(f"/api/images/{body['id']}", headers=user.auth)).json()
    page_url = body["page_url"]
    assert page_url == f"{BASE}/v/{body['id']}"

    resp, html = await _crawl(client, page_url)
    assert resp.status == 200 and resp.content_type == "text/html"
    assert "Content-Security-Policy" in resp.headers and resp.headers["X-Content-Type-Options"] == "nosniff"
    tags = parse(html)
    assert tags.one("og:type") == "website"
    assert tags.one("og:url") == page_url
    assert tags.one("og:title") == "wide-view.png"
    assert tags.one("og:site_name") == "imagehost"
    assert tags.one("twitter:card") == "summary_large_image"
    assert tags.one("theme-color") == "#3a5bd9"
    og_image = tags.one("og:image")
    assert og_image == body["display_url"] != body["public_url"]  # the display size, absolute
    assert og_image.startswith(("http://", "https://"))
    assert tags.one("og:image:type") == "image/webp"
    assert (tags.one("og:image:width"), tags.one("og:image:height")) == ("2048", "1024")
    # The page shows the display size, the filename and the owner's name only.
    assert any(t == "img" and a.get("src") == og_image for t, a in tags.tags)
    assert "wide-view.png" in html and user.username in html
    for secret in (user.email, body["deletion_url"], user.api_key, urlsplit(body["deletion_url"]).path):
        assert secret not in html

    # oEmbed, found through the discovery link.
    (link,) = [a for a in tags.links if a.get("type") == "application/json+oembed"]
    assert link["rel"] == "alternate"
    assert parse_qs(urlsplit(link["href"]).query) == {"url": [page_url], "format": ["json"]}
    oembed = await client.get(local_path(link["href"]), headers=CRAWLER)
    assert oembed.status == 200 and oembed.content_type == "application/json"
    data = await oembed.json()
    assert data == {
        "version": "1.0",
        "type": "photo",
        "url": og_image,
        "width": 2048,
        "height": 1024,
        "title": "wide-view.png",
        "author_name": user.username,
        "provider_name": "imagehost",
        "provider_url": f"{BASE}/",
    }

    # og:image answers with its type, and is what the tags say it is.
    status, ctype, data_bytes = await fetch_public(client, backend, og_image)
    assert status == 200 and ctype == "image/webp"
    with Image.open(io.BytesIO(data_bytes)) as im:
        assert (im.format, im.size) == ("WEBP", (2048, 1024))


async def test_a_small_image_previews_as_itself(client, backend, make_user):
    user = await make_user()
    body = await uploaded(client, user, image_bytes("PNG", (300, 200)), filename="small.png")
    await client.server.app[ENV].background.drain()
    resp, html = await _crawl(client, body["page_url"])
    tags = parse(html)
    assert resp.status == 200
    assert tags.one("og:image") == body["public_url"] == body["display_url"]
    assert (tags.one("og:image:type"), tags.one("og:image:width"), tags.one("og:image:height")) == (
        "image/png",
        "300",
        "200",
    )
    status, ctype, data = await fetch_public(client, backend, tags.one("og:image"))
    assert status == 200 and ctype == "image/png"
    with Image.open(io.BytesIO(data)) as im:
        assert im.size == (300, 200)


async def test_a_display_size_of_unknown_dimensions_is_not_what_the_preview_points_at(client, backend, make_user):
    """A display made before its dimensions were recorded (migration 0008): the tags
    point at the original, whose size is known, never at a file of another size."""
    user = await make_user()
    body = await uploaded(client, user, image_bytes("PNG", (2400, 1200)))
    await client.server.app[ENV].background.drain()
    async with client.server.app[ENGINE].begin() as conn:
        await conn.execute(update(images).values(display_width=None, display_height=None))
    _resp, html = await _crawl(client, body["page_url"])
    tags = parse(html)
    assert tags.one("og:image") == body["public_url"]
    assert (tags.one("og:image:type"), tags.one("og:image:width"), tags.one("og:image:height")) == (
        "image/png",
        "2400",
        "1200",
    )


async def test_unknown_deleted_and_expired_images_have_no_share_page_nor_oembed(client, backend, make_user):
    user = await make_user()
    gone = await uploaded(client, user)
    assert (await client.delete(f"/api/images/{gone['id']}", headers=user.auth)).status == 204
    expiring = await (await upload(client, user, image_bytes(), headers={"X-Expires-In": "60"})).json()
    assert (await _crawl(client, expiring["page_url"]))[0].status == 200
    await _age(client, 61)
    before = await snapshot(client, backend)
    for page_url in (f"{BASE}/v/nosuchimage0000", gone["page_url"], expiring["page_url"]):
        resp, _html = await _crawl(client, page_url)
        assert resp.status == 404, page_url
        answer = await client.get("/api/oembed", params={"url": page_url, "format": "json"})
        assert answer.status == 404 and (await answer.json())["code"] == "not_found"
    assert await snapshot(client, backend) == before


async def test_oembed_refuses_urls_that_are_not_share_pages_of_this_server(client, backend, make_user):
    user = await make_user()
    body = await uploaded(client, user)
    page = body["page_url"]
    before = await snapshot(client, backend)
    for url in (
        page.replace("localhost:8000", "evil.example"),  # another host
        page.replace("http://", "https://"),  # another scheme
        page.replace("localhost:8000", "localhost:8001"),  # another port
        page.replace("/v/", "/images/"),  # another page of this server (the owner's detail page)
        body["public_url"],  # the image itself
        page + "?x=1",
        page + "#top",
        page + "/",
        "not a url",
        "javascript:alert(1)//" + body["id"],
    ):
        resp = await client.get("/api/oembed", params={"url": url, "format": "json"})
        assert resp.status == 404, url
        assert (await resp.json())["code"] == "not_found"
    ok = await client.get("/api/oembed", params={"url": page})  # format defaults to json
    assert ok.status == 200
    assert await snapshot(client, backend) == before


async def test_oembed_formats_other_than_json_are_refused(client, backend, make_user):
    """400, not the 501 the oEmbed specification suggests: a 5xx reads as a failure."""
    user = await make_user()
    body = await uploaded(client, user)
    for fmt in ("xml", "JSON", "json "):
        resp = await client.get("/api/oembed", params={"url": body["page_url"], "format": fmt})
        assert resp.status == 400
        answer = await resp.json()
        assert answer["code"] == "unsupported_format" and answer["detail"]["supported"] == ["json"]
    missing = await client.get("/api/oembed")
    assert missing.status == 422 and (await missing.json())["detail"]["field"] == "url"


async def test_the_share_page_sets_no_one_elses_time_and_asks_not_to_be_indexed(client, backend, make_user):
    user = await make_user()
    body = await (await upload(client, user, image_bytes(), params={"expires_in": "1d"})).json()
    resp, html = await _crawl(client, body["page_url"])
    assert resp.status == 200 and resp.headers["X-Robots-Tag"] == "noindex"
    tags = parse(html)
    assert any(t == "time" and a.get("datetime") == body["expires_at"] for t, a in tags.tags)
    # the copy fields: the share page, the direct link and the snippets, nothing else
    inputs = {a["id"]: a["value"] for t, a in tags.tags if t == "input" and a.get("readonly") is not None}
    assert inputs["link-page"] == body["page_url"] and inputs["link-url"] == body["public_url"]
    assert set(inputs) == {"link-url", "link-page", "link-markdown", "link-html", "link-bbcode"}
    assert urlsplit(body["deletion_url"]).path not in html


@pytest.mark.tiers("sqlite-local")
async def test_the_backfill_records_the_display_sizes_dimensions_too(client, backend, make_user):
    """An image from before the pipeline gets its display size from the backfill, and the
    preview then points at it with its own dimensions."""
    user = await make_user()
    body = await uploaded(client, user, image_bytes("PNG", (2400, 1200)))
    env = client.server.app[ENV]
    await env.background.drain()
    async with client.server.app[ENGINE].begin() as conn:
        row = await store.get(conn, body["id"])
        assert row is not None and row.display_key and row.thumb_key
        for key in (row.thumb_key, row.display_key):
            await env.storage.delete(key)
        await conn.execute(
            update(images).values(
                thumb_key=None, display_key=None, display_width=None, display_height=None, pipeline_version=0
            )
        )
    assert await pipeline.backfill(env) == {"processed": 1, "failed": 0}
    data = await (await client.get("/api/oembed", params={"url": body["page_url"]})).json()
    got = await (await client.get(f"/api/images/{body['id']}", headers=user.auth)).json()
    assert data["url"] == got["display_url"] != got["public_url"]
    assert (data["width"], data["height"]) == (2048, 1024)
