"""Helpers shared by the accounts tests: a browser-like login, the CSRF token of a page,
the session cookie, and the raw Set-Cookie header."""

from __future__ import annotations

import re

from aiohttp import ClientResponse

from imagehost.accounts.identity import SESSION_COOKIE

ACCOUNT_TIERS = ("sqlite-local", "pg-local")  # storage plays no part in accounts
_META = re.compile(r'<meta name="csrf-token" content="([^"]*)"')
_FIELD = re.compile(r'name="csrf_token" value="([^"]*)"')


def csrf_of(html: str) -> str:
    m = _META.search(html) or _FIELD.search(html)
    assert m and m.group(1), "the page carries a CSRF token"
    return m.group(1)


async def page_token(client, path: str = "/login") -> str:
    resp = await client.get(path)
    assert resp.status == 200, (path, resp.status)
    return csrf_of(await resp.text())


def session_cookie(client) -> str | None:
    cookie = client.session.cookie_jar.filter_cookies(client.make_url("/")).get(SESSION_COOKIE)
    return cookie.value if cookie is not None else None


def set_cookie_headers(resp: ClientResponse) -> list[str]:
    return [h for h in resp.headers.getall("Set-Cookie", []) if h.startswith(SESSION_COOKIE + "=")]


async def browser_login(
    client, username: str, password: str, next_path: str | None = None, headers: dict[str, str] | None = None
) -> ClientResponse:
    """GET the login page (for its session and token), then POST the form without
    following the redirect."""
    token = await page_token(client, "/login")
    form = {"username": username, "password": password, "csrf_token": token}
    if next_path is not None:
        form["next"] = next_path
    return await client.post("/login", data=form, allow_redirects=False, headers=headers or {})


async def logged_in_token(client, account) -> str:
    """Log the test client's browser in as `account`; the session's CSRF token."""
    resp = await browser_login(client, account.username, account.password)
    assert resp.status == 303, resp.status
    return await page_token(client, "/keys")


async def jwt_for(client, account) -> str:
    resp = await client.post("/api/auth/login", json={"username": account.username, "password": account.password})
    assert resp.status == 200, await resp.text()
    return (await resp.json())["access_token"]
