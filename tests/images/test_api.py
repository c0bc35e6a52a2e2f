"""Listing, reading and deleting images; owners only; the deletion link."""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import urlsplit

import pytest

from imagehost.images import sweep
from imagehost.storage import StorageError
from imagehost.typedefs import ENGINE, ENV, STORAGE
from tests.support.uploads import error_of, image_bytes, snapshot, uploaded, used_bytes


async def test_list_is_newest_first_with_keyset_pagination(client, backend, make_user):
    user, other = await make_user(), await make_user()
    ids = [(await uploaded(client, user, image_bytes(), f"{i}.png"))["id"] for i in range(7)]
    await uploaded(client, other, image_bytes())
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        resp = await client.get("/api/images/", params=params, headers=user.auth)
        body = await resp.json()
        assert resp.status == 200, body
        assert body["total"] == 7
        assert len(body["images"]) <= 3
        seen += [i["id"] for i in body["images"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == list(reversed(ids))
    resp = await client.get("/api/images", headers=other.auth)
    assert [i["filename"] for i in (await resp.json())["images"]] == ["shot.png"]


async def test_list_defaults_and_bad_parameters(client, backend, make_user):
    user = await make_user()
    resp = await client.get("/api/images/", headers=user.auth)
    assert await resp.json() == {"images": [], "total": 0, "next_cursor": None}
    for params in ({"limit": "0"}, {"limit": "x"}, {"cursor": "not-a-cursor"}, {"cursor": "!!!"}):
        resp = await client.get("/api/images/", params=params, headers=user.auth)
        assert resp.status == 400, params
        assert error_of(await resp.json())
    assert (await client.get("/api/images/", params={"limit": "1000"}, headers=user.auth)).status == 200
    assert (await client.get("/api/images/")).status == 401


async def test_only_the_owner_reads_or_deletes_an_image(client, backend, make_user):
    alice, mallory = await make_user(), await make_user()
    img = await uploaded(client, alice, image_bytes())
    resp = await client.get(f"/api/images/{img['id']}", headers=alice.auth)
    assert resp.status == 200 and (await resp.json()) == img
    before = await snapshot(client, backend)
    for method in ("GET", "DELETE"):
        resp = await client.request(method, f"/api/images/{img['id']}", headers=mallory.auth)
        assert resp.status == 404
        assert error_of(await resp.json()) == "image not found"
    resp = await client.get("/api/images/nope", headers=mallory.auth)
    assert resp.status == 404  # the same answer for an id that does not exist
    assert await snapshot(client, backend) == before


async def test_delete_removes_row_object_and_quota(client, backend, make_user):
    user = await make_user()
    before = await snapshot(client, backend)
    img = await uploaded(client, user, image_bytes())
    resp = await client.delete(f"/api/images/{img['id']}", headers=user.auth)
    assert resp.status == 204
    assert await snapshot(client, backend) == before
    assert (await client.delete(f"/api/images/{img['id']}", headers=user.auth)).status == 404


async def test_delete_when_storage_fails_hides_the_image_now_and_the_sweep_removes_it(client, backend, make_user):
    user = await make_user()
    img = await uploaded(client, user, image_bytes())
    app = client.server.app
    real = app[STORAGE]

    class NoDelete:
        name = real.name

        def __getattr__(self, name):
            return getattr(real, name)

        async def delete(self, key):
            raise StorageError("storage down")

    app._state[ENV] = replace(app[ENV], storage=NoDelete())
    try:
        assert (await client.delete(f"/api/images/{img['id']}", headers=user.auth)).status == 204
    finally:
        app._state[ENV] = replace(app[ENV], storage=real)
    listing = await (await client.get("/api/images/", headers=user.auth)).json()
    assert listing["total"] == 0 and listing["images"] == []
    assert await used_bytes(client, user.id) == 0
    snap = await snapshot(client, backend)
    assert snap.images == 0 and snap.orphans == 2 and len(snap.objects) == 2  # the original and its thumbnail
    # The tombstone waits a little (the request's own delete may still be running) ...
    assert (await sweep.sweep(app[ENV]))["orphans_removed"] == 0
    from sqlalchemy import update

    from imagehost.tables import storage_orphans

    async with app[ENGINE].begin() as conn:
        from imagehost.db import utcnow

        await conn.execute(update(storage_orphans).values(next_attempt_at=utcnow()))
    assert (await sweep.sweep(app[ENV]))["orphans_removed"] == 2
    snap = await snapshot(client, backend)
    assert (snap.objects, snap.orphans) == (frozenset(), 0)


async def test_deletion_link_get_only_confirms_and_post_deletes_without_login(client, backend, make_user):
    user = await make_user()
    img = await uploaded(client, user, image_bytes(), "cat.png")
    path = urlsplit(img["deletion_url"]).path
    resp = await client.get(path)
    html = await resp.text()
    assert resp.status == 200
    assert "Delete cat.png?" in html and img["public_url"] in html
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert (await snapshot(client, backend)).images == 1  # a GET never deletes

    wrong = path[:-4] + ("AAAA" if not path.endswith("AAAA") else "BBBB")
    assert (await client.post(wrong)).status == 404
    assert (await snapshot(client, backend)).images == 1

    resp = await client.post(path, data={"csrf_token": "ignored"})
    assert resp.status == 200
    assert "Deleted" in await resp.text()
    snap = await snapshot(client, backend)
    assert (snap.images, snap.objects) == (0, frozenset())
    assert (await client.get(path)).status == 404


@pytest.mark.parametrize("path", ["/d/x/y", "/d/AAAAAAAAAAAAAAAA/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"])
async def test_unknown_deletion_links_are_404(client, backend, path):
    assert (await client.get(path)).status == 404
    assert (await client.post(path)).status == 404
