"""The admin pages, without JavaScript: every action is a CSRF-checked form that
redirects back and says what it did; links made for someone are shown once; the account
menu links to /admin for admins only."""

from __future__ import annotations

import re

import pytest
from jinja2.filters import do_filesizeformat
from sqlalchemy import func, select

from imagehost.tables import audit_log, images, invites, users
from imagehost.typedefs import ENGINE
from tests.support.accounts import ACCOUNT_TIERS, logged_in_token
from tests.support.uploads import image_bytes, uploaded

pytestmark = pytest.mark.tiers(*ACCOUNT_TIERS)


async def user_row(client, user_id: str):
    async with client.server.app[ENGINE].connect() as conn:
        return (await conn.execute(select(users).where(users.c.id == user_id))).first()


async def count(client, table) -> int:
    async with client.server.app[ENGINE].connect() as conn:
        return (await conn.execute(select(func.count()).select_from(table))).scalar_one()


async def post(client, path: str, token: str, **data: str):
    return await client.post(path, data={"csrf_token": token, **data}, allow_redirects=False)


async def follow(client, resp) -> str:
    assert resp.status == 303, (resp.status, await resp.text())
    page = await client.get(resp.headers["Location"])
    assert page.status == 200
    return await page.text()


async def test_the_account_menu_links_to_admin_for_admins_only(client, backend, make_user):
    admin, user = await make_user("boss"), await make_user("plain")
    await logged_in_token(client, user)
    assert 'data-testid="admin-link"' not in await (await client.get("/gallery")).text()
    assert (await client.get("/admin")).status == 404
    client.session.cookie_jar.clear()
    await logged_in_token(client, admin)
    html = await (await client.get("/gallery")).text()
    assert 'href="/admin" data-testid="admin-link"' in html


async def test_the_overview_shows_figures_invites_and_the_audit_trail(client, backend, make_user):
    admin, user = await make_user("boss"), await make_user("plain")
    body = await uploaded(client, user, image_bytes())
    token = await logged_in_token(client, admin)
    html = await follow(client, await post(client, "/admin/invites", token, expires_in="1d", max_uses="3"))
    urls = re.findall(r'value="(http://localhost:8000/register\?invite=[^"]+)"', html)
    assert len(urls) == 1 and 'data-testid="new-link"' in html
    assert 'data-figure="users">2<' in html and 'data-figure="images">1<' in html
    assert f'data-figure="bytes_stored">{do_filesizeformat(body["size_bytes"], True)}<' in html
    assert "0 of 3" in html and "Created invitation" in html and ">boss<" in html
    again = await (await client.get("/admin")).text()
    assert "register?invite=" not in again  # shown once


async def test_user_actions_through_forms_change_and_say_so(client, backend, make_user):
    admin, user = await make_user("boss"), await make_user("plain")
    token = await logged_in_token(client, admin)
    base = f"/admin/users/{user.id}"
    html = await follow(client, await post(client, f"{base}/role", token, role="admin"))
    assert "plain is now an admin." in html and 'data-testid="user-role">admin<' in html
    html = await follow(client, await post(client, f"{base}/quota", token, quota="2.5"))
    assert "Quota saved." in html
    assert (await user_row(client, user.id)).quota_bytes == int(2.5 * 1024 * 1024)
    html = await follow(client, await post(client, f"{base}/quota", token, quota=""))
    assert (await user_row(client, user.id)).quota_bytes is None and "(the default)" in html
    html = await follow(client, await post(client, f"{base}/status", token, action="disable"))
    assert "plain is disabled." in html and (await user_row(client, user.id)).disabled_at is not None
    html = await follow(client, await post(client, f"{base}/status", token, action="enable"))
    assert (await user_row(client, user.id)).disabled_at is None
    html = await follow(client, await post(client, f"{base}/reset-link", token))
    assert re.search(r'value="http://localhost:8000/reset/[A-Za-z0-9_-]+"', html)
    assert await count(client, audit_log) == 6


