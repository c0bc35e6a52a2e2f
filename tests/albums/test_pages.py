"""The album page `/a/<id>`: what a link-preview crawler sees (no cookies), who may see a
private album, the password form and its throttle, and titles that try to be markup."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import aiohttp
import pytest
from sqlalchemy import select

from imagehost.tables import albums, login_failures
from imagehost.typedefs import ENGINE
from tests.support.accounts import ACCOUNT_TIERS, browser_login, csrf_of
from tests.support.uploads import image_bytes, uploaded


class Meta(HTMLParser):
    """The <meta property/name=… content=…> of a page, as a crawler reads them."""

    def __init__(self) -> None:
        super().__init__()
        self.meta: dict[str, str] = {}
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "meta" and (a.get("property") or a.get("name")) and a.get("content") is not None:
            self.meta[str(a.get("property") or a.get("name"))] = str(a["content"])
        self._in_title = tag == "title"

    def handle_endtag(self, tag: str) -> None:
        self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data


def meta_of(html: str) -> Meta:
    parser = Meta()
    parser.feed(html)
    return parser


async def new_album(client, user, **fields) -> dict:
    resp = await client.post("/api/albums", json={"title": "Trip", **fields}, headers=user.auth)
    assert resp.status == 201, await resp.text()
    return await resp.json()


def local_path(backend, url: str) -> str | None:
    """The app's own path for a URL under PUBLIC_BASE_URL (None: another host, a bucket)."""
    base = backend.settings.public_base_url.rstrip("/")
    return url[len(base) :] if url.startswith(base + "/") else None


async def crawl(client, backend, url: str) -> tuple[int, bytes, str]:
    """GET as a crawler: no cookies, no credentials, following nothing but the URL."""
    path = local_path(backend, url)
    target = str(client.make_url(path)) if path is not None else url
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as s, s.get(target) as resp:
        return resp.status, await resp.read(), resp.headers.get("Content-Type", "")


def public_bucket(backend) -> None:
    """R2 serves the public URL itself; moto needs the bucket made public first."""
    if backend.storage_kind == "local":
        return
    bucket = backend.settings.r2_bucket_name
    statement = {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}
    policy = {"Version": "2012-10-17", "Statement": [statement]}
    backend.s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))


async def test_a_crawler_gets_the_preview_and_its_image(client, backend, make_user):
    public_bucket(backend)
    user = await make_user("alice")
    older = await uploaded(client, user, image_bytes(size=(300, 200)), "first.png")
    cover = await uploaded(client, user, image_bytes(size=(120, 90)), "cover.png")
    album = await new_album(client, user, title="Holiday", description="By the sea", visibility="unlisted")
    resp = await client.put(
        f"/api/albums/{album['id']}/images", json={"image_ids": [older["id"], cover["id"]]}, headers=user.auth
    )
    assert resp.status == 200
    status, body, ctype = await crawl(client, backend, album["page_url"])
    assert status == 200 and ctype.startswith("text/html")
    page = meta_of(body.decode())
    m = page.meta
    assert m["og:title"] == "Holiday" and m["twitter:title"] == "Holiday"
    assert m["og:description"] == "By the sea"
    assert m["og:url"] == album["page_url"]
    assert m["og:site_name"] and m["og:type"] == "website"
    assert m["twitter:card"] == "summary_large_image"
    assert m["og:image"] == cover["display_url"] and m["og:image"].startswith("http")  # absolute
    assert (int(m["og:image:width"]), int(m["og:image:height"])) == (120, 90)
    status, data, ctype = await crawl(client, backend, m["og:image"])
    assert status == 200 and ctype == m["og:image:type"] == "image/png"
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    html = body.decode()
    assert "Holiday" in page.title
    assert html.count('data-testid="album-tile"') == 2
    assert "by alice" in html and user.email not in html  # the owner's name, nothing else of theirs
    # no owner controls: no delete form, no link to the owner's image pages, no deletion URL
    assert 'data-testid="delete"' not in html and 'href="/images/' not in html and "/d/" not in html


@pytest.mark.tiers(*ACCOUNT_TIERS)
async def test_private_albums_are_404_to_all_but_the_owner(client, backend, make_user):
    owner, other = await make_user(), await make_user()
    album = await new_album(client, owner, title="Mine")
    status, _body, _ = await crawl(client, backend, album["page_url"])
    assert status == 404
    assert (await browser_login(client, other.username, other.password)).status == 303
    assert (await client.get(f"/a/{album['id']}")).status == 404
    assert (await browser_login(client, owner.username, owner.password)).status == 303
    resp = await client.get(f"/a/{album['id']}")
    assert resp.status == 200 and "only you can see this page" in await resp.text()
    assert (await client.get("/a/unknown-album")).status == 404


