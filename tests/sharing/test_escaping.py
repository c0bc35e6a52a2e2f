"""Hostile titles, filenames and embed settings: shown as the text they are in the share
page, its meta tags and the oEmbed JSON — never markup, never a template evaluated."""

from __future__ import annotations

import io

import aiohttp
import pytest

from tests.support.uploads import image_bytes

from .support import local_path, parse

pytestmark = pytest.mark.tiers("sqlite-local", "pg-local")


async def uploaded(client, user, data: bytes, filename: str) -> dict:
    """A multipart upload with the filename sent as it is (as browsers and ShareX do;
    aiohttp's FormData would percent-encode it)."""
    form = aiohttp.FormData(quote_fields=False)
    form.add_field("file", io.BytesIO(data), filename=filename, content_type="image/png")
    resp = await client.post("/api/upload", data=form, headers=user.auth)
    assert resp.status == 201, await resp.text()
    return await resp.json()


HOSTILE_FILENAME = """"><img src=x onerror=alert(1)>{username}'{{7*7}}.png"""
HOSTILE = {
    "embed_title": """"><script>alert(1)</script> {filename} {filename.__class__} {{7*7}} ' " by {username}""",
    "embed_description": 'line one\nline two "quoted" <b>bold</b> </meta><script>alert(2)</script>',
    "embed_site_name": "</title><script>alert(3)</script>",
    "embed_color": "#aabbcc",
}


async def test_hostile_settings_and_filenames_come_out_as_text(client, backend, make_user):
    user = await make_user()
    resp = await client.patch("/api/account/preferences", headers=user.auth, json=HOSTILE)
    assert resp.status == 200, await resp.text()
    body = await uploaded(client, user, image_bytes(), filename=HOSTILE_FILENAME)
    name = body["filename"]
    assert "<img src=x" in name  # kept as display text; the escaping is the page's job
    title = f'"><script>alert(1)</script> {name} {{filename.__class__}} {{{{7*7}}}} \' " by {user.username}'

    client.session.cookie_jar.clear()
    page = await client.get(local_path(body["page_url"]))
    html = await page.text()
    tags = parse(html)
    # The exact text, in every tag (html.parser undoes the escaping a browser undoes)...
    for prop in ("og:title", "twitter:title"):
        assert tags.one(prop) == title
    assert tags.title.startswith(title)
    assert tags.one("og:description") == HOSTILE["embed_description"]
    assert tags.one("og:site_name") == HOSTILE["embed_site_name"]
    assert tags.one("og:image:alt") == name
    assert tags.one("theme-color") == "#aabbcc"
    # ...and no markup of theirs: the only scripts and images are the page's own.
    scripts = [a for t, a in tags.tags if t == "script"]
    assert all(a.get("src", "").startswith("/static/") or a.get("type") == "application/json" for a in scripts)
    assert len(scripts) == 2
    assert [a["src"] for t, a in tags.tags if t == "img"] == [body["public_url"]]
    assert "alert(" not in "".join(a.get("onerror", "") for _t, a in tags.tags)
    for raw in ("<script>alert", "<img src=x", "<b>bold", "</title><script>"):
        assert raw not in html
    # {{7*7}} was never evaluated (" 49 " with its spaces: a generated username may hold "49")
    assert "{{7*7}}" in tags.title and " 49 " not in tags.title

    # The oEmbed JSON: the same text, with nothing HTML would act on in its bytes.
    (link,) = [a for a in tags.links if a.get("type") == "application/json+oembed"]
    oembed = await client.get(local_path(link["href"]))
    raw = await oembed.text()
    assert oembed.status == 200 and "<" not in raw and ">" not in raw and "&" not in raw
    data = await oembed.json()
    assert data["title"] == title and data["provider_name"] == HOSTILE["embed_site_name"]
    assert data["author_name"] == user.username


async def test_a_filename_naming_variables_is_not_expanded(client, backend, make_user):
    user = await make_user()
    await client.patch("/api/account/preferences", headers=user.auth, json={"embed_title": "[{filename}]"})
    body = await uploaded(client, user, image_bytes(), filename="{username}{date}.png")
    oembed = await client.get("/api/oembed", params={"url": body["page_url"]})
    assert (await oembed.json())["title"] == "[{username}{date}.png]"