@pytest.mark.parametrize(
    ("action", "data", "words"),
    [
        ("role", {"role": "user"}, "cannot demote the last admin"),
        ("status", {"action": "disable"}, "cannot disable the last admin"),
        ("quota", {"quota": "lots"}, "quota: a number of megabytes"),
        ("quota", {"quota": "-1"}, "quota: a number of megabytes"),
        ("role", {"role": "root"}, "role: admin or user"),
        ("delete", {"confirm": "someone else"}, "Type the username to confirm"),
        ("delete", {"confirm": "boss"}, "cannot delete the last admin"),
    ],
)
async def test_a_refused_form_says_why_and_changes_nothing(client, backend, make_user, action, data, words):
    admin = await make_user("boss")
    token = await logged_in_token(client, admin)
    before = tuple(await user_row(client, admin.id))
    html = await follow(client, await post(client, f"/admin/users/{admin.id}/{action}", token, **data))
    assert 'data-testid="admin-notice"' in html and words in html
    assert tuple(await user_row(client, admin.id)) == before
    assert await count(client, audit_log) == 0


async def test_a_form_without_its_csrf_token_is_refused(client, backend, make_user):
    admin, user = await make_user("boss"), await make_user("plain")
    await logged_in_token(client, admin)
    resp = await client.post(f"/admin/users/{user.id}/status", data={"action": "disable"}, allow_redirects=False)
    assert resp.status == 403
    assert (await user_row(client, user.id)).disabled_at is None


async def test_deleting_through_the_page_needs_the_name_and_removes_everything(client, backend, make_user):
    admin, user = await make_user("boss"), await make_user("plain")
    await uploaded(client, user, image_bytes())
    token = await logged_in_token(client, admin)
    resp = await post(client, f"/admin/users/{user.id}/delete", token, confirm="plain")
    assert resp.status == 303 and resp.headers["Location"] == "/admin/users"
    html = await follow(client, resp)
    assert "plain and everything they stored were deleted." in html
    assert await user_row(client, user.id) is None and await count(client, images) == 0


async def test_the_users_page_searches_and_pages(client, backend, make_user):
    admin = await make_user("boss")
    for n in range(3):
        await make_user(f"member{n}")
    token = await logged_in_token(client, admin)
    assert token
    html = await (await client.get("/admin/users", params={"q": "MEMBER1"})).text()
    assert html.count('data-testid="user-row"') == 1 and "member1@example.com" in html
    bad = await client.get("/admin/users", params={"q": "x" * 101})
    assert bad.status == 422 and "at most 100" in await bad.text()
    bad = await client.get("/admin/users", params={"cursor": "!!"})
    assert bad.status == 400


async def test_revoking_an_invite_from_the_page(client, backend, make_user):
    admin = await make_user("boss")
    token = await logged_in_token(client, admin)
    await follow(client, await post(client, "/admin/invites", token, expires_in="7d", max_uses="1"))
    async with client.server.app[ENGINE].connect() as conn:
        invite_id = (await conn.execute(select(invites.c.id))).scalar_one()
    html = await follow(client, await post(client, f"/admin/invites/{invite_id}/revoke", token))
    assert "Invitation revoked." in html and 'data-state="revoked"' in html
    html = await follow(client, await post(client, "/admin/invites", token, expires_in="never", max_uses="1"))
    assert "expires_in:" in html
    assert await count(client, invites) == 1


async def test_an_admin_who_demotes_themselves_lands_on_their_gallery(client, backend, make_user):
    admin, other = await make_user("boss"), await make_user("deputy")
    token = await logged_in_token(client, admin)
    await follow(client, await post(client, f"/admin/users/{other.id}/role", token, role="admin"))
    resp = await post(client, f"/admin/users/{admin.id}/role", token, role="user")
    assert resp.status == 303 and resp.headers["Location"] == "/gallery"
    assert (await user_row(client, admin.id)).role == "user"
    assert (await client.get("/admin")).status == 404


async def test_an_admin_who_disables_themselves_is_signed_out(client, backend, make_user):
    admin, other = await make_user("boss"), await make_user("deputy")
    token = await logged_in_token(client, admin)
    await follow(client, await post(client, f"/admin/users/{other.id}/role", token, role="admin"))
    resp = await post(client, f"/admin/users/{admin.id}/status", token, action="disable")
    assert resp.status == 303 and resp.headers["Location"] == "/"
    assert (await client.get("/gallery", allow_redirects=False)).status == 303  # to the login form