@pytest.mark.tiers(*ACCOUNT_TIERS)
async def test_a_public_album_page_shows_no_preview_image_when_empty(client, backend, make_user):
    user = await make_user()
    album = await new_album(client, user, visibility="public")
    status, body, _ = await crawl(client, backend, album["page_url"])
    m = meta_of(body.decode()).meta
    assert status == 200 and "og:image" not in m and m["twitter:card"] == "summary"


async def unlock(client, album_id: str, password: str) -> aiohttp.ClientResponse:
    page = await client.get(f"/a/{album_id}")
    token = csrf_of(await page.text())
    return await client.post(f"/a/{album_id}", data={"password": password, "csrf_token": token}, allow_redirects=False)


@pytest.mark.tiers(*ACCOUNT_TIERS)
async def test_a_password_protected_album_asks_and_remembers(client, backend, make_user):
    user = await make_user()
    img = await uploaded(client, user, image_bytes(), "secret-cover.png")
    album = await new_album(client, user, title="Hidden title", visibility="unlisted")
    await client.put(f"/api/albums/{album['id']}/images", json={"image_ids": [img["id"]]}, headers=user.auth)
    await client.patch(f"/api/albums/{album['id']}", json={"password": "open sesame"}, headers=user.auth)

    status, body, _ = await crawl(client, backend, album["page_url"])
    html = body.decode()
    assert status == 200 and 'data-testid="album-password-form"' in html
    assert "og:image" not in meta_of(html).meta and "Hidden title" not in html and img["id"] not in html

    resp = await unlock(client, album["id"], "wrong")
    assert resp.status == 403 and "That is not the password" in await resp.text()
    resp = await unlock(client, album["id"], "open sesame")
    assert resp.status == 303
    page = await client.get(f"/a/{album['id']}")
    text = await page.text()
    assert page.status == 200 and "Hidden title" in text and 'data-testid="album-tile"' in text
    # changing the password forgets the earlier answer (a bearer call: this client has cookies now)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as s:
        url = client.make_url(f"/api/albums/{album['id']}")
        async with s.patch(url, json={"password": "new one"}, headers=user.auth) as resp:
            assert resp.status == 200
    assert 'data-testid="album-password-form"' in await (await client.get(f"/a/{album['id']}")).text()
    # a form without its CSRF token is refused
    resp = await client.post(f"/a/{album['id']}", data={"password": "new one"}, allow_redirects=False)
    assert resp.status == 403


@pytest.mark.tiers(*ACCOUNT_TIERS)
async def test_guessing_an_album_password_is_throttled(client, backend, make_user):
    user = await make_user()
    album = await new_album(client, user, visibility="unlisted")
    await client.patch(f"/api/albums/{album['id']}", json={"password": "right answer"}, headers=user.auth)
    statuses = [(await unlock(client, album["id"], f"guess {n}")).status for n in range(12)]
    assert statuses[:10] == [403] * 10 and statuses[10:] == [429, 429]
    # throttled before the password is checked: even the right answer is refused now
    resp = await unlock(client, album["id"], "right answer")
    assert resp.status == 429 and int(resp.headers["Retry-After"]) > 0
    async with client.server.app[ENGINE].connect() as conn:
        rows = (await conn.execute(select(login_failures.c.scope, login_failures.c.subject))).all()
    assert ("user", f"album:{album['id']}") in rows  # counted per album, and per address
    assert len(rows) == 20  # the throttled attempts were not recorded
    # the owner's other albums and the owner's own sign-in are not affected
    assert (await browser_login(client, user.username, user.password)).status == 303


TRICKS = [
    '"><script>alert(1)</script>',
    "{{ 7*7 }} {% raw %}x{% endraw %} ${7*7}",
    "' onmouseover='alert(1)",
    '</title><meta property="og:image" content="https://evil.example/x.png">',
]


@pytest.mark.tiers(*ACCOUNT_TIERS)
@pytest.mark.parametrize("title", TRICKS)
async def test_markup_in_titles_is_escaped_in_the_page_and_its_meta(client, backend, make_user, title):
    user = await make_user()
    img = await uploaded(client, user, image_bytes())
    album = await new_album(client, user, title=title, description=title, visibility="public")
    await client.put(f"/api/albums/{album['id']}/images", json={"image_ids": [img["id"]]}, headers=user.auth)
    assert album["title"] == title  # stored as given: it is display text
    status, body, _ = await crawl(client, backend, album["page_url"])
    html = body.decode()
    page = meta_of(html)
    assert status == 200
    assert page.meta["og:title"] == title and page.meta["og:description"] == title  # exact text, not markup
    assert page.meta["og:image"] == img["display_url"]  # no injected og:image
    assert "<script>alert" not in html and "evil.example" not in page.meta.get("og:image", "")
    assert "49" not in page.title  # no template was evaluated
    assert title.strip() in page.title


