"""Error pages in plain words with a way back; the public `/i/…` 404 knows who is
signed in without costing a served image any query; the nav marks the current page;
an empty account says so (imagehost issue 11)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import event

from imagehost.db import new_id
from imagehost.typedefs import ENGINE
from tests.support.accounts import logged_in_token
from tests.support.uploads import uploaded

pytestmark = pytest.mark.tiers("sqlite-local", "pg-local")
HTML = {"Accept": "text/html"}


async def test_a_404_page_says_what_happened_and_offers_a_way_back(client, backend):
    resp = await client.get("/no/such/page", headers=HTML)
    assert resp.status == 404
    page = await resp.text()
    assert '<h1 id="error-heading">Nothing here</h1>' in page
    assert "The link may be mistyped, or the image was deleted." in page
    assert "not found" not in page.lower()  # not "404 / Not found / not found"
    assert 'class="btn btn-primary" href="/"' in page


async def test_a_signed_in_user_gets_their_own_header_on_every_error_page(client, backend, make_user):
    account = await make_user()
    await logged_in_token(client, account)
    missing_image = f"/i/{new_id()}.png"
    for path in ("/no/such/page", missing_image, "/images/nope"):
        resp = await client.get(path, headers=HTML)
        assert resp.status == 404, path
        page = await resp.text()
        assert account.username in page and 'action="/logout"' in page, path
        assert 'href="/register"' not in page, path
        assert 'href="/gallery"' in page, path


async def test_an_anonymous_visitor_gets_the_log_in_header_on_the_image_404(client, backend):
    resp = await client.get(f"/i/{new_id()}.png", headers=HTML)
    assert resp.status == 404
    page = await resp.text()
    assert 'href="/register"' in page and 'action="/logout"' not in page


async def test_serving_an_image_to_a_signed_in_browser_costs_no_query(client, backend, make_user):
    account = await make_user()
    image = await uploaded(client, account)
    await logged_in_token(client, account)  # the browser carries its session cookie
    path = "/i/" + image["public_url"].rsplit("/i/", 1)[1]
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    engine = client.server.app[ENGINE].sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        assert (await client.get(path)).status == 200  # the first hit fills the active-key cache
        statements.clear()
        for _ in range(3):
            resp = await client.get(path)
            assert resp.status == 200
            await resp.read()
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert statements == []


@pytest.mark.parametrize("name", ["gallery", "keys", "integrations"])
async def test_the_nav_marks_the_current_page(client, backend, make_user, name):
    account = await make_user()
    await logged_in_token(client, account)
    page = await (await client.get(f"/{name}")).text()
    current = re.findall(r'<a [^>]*href="([^"]+)"[^>]*aria-current="page"', page)
    assert current == [f"/{name}"]


async def test_the_login_page_is_marked_current_for_a_visitor(client, backend):
    page = await (await client.get("/login")).text()
    assert re.findall(r'<a [^>]*href="([^"]+)"[^>]*aria-current="page"', page) == ["/"]


async def test_storage_line_says_nothing_is_stored_then_a_real_size(client, backend, make_user):
    account = await make_user()
    await logged_in_token(client, account)
    page = await (await client.get("/gallery")).text()
    # The storage line (the quota meter's own fallback text may say "0 Bytes of 1.1 GB":
    # every account has a quota since DEFAULT_USER_QUOTA_MB).
    line = re.search(r"<span data-used>(.*?)</span>", page)
    assert line and line.group(1) == "Nothing stored yet"
    jar = client.session.cookie_jar
    cookies = list(jar)
    jar.clear()  # a script: bearer key, no cookie
    await uploaded(client, account)
    for morsel in cookies:
        jar.update_cookies({morsel.key: morsel.value})
    page = await (await client.get("/gallery")).text()
    assert re.search(r"\d+(\.\d)? (Bytes|kB) used", page) and "Nothing stored yet" not in page
