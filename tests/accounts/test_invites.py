"""Registration modes and invitation links: the first account always registers and is the
admin; `invite` needs a live link and spends one use atomically (two people racing for
the last use: one wins); expired, used-up, revoked and missing links are refused with a
clear code and create nothing; `closed` refuses everyone after the first."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from imagehost.db import utcnow
from imagehost.tables import invites, users
from imagehost.typedefs import ENGINE
from tests.support.accounts import ACCOUNT_TIERS, csrf_of, jwt_for

pytestmark = pytest.mark.tiers(*ACCOUNT_TIERS)

INVITE = pytest.mark.parametrize("settings_overrides", [{"registration_mode": "invite"}], ids=["invite"])
CLOSED = pytest.mark.parametrize("settings_overrides", [{"registration_mode": "closed"}], ids=["closed"])


def person(name: str, invite: str | None = None) -> dict[str, str]:
    body = {"username": name, "email": f"{name}@example.com", "password": "correct horse battery"}
    if invite is not None:
        body["invite"] = invite
    return body


async def n_users(client) -> int:
    async with client.server.app[ENGINE].connect() as conn:
        return (await conn.execute(select(func.count()).select_from(users))).scalar_one()


async def invite_row(client):
    async with client.server.app[ENGINE].connect() as conn:
        return (await conn.execute(select(invites))).one()


async def make_invite(client, admin, **body) -> tuple[str, str]:
    token = await jwt_for(client, admin)
    resp = await client.post("/api/admin/invites", headers={"Authorization": f"Bearer {token}"}, json=body)
    assert resp.status == 201, await resp.text()
    made = await resp.json()
    assert made["url"].startswith("http://localhost:8000/register?invite=")
    return made["id"], made["url"].split("?invite=", 1)[1]


@INVITE
async def test_the_first_account_registers_without_an_invite_and_is_the_admin(client, backend):
    resp = await client.post("/api/auth/register", json=person("founder"))
    assert resp.status == 201
    async with client.server.app[ENGINE].connect() as conn:
        assert (await conn.execute(select(users.c.role))).scalar_one() == "admin"
    second = await client.post("/api/auth/register", json=person("second"))
    assert second.status == 403 and (await second.json())["code"] == "invite_required"
    assert await n_users(client) == 1


@INVITE
async def test_two_people_racing_to_be_the_first_account_make_one_admin(client, backend):
    results = await asyncio.gather(*(client.post("/api/auth/register", json=person(f"early{n}")) for n in range(4)))
    statuses = sorted(r.status for r in results)
    assert statuses == [201, 403, 403, 403]
    for r in results:
        if r.status == 403:
            assert (await r.json())["code"] == "invite_required"
    async with client.server.app[ENGINE].connect() as conn:
        assert (await conn.execute(select(users.c.role))).all() == [("admin",)]


@CLOSED
async def test_a_closed_instance_still_takes_its_first_account(client, backend):
    assert (await client.post("/api/auth/register", json=person("founder"))).status == 201
    resp = await client.post("/api/auth/register", json=person("second"))
    assert resp.status == 403 and (await resp.json())["code"] == "registration_closed"
    assert await n_users(client) == 1


@INVITE
async def test_registering_through_an_invite_counts_a_use_and_makes_a_user(client, backend, make_user):
    admin = await make_user("boss")
    _id, token = await make_invite(client, admin, max_uses=2)
    resp = await client.post("/api/auth/register", json=person("guest", token))
    assert resp.status == 201
    assert (await invite_row(client)).uses == 1
    async with client.server.app[ENGINE].connect() as conn:
        role = (await conn.execute(select(users.c.role).where(users.c.username == "guest"))).scalar_one()
    assert role == "user"


@INVITE
@pytest.mark.parametrize("why", ["expired", "used_up", "revoked", "unknown"])
async def test_a_dead_invite_is_refused_with_its_reason_and_creates_nothing(client, backend, make_user, why):
    admin = await make_user("boss")
    _invite_id, token = await make_invite(client, admin, max_uses=1)
    async with client.server.app[ENGINE].begin() as conn:
        if why == "expired":
            await conn.execute(update(invites).values(expires_at=utcnow() - timedelta(seconds=1)))
        elif why == "used_up":
            await conn.execute(update(invites).values(uses=1))
        elif why == "revoked":
            await conn.execute(update(invites).values(revoked_at=utcnow()))
    if why == "unknown":
        token = "x" * 32
    before = (await n_users(client), tuple(await invite_row(client)))
    resp = await client.post("/api/auth/register", json=person("late", token))
    body = await resp.json()
    assert resp.status == 403 and body["code"] == "invite_invalid" and body["detail"] == {"reason": why}
    assert (await n_users(client), tuple(await invite_row(client))) == before
    # The page says so too, before the form.
    page = await client.get(f"/register?invite={token}")
    assert page.status == 403
    text = await page.text()
    assert {"expired": "expired", "used_up": "used up", "revoked": "withdrawn", "unknown": "not valid"}[why] in text
    assert 'name="password"' not in text


@INVITE
async def test_two_people_racing_for_the_last_use_one_wins(client, backend, make_user):
    admin = await make_user("boss")
    _id, token = await make_invite(client, admin, max_uses=1)
    first, second = await asyncio.gather(
        client.post("/api/auth/register", json=person("racer1", token)),
        client.post("/api/auth/register", json=person("racer2", token)),
    )
    statuses = sorted([first.status, second.status])
    assert statuses == [201, 403]
    loser = first if first.status == 403 else second
    assert (await loser.json())["detail"] == {"reason": "used_up"}
    assert await n_users(client) == 2
    assert (await invite_row(client)).uses == 1


@INVITE
async def test_a_taken_username_does_not_spend_the_invite(client, backend, make_user):
    admin = await make_user("boss")
    _id, token = await make_invite(client, admin, max_uses=1)
    resp = await client.post("/api/auth/register", json=person("boss", token))
    assert resp.status == 409
    assert (await invite_row(client)).uses == 0


@INVITE
async def test_the_register_page_works_through_the_link(client, backend, make_user):
    admin = await make_user("boss")
    _id, token = await make_invite(client, admin, max_uses=1)
    client.session.cookie_jar.clear()
    bare = await client.get("/register")
    assert bare.status == 403 and "by invitation" in await bare.text()
    page = await client.get(f"/register?invite={token}")
    html = await page.text()
    assert page.status == 200 and f'name="invite" value="{token}"' in html
    resp = await client.post(
        "/register",
        data={**person("guest"), "invite": token, "csrf_token": csrf_of(html)},
        allow_redirects=False,
    )
    assert resp.status == 303
    assert (await invite_row(client)).uses == 1
    assert (await client.get("/api/auth/me")).status == 200


async def test_revoking_an_invite_is_audited_and_a_second_revoke_is_404(client, backend, make_user):
    admin = await make_user("boss")
    invite_id, _token = await make_invite(client, admin, max_uses=3, expires_in="1h")
    h = {"Authorization": f"Bearer {await jwt_for(client, admin)}"}
    listed = (await (await client.get("/api/admin/invites", headers=h)).json())["invites"]
    assert [(i["id"], i["state"], i["uses"], i["max_uses"], i["created_by"]) for i in listed] == [
        (invite_id, "active", 0, 3, "boss")
    ]
    assert (await client.delete(f"/api/admin/invites/{invite_id}", headers=h)).status == 204
    assert (await client.delete(f"/api/admin/invites/{invite_id}", headers=h)).status == 404
    listed = (await (await client.get("/api/admin/invites", headers=h)).json())["invites"]
    assert listed[0]["state"] == "revoked"
    trail = (await (await client.get("/api/admin/audit", headers=h)).json())["entries"]
    assert [e["action"] for e in trail] == ["invite_revoke", "invite"]


@pytest.mark.parametrize(
    "body",
    [
        {"expires_in": "forever"},
        {"expires_in": 10},
        {"expires_in": "400d"},
        {"max_uses": 0},
        {"max_uses": 5000},
        {"max_uses": "many"},
        {"max_uses": True},
    ],
)
async def test_a_bad_invite_request_is_refused_and_makes_nothing(client, backend, make_user, body):
    admin = await make_user("boss")
    h = {"Authorization": f"Bearer {await jwt_for(client, admin)}"}
    resp = await client.post("/api/admin/invites", headers=h, json=body)
    assert resp.status == 422 and (await resp.json())["code"] == "invalid_input"
    async with client.server.app[ENGINE].connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(invites))).scalar_one() == 0


async def test_an_invite_outlives_the_admin_who_made_it(client, backend, make_user):
    boss, deputy = await make_user("boss"), await make_user("deputy")
    h = {"Authorization": f"Bearer {await jwt_for(client, boss)}"}
    await client.patch(f"/api/admin/users/{deputy.id}", headers=h, json={"role": "admin"})
    invite_id, _token = await make_invite(client, deputy, max_uses=1)
    assert (await client.delete(f"/api/admin/users/{deputy.id}", headers=h)).status == 204
    listed = (await (await client.get("/api/admin/invites", headers=h)).json())["invites"]
    assert [(i["id"], i["created_by"], i["state"]) for i in listed] == [(invite_id, None, "active")]