@pytest.mark.tiers(*ACCOUNT_TIERS)
async def test_album_rows_survive_a_refused_password_change(client, backend, make_user):
    user = await make_user()
    album = await new_album(client, user)
    async with client.server.app[ENGINE].connect() as conn:
        before = (await conn.execute(select(albums))).all()
    for bad in ("", 5, "x" * 1025):
        resp = await client.patch(f"/api/albums/{album['id']}", json={"password": bad}, headers=user.auth)
        assert resp.status == 422, bad
    async with client.server.app[ENGINE].connect() as conn:
        assert (await conn.execute(select(albums))).all() == before


@pytest.mark.tiers(*ACCOUNT_TIERS)
async def test_the_owner_manages_an_album_from_its_page(client, backend, make_user):
    owner = await make_user()
    img = await uploaded(client, owner, image_bytes())
    album = await new_album(client, owner, title="Before")
    await client.put(f"/api/albums/{album['id']}/images", json={"image_ids": [img["id"]]}, headers=owner.auth)
    assert (await browser_login(client, owner.username, owner.password)).status == 303
    listing = await client.get("/albums")
    assert listing.status == 200 and f'href="/a/{album["id"]}"' in await listing.text()
    page = await client.get(f"/a/{album['id']}")
    token = csrf_of(await page.text())
    assert 'data-testid="album-settings"' in await page.text()
    download = f'href="/api/albums/{album["id"]}/download" download'
    assert download in await page.text()
    resp = await client.get(f"/api/albums/{album['id']}/download")  # the session is enough
    assert resp.status == 200 and resp.headers["Content-Type"] == "application/zip"
    assert int(resp.headers["Content-Length"]) == len(await resp.read())
    form = {"csrf_token": token, "title": "After", "description": "d", "visibility": "unlisted", "password": "pw"}
    resp = await client.post(f"/a/{album['id']}/settings", data=form, allow_redirects=False)
    assert resp.status == 303
    async with client.server.app[ENGINE].connect() as conn:
        row = (await conn.execute(select(albums.c.title, albums.c.visibility, albums.c.password_hash))).one()
    assert row[0] == "After" and row[1] == "unlisted" and row[2].startswith("$2")
    _status, body, _ = await crawl(client, backend, album["page_url"])
    assert 'data-testid="album-password-form"' in body.decode() and "album-settings" not in body.decode()
    form = {"csrf_token": token, "title": "After", "visibility": "unlisted", "remove_password": "1"}
    assert (await client.post(f"/a/{album['id']}/settings", data=form, allow_redirects=False)).status == 303
    # no owner controls for anyone else
    status, body, _ = await crawl(client, backend, album["page_url"])
    assert status == 200 and "After" in body.decode() and "album-settings" not in body.decode()
    assert "/download" not in body.decode()
    resp = await client.post(f"/a/{album['id']}/delete", data={"csrf_token": token}, allow_redirects=False)
    assert resp.status == 303
    assert (await client.get(f"/api/albums/{album['id']}", headers=owner.auth)).status == 404
    assert (await client.get(f"/api/images/{img['id']}", headers=owner.auth)).status == 200


@pytest.mark.tiers(*ACCOUNT_TIERS)
async def test_someone_else_cannot_change_or_delete_an_album_from_the_page(client, backend, make_user):
    owner, other = await make_user(), await make_user()
    album = await new_album(client, owner, title="Mine", visibility="public")
    async with client.server.app[ENGINE].connect() as conn:
        before = (await conn.execute(select(albums))).all()
    assert (await browser_login(client, other.username, other.password)).status == 303
    page = await client.get(f"/a/{album['id']}")
    text = await page.text()
    assert page.status == 200 and "album-settings" not in text and "album-delete" not in text
    token = csrf_of(text)
    form = {"csrf_token": token, "title": "pwned", "visibility": "private"}
    assert (await client.post(f"/a/{album['id']}/settings", data=form, allow_redirects=False)).status == 404
    resp = await client.post(f"/a/{album['id']}/delete", data={"csrf_token": token}, allow_redirects=False)
    assert resp.status == 404
    # the owner's own form needs its CSRF token too
    assert (await browser_login(client, owner.username, owner.password)).status == 303
    resp = await client.post(f"/a/{album['id']}/settings", data={"title": "x"}, allow_redirects=False)
    assert resp.status == 403
    async with client.server.app[ENGINE].connect() as conn:
        assert (await conn.execute(select(albums))).all() == before
