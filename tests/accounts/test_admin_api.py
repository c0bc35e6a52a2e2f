"""The admin JSON API (/api/admin/...): 404 for anyone but an admin over the whole route
list, figures, the users list, role/status/quota changes with the last-admin rule, account
deletion, reset links, and the audit trail. Each refused input changes nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from imagehost.tables import audit_log, invites, password_resets, users
from imagehost.typedefs import ENGINE
from tests.support.accounts import ACCOUNT_TIERS, jwt_for, logged_in_token
from tests.support.uploads import image_bytes, upload, uploaded

pytestmark = pytest.mark.tiers(*ACCOUNT_TIERS)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def state(client) -> tuple:
    """Everything an admin action could change."""
    async with client.server.app[ENGINE].connect() as conn:
        rows = (
            await conn.execute(
                select(
                    users.c.id, users.c.role, users.c.disabled_at, users.c.quota_bytes, users.c.auth_version
                ).order_by(users.c.id)
            )
        ).all()
        counts = [
            (await conn.execute(select(func.count()).select_from(t))).scalar_one()
            for t in (audit_log, invites, password_resets)
        ]
        uses = (await conn.execute(select(invites.c.id, invites.c.uses, invites.c.revoked_at))).all()
    return tuple(map(tuple, rows)), tuple(counts), tuple(map(tuple, uses))


async def admin_and_user(client, make_user):
    admin = await make_user("boss")  # the first account of an empty instance: the admin
    user = await make_user("plain")
    return admin, user, await jwt_for(client, admin), await jwt_for(client, user)


def admin_routes(app) -> list[tuple[str, str, str]]:
    """(route name, method, path template) of every admin route, pages and API."""
    found = []
    for resource in app.router.resources():
        name = resource.name or ""
        if name.startswith(("admin", "api.admin")):
            for route in resource:
                if route.method != "HEAD":
                    found.append((name, route.method, resource.canonical))
    return found


async def test_every_admin_route_answers_404_to_anyone_but_an_admin(client, backend, make_user):
    admin, user, admin_jwt, user_jwt = await admin_and_user(client, make_user)
    made = await client.post("/api/admin/invites", headers=bearer(admin_jwt), json={})
    invite_id = (await made.json())["id"]
    routes = admin_routes(client.server.app)
    assert len(routes) >= 18  # the pages and the API: a new admin route joins this test by itself
    before = await state(client)

    async def call(method: str, path: str, headers: dict[str, str], form: dict[str, str] | None = None):
        if path.startswith("/api/"):
            body = {"json": {"role": "user"}} if method in ("POST", "PATCH") else {}
            return await client.request(method, path, headers=headers, allow_redirects=False, **body)
        data = {**(form or {}), "role": "user", "action": "disable", "confirm": admin.username}
        return await client.request(
            method, path, headers=headers, data=data if method == "POST" else None, allow_redirects=False
        )

    for name, method, template in routes:
        path = template.replace("{user_id}", admin.id).replace("{invite_id}", invite_id)
        for who, headers in (("anonymous", {}), ("user's key", user.auth), ("user's JWT", bearer(user_jwt))):
            resp = await call(method, path, headers)
            assert resp.status == 404, (name, method, who, resp.status)
    # A signed-in user's browser session, with a valid CSRF token: 404 too.
    token = await logged_in_token(client, user)
    for name, method, template in routes:
        path = template.replace("{user_id}", admin.id).replace("{invite_id}", invite_id)
        resp = await call(
            method, path, {"X-CSRF-Token": token} if path.startswith("/api/") else {}, {"csrf_token": token}
        )
        assert resp.status == 404, (name, method, "user's session", resp.status)
    assert await state(client) == before


async def test_an_admins_api_key_is_not_enough(client, backend, make_user):
    admin, _user, _aj, _uj = await admin_and_user(client, make_user)
    resp = await client.get("/api/admin/stats", headers=admin.auth)
    assert resp.status == 403 and (await resp.json())["code"] == "api_key_not_allowed"


async def test_figures_count_users_images_bytes_and_recent_uploads(client, backend, make_user):
    admin, user, admin_jwt, _ = await admin_and_user(client, make_user)
    a = await uploaded(client, user, image_bytes())
    b = await uploaded(client, admin, image_bytes(size=(20, 20)))
    resp = await client.get("/api/admin/stats", headers=bearer(admin_jwt))
    assert resp.status == 200
    assert await resp.json() == {
        "users": 2,
        "disabled_users": 0,
        "images": 2,
        "bytes_stored": a["size_bytes"] + b["size_bytes"],
        "uploads_last_day": 2,
        "uploads_last_week": 2,
    }


async def test_the_users_list_is_searchable_and_paginated(client, backend, make_user):
    _admin, _user, admin_jwt, _ = await admin_and_user(client, make_user)
    for name in ("carol", "caroline", "dave"):
        await make_user(name)
    resp = await client.get("/api/admin/users", headers=bearer(admin_jwt), params={"q": "CAROL"})
    assert sorted(u["username"] for u in (await resp.json())["users"]) == ["carol", "caroline"]
    resp = await client.get("/api/admin/users", headers=bearer(admin_jwt), params={"q": "%"})  # not a wildcard
    assert (await resp.json())["users"] == []
    seen, cursor = [], None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        body = await (await client.get("/api/admin/users", headers=bearer(admin_jwt), params=params)).json()
        seen += [u["username"] for u in body["users"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(["boss", "plain", "carol", "caroline", "dave"]) and len(seen) == 5
    row = next(
        u
        for u in (await (await client.get("/api/admin/users", headers=bearer(admin_jwt))).json())["users"]
        if u["username"] == "boss"
    )
    assert row["role"] == "admin" and row["status"] == "active" and row["quota_is_default"] is True
    assert row["quota_bytes"] == backend.settings.default_quota_bytes
    bad = await client.get("/api/admin/users", headers=bearer(admin_jwt), params={"cursor": "!!"})
    assert bad.status == 400 and (await bad.json())["code"] == "invalid_cursor"


@pytest.mark.parametrize(
    "body",
    [
        {"role": "root"},
        {"disabled": "yes"},
        {"quota_bytes": -1},
        {"quota_bytes": "5"},
        {"quota_bytes": True},
        {"nickname": "x"},
        {},
    ],
    ids=["role", "disabled", "negative-quota", "string-quota", "bool-quota", "unknown-field", "empty"],
)
async def test_a_bad_change_is_refused_and_changes_nothing(client, backend, make_user, body):
    _admin, user, admin_jwt, _ = await admin_and_user(client, make_user)
    before = await state(client)
    resp = await client.patch(f"/api/admin/users/{user.id}", headers=bearer(admin_jwt), json=body)
    assert resp.status == 422 and (await resp.json())["code"] == "invalid_input"
    assert await state(client) == before


async def test_role_status_and_quota_changes_are_applied_and_audited(client, backend, make_user):
    _admin, user, admin_jwt, _ = await admin_and_user(client, make_user)
    url = f"/api/admin/users/{user.id}"
    resp = await client.patch(url, headers=bearer(admin_jwt), json={"role": "admin", "quota_bytes": 0})
    assert resp.status == 200
    body = await resp.json()
    assert body["role"] == "admin" and body["quota_bytes"] == 0 and body["quota_is_default"] is False
    resp = await client.patch(url, headers=bearer(admin_jwt), json={"disabled": True, "quota_bytes": None})
    body = await resp.json()
    assert body["status"] == "disabled" and body["quota_is_default"] is True
    assert (await client.get("/api/auth/me", headers=user.auth)).status == 401
    trail = await (await client.get("/api/admin/audit", headers=bearer(admin_jwt))).json()
    assert [(e["actor"], e["action"], e["target"]) for e in trail["entries"]] == [
        ("boss", "quota", "plain"),
        ("boss", "disable", "plain"),
        ("boss", "quota", "plain"),
        ("boss", "role", "plain"),
    ]
    assert trail["entries"][-1]["detail"] == {"from": "user", "to": "admin"}


@pytest.mark.parametrize("change", ["demote", "disable", "delete"])
async def test_the_last_admin_cannot_demote_disable_or_delete_themselves(client, backend, make_user, change):
    admin, user, admin_jwt, _ = await admin_and_user(client, make_user)
    before = await state(client)
    url = f"/api/admin/users/{admin.id}"
    if change == "delete":
        resp = await client.delete(url, headers=bearer(admin_jwt))
    else:
        resp = await client.patch(
            url, headers=bearer(admin_jwt), json={"role": "user"} if change == "demote" else {"disabled": True}
        )
    assert resp.status == 409 and (await resp.json())["code"] == "last_admin"
    assert await state(client) == before
    # With a second admin it works.
    await client.patch(f"/api/admin/users/{user.id}", headers=bearer(admin_jwt), json={"role": "admin"})
    resp = await client.patch(url, headers=bearer(admin_jwt), json={"role": "user"})
    assert resp.status == 200 and (await resp.json())["role"] == "user"


async def test_a_disabled_admin_does_not_count_as_the_other_admin(client, backend, make_user):
    admin, user, admin_jwt, _ = await admin_and_user(client, make_user)
    await client.patch(f"/api/admin/users/{user.id}", headers=bearer(admin_jwt), json={"role": "admin"})
    await client.patch(f"/api/admin/users/{user.id}", headers=bearer(admin_jwt), json={"disabled": True})
    resp = await client.patch(f"/api/admin/users/{admin.id}", headers=bearer(admin_jwt), json={"role": "user"})
    assert resp.status == 409


async def test_the_admins_quota_applies_to_uploads(client, backend, make_user):
    _admin, user, admin_jwt, _ = await admin_and_user(client, make_user)
    data = image_bytes(size=(120, 90), noise=True)
    await client.patch(f"/api/admin/users/{user.id}", headers=bearer(admin_jwt), json={"quota_bytes": len(data) - 1})
    resp = await upload(client, user, data)
    assert resp.status == 413 and (await resp.json())["detail"]["quota_bytes"] == len(data) - 1
    await client.patch(f"/api/admin/users/{user.id}", headers=bearer(admin_jwt), json={"quota_bytes": 0})
    assert (await upload(client, user, data)).status == 201  # 0: unlimited


async def test_deleting_a_user_through_the_api_removes_them_and_is_audited(client, backend, make_user):
    _admin, user, admin_jwt, user_jwt = await admin_and_user(client, make_user)
    await uploaded(client, user, image_bytes())
    resp = await client.delete(f"/api/admin/users/{user.id}", headers=bearer(admin_jwt))
    assert resp.status == 204
    assert (await client.get("/api/auth/me", headers=bearer(user_jwt))).status == 401
    assert (await client.get(f"/api/admin/users/{user.id}", headers=bearer(admin_jwt))).status == 404
    trail = await (await client.get("/api/admin/audit", headers=bearer(admin_jwt))).json()
    entry = trail["entries"][0]
    assert (entry["action"], entry["target"], entry["detail"]["images"]) == ("delete", "plain", 1)
    again = await client.delete(f"/api/admin/users/{user.id}", headers=bearer(admin_jwt))
    assert again.status == 404


async def test_unknown_users_and_invites_are_404(client, backend, make_user):
    _admin, _user, admin_jwt, _ = await admin_and_user(client, make_user)
    before = await state(client)
    h = bearer(admin_jwt)
    for resp in (
        await client.get("/api/admin/users/nobody", headers=h),
        await client.patch("/api/admin/users/nobody", headers=h, json={"role": "user"}),
        await client.delete("/api/admin/users/nobody", headers=h),
        await client.post("/api/admin/users/nobody/reset-link", headers=h),
        await client.delete("/api/admin/invites/nothing", headers=h),
    ):
        assert resp.status == 404, resp.url
    assert await state(client) == before
