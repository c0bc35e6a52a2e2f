"""The album API: create, list, read, change, delete, add and remove images; owners only;
bad input refused with nothing changed."""

from __future__ import annotations

import asyncio
import io
import json
import zipfile

import pytest
from sqlalchemy import select

from imagehost.tables import album_images, albums
from imagehost.typedefs import ENGINE
from tests.support.uploads import error_of, image_bytes, snapshot, uploaded


async def album_rows(client) -> list[tuple]:
    """Everything the album tables hold, to compare before and after a refused request."""
    async with client.server.app[ENGINE].connect() as conn:
        a = [tuple(r) for r in await conn.execute(select(albums).order_by(albums.c.id))]
        order = (album_images.c.album_id, album_images.c.image_id)
        m = [tuple(r) for r in await conn.execute(select(album_images).order_by(*order))]
    return a + m


async def new_album(client, user, **fields) -> dict:
    resp = await client.post("/api/albums", json={"title": "Trip", **fields}, headers=user.auth)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def test_create_read_list_update_delete(client, backend, make_user):
    user = await make_user()
    created = await new_album(client, user, description="Some days", visibility="unlisted")
    assert created["title"] == "Trip" and created["description"] == "Some days"
    assert created["visibility"] == "unlisted" and created["image_count"] == 0 and created["cover"] is None
    assert created["page_url"].endswith(f"/a/{created['id']}") and created["page_url"].startswith("http")
    assert created["has_password"] is False
    resp = await client.get(f"/api/albums/{created['id']}", headers=user.auth)
    assert resp.status == 200 and await resp.json() == created

    private = await new_album(client, user, title="Second")
    assert private["visibility"] == "private"  # the default
    resp = await client.get("/api/albums", params={"limit": "1"}, headers=user.auth)
    body = await resp.json()
    assert body["total"] == 2 and [a["id"] for a in body["albums"]] == [private["id"]]
    resp = await client.get("/api/albums", params={"cursor": body["next_cursor"]}, headers=user.auth)
    body = await resp.json()
    assert [a["id"] for a in body["albums"]] == [created["id"]] and body["next_cursor"] is None

    resp = await client.patch(
        f"/api/albums/{created['id']}", json={"title": "Trip 2", "visibility": "public"}, headers=user.auth
    )
    changed = await resp.json()
    assert resp.status == 200 and changed["title"] == "Trip 2" and changed["visibility"] == "public"
    assert changed["description"] == "Some days"

    resp = await client.delete(f"/api/albums/{created['id']}", headers=user.auth)
    assert resp.status == 204
    assert (await client.get(f"/api/albums/{created['id']}", headers=user.auth)).status == 404


async def test_add_and_remove_images_cover_and_count(client, backend, make_user):
    user = await make_user()
    a, b, c = [await uploaded(client, user, image_bytes(), f"{n}.png") for n in "abc"]
    album = await new_album(client, user)
    path = f"/api/albums/{album['id']}/images"
    resp = await client.put(path, json={"image_ids": [a["id"], b["id"]]}, headers=user.auth)
    body = await resp.json()
    assert resp.status == 200 and body["image_count"] == 2
    assert body["cover_image_id"] == b["id"] and body["cover"] == b["thumbnail_url"]  # the newest
    # idempotent: adding again (with a new one) counts each once
    resp = await client.put(
        f"/api/albums/{album['id']}/images", json={"image_ids": [a["id"], c["id"], a["id"]]}, headers=user.auth
    )
    assert (await resp.json())["image_count"] == 3
    # a chosen cover
    resp = await client.patch(f"/api/albums/{album['id']}", json={"cover_image_id": a["id"]}, headers=user.auth)
    assert (await resp.json())["cover_image_id"] == a["id"]
    # ?album= lists the album's images, newest first
    resp = await client.get("/api/images/", params={"album": album["id"]}, headers=user.auth)
    body = await resp.json()
    assert [i["id"] for i in body["images"]] == [c["id"], b["id"], a["id"]] and body["total"] == 3
    # an image may be in several albums
    other = await new_album(client, user, title="Other")
    resp = await client.put(f"/api/albums/{other['id']}/images", json={"image_ids": [a["id"]]}, headers=user.auth)
    assert (await resp.json())["image_count"] == 1
    # removing: out of the album, the image stays
    resp = await client.delete(f"/api/albums/{album['id']}/images/{a['id']}", headers=user.auth)
    assert resp.status == 204
    body = await (await client.get(f"/api/albums/{album['id']}", headers=user.auth)).json()
    assert body["image_count"] == 2 and body["cover_image_id"] == c["id"]  # the chosen cover left: the newest
    assert (await client.get(f"/api/images/{a['id']}", headers=user.auth)).status == 200
    resp = await client.delete(f"/api/albums/{album['id']}/images/{a['id']}", headers=user.auth)
    assert resp.status == 404  # not in it any more


async def test_deleting_an_album_keeps_its_images_and_deleting_an_image_leaves_albums(client, backend, make_user):
    user = await make_user()
    a, b = [await uploaded(client, user, image_bytes(), f"{n}.png") for n in "ab"]
    album = await new_album(client, user)
    await client.put(f"/api/albums/{album['id']}/images", json={"image_ids": [a["id"], b["id"]]}, headers=user.auth)
    resp = await client.delete(f"/api/images/{b['id']}", headers=user.auth)
    assert resp.status == 204
    body = await (await client.get(f"/api/albums/{album['id']}", headers=user.auth)).json()
    assert body["image_count"] == 1 and body["cover_image_id"] == a["id"]
    async with client.server.app[ENGINE].connect() as conn:
        rows = (await conn.execute(select(album_images.c.image_id))).scalars().all()
    assert rows == [a["id"]]  # the membership went with the image row
    before = await snapshot(client, backend)
    assert (await client.delete(f"/api/albums/{album['id']}", headers=user.auth)).status == 204
    assert await snapshot(client, backend) == before  # no image, object or quota touched
    assert (await client.get(f"/api/images/{a['id']}", headers=user.auth)).status == 200


async def test_another_users_album_is_404_on_every_route_and_unchanged(client, backend, make_user):
    alice, mallory = await make_user(), await make_user()
    img = await uploaded(client, alice, image_bytes())
    mine = await uploaded(client, mallory, image_bytes())
    album = await new_album(client, alice)
    await client.put(f"/api/albums/{album['id']}/images", json={"image_ids": [img["id"]]}, headers=alice.auth)
    before = await album_rows(client)
    aid = album["id"]
    calls = [
        ("GET", f"/api/albums/{aid}", None),
        ("PATCH", f"/api/albums/{aid}", {"title": "pwned"}),
        ("PATCH", f"/api/albums/{aid}", {"password": "letmein"}),
        ("DELETE", f"/api/albums/{aid}", None),
        ("PUT", f"/api/albums/{aid}/images", {"image_ids": [mine["id"]]}),
        ("DELETE", f"/api/albums/{aid}/images/{img['id']}", None),
        ("GET", f"/api/albums/{aid}/download", None),
    ]
    for method, path, body in calls:
        resp = await client.request(method, path, json=body, headers=mallory.auth)
        assert resp.status == 404, (method, path)
        assert error_of(await resp.json()) == "album not found"
    resp = await client.get("/api/images/", params={"album": aid}, headers=mallory.auth)
    assert resp.status == 404 and error_of(await resp.json())
    resp = await client.get("/api/albums", headers=mallory.auth)
    assert (await resp.json())["albums"] == []
    assert await album_rows(client) == before


async def test_someone_elses_image_is_404_and_nothing_is_added(client, backend, make_user):
    alice, bob = await make_user(), await make_user()
    mine = await uploaded(client, alice, image_bytes())
    theirs = await uploaded(client, bob, image_bytes())
    album = await new_album(client, alice)
    before = await album_rows(client)
    for ids in ([theirs["id"]], [mine["id"], theirs["id"]], [mine["id"], "no-such-image"]):
        resp = await client.put(f"/api/albums/{album['id']}/images", json={"image_ids": ids}, headers=alice.auth)
        assert resp.status == 404, ids
        body = await resp.json()
        assert error_of(body) == "image not found" and mine["id"] not in body["detail"]["image_ids"]
    resp = await client.patch(f"/api/albums/{album['id']}", json={"cover_image_id": theirs["id"]}, headers=alice.auth)
    assert resp.status == 404
    assert await album_rows(client) == before


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"title": ""},
        {"title": "   "},
        {"title": "x" * 201},
        {"title": "two\nlines"},
        {"title": 5},
        {"title": "ok", "description": "d" * 2001},
        {"title": "ok", "visibility": "secret"},
        {"title": "ok", "visibility": None},
        {"title": "ok", "owner_id": "someone"},
        {"title": "ok\x00"},
    ],
)
async def test_invalid_album_fields_are_422_and_change_nothing(client, backend, make_user, body):
    user = await make_user()
    album = await new_album(client, user)
    before = await album_rows(client)
    resp = await client.post("/api/albums", json=body, headers=user.auth)
    assert resp.status == 422, body
    assert error_of(await resp.json())
    patch = {k: v for k, v in body.items() if k != "title" or v != "ok"} or {"password": ""}
    resp = await client.patch(f"/api/albums/{album['id']}", json=patch, headers=user.auth)
    assert resp.status == 422, patch
    assert (await resp.json())["code"] == "invalid_input"
    assert await album_rows(client) == before


@pytest.mark.tiers("sqlite-local", "pg-local")
async def test_bad_image_id_lists_are_422(client, backend, make_user):
    user = await make_user()
    album = await new_album(client, user)
    before = await album_rows(client)
    for body in (
        {},
        {"image_ids": []},
        {"image_ids": "abc"},
        {"image_ids": [1]},
        {"image_ids": ["x" * 33]},
        {"image_ids": ["a"] * 501},
    ):
        resp = await client.put(f"/api/albums/{album['id']}/images", json=body, headers=user.auth)
        assert resp.status == 422, body
    assert await album_rows(client) == before


@pytest.mark.tiers("sqlite-local", "pg-local")
async def test_a_password_is_stored_hashed_and_can_be_cleared(client, backend, make_user):
    user = await make_user()
    album = await new_album(client, user)
    resp = await client.patch(f"/api/albums/{album['id']}", json={"password": "hunter2"}, headers=user.auth)
    assert (await resp.json())["has_password"] is True
    async with client.server.app[ENGINE].connect() as conn:
        stored = (await conn.execute(select(albums.c.password_hash))).scalar_one()
    assert stored.startswith("$2") and "hunter2" not in stored
    resp = await client.patch(f"/api/albums/{album['id']}", json={"password": None}, headers=user.auth)
    assert (await resp.json())["has_password"] is False


@pytest.mark.tiers("sqlite-local", "pg-local")
async def test_concurrent_adds_of_the_same_images_all_succeed_once(client, backend, make_user):
    user = await make_user()
    imgs = [await uploaded(client, user, image_bytes(), f"{n}.png") for n in range(3)]
    album = await new_album(client, user)
    body = {"image_ids": [i["id"] for i in imgs]}
    path = f"/api/albums/{album['id']}/images"
    answers = await asyncio.gather(*(client.put(path, json=body, headers=user.auth) for _ in range(6)))
    assert [r.status for r in answers] == [200] * 6
    async with client.server.app[ENGINE].connect() as conn:
        rows = (await conn.execute(select(album_images.c.image_id))).scalars().all()
    assert sorted(rows) == sorted(body["image_ids"])


@pytest.mark.tiers("sqlite-local", "pg-local")
async def test_an_albums_images_for_a_download_are_the_owners_live_ones_oldest_first(client, backend, make_user):
    from imagehost.albums import service
    from imagehost.errors import NotFound
    from imagehost.typedefs import ENV

    user, other = await make_user(), await make_user()
    a, b, c = [await uploaded(client, user, image_bytes(), f"{n}.png") for n in "abc"]
    album = await new_album(client, user)
    ids = [c["id"], a["id"], b["id"]]
    await client.put(f"/api/albums/{album['id']}/images", json={"image_ids": ids}, headers=user.auth)
    await client.delete(f"/api/images/{b['id']}", headers=user.auth)
    env = client.server.app[ENV]
    view, rows = await service.images_for_download(env, user.id, album["id"])
    assert view.album.id == album["id"] and [r.id for r in rows] == [a["id"], c["id"]]
    with pytest.raises(NotFound):
        await service.images_for_download(env, other.id, album["id"])


async def test_an_album_downloads_as_a_zip_of_exactly_its_live_images(client, backend, make_user):
    """`GET /api/albums/{id}/download`: the export's archive, limited to the album: the images
    in it (not the owner's others, not a deleted one), byte for byte, with their metadata."""
    user = await make_user()
    a, b, c = [await uploaded(client, user, image_bytes(size=(60 + n, 40)), f"{n}.png") for n in (1, 2, 3)]
    outside = await uploaded(client, user, image_bytes(size=(70, 40)), "outside.png")
    album = await new_album(client, user, title="Été 2026")
    ids = [a["id"], b["id"], c["id"]]
    await client.put(f"/api/albums/{album['id']}/images", json={"image_ids": ids}, headers=user.auth)
    await client.delete(f"/api/images/{b['id']}", headers=user.auth)

    resp = await client.get(f"/api/albums/{album['id']}/download", headers=user.auth)
    body = await resp.read()
    assert resp.status == 200 and resp.headers["Content-Type"] == "application/zip"
    assert int(resp.headers["Content-Length"]) == len(body)
    disposition = resp.headers["Content-Disposition"]
    assert disposition.startswith('attachment; filename="imagehost-album-') and "filename*=UTF-8''" in disposition
    archive = zipfile.ZipFile(io.BytesIO(body))
    assert archive.testzip() is None
    assert sorted(archive.namelist()) == ["images/1.png", "images/3.png", "metadata.json"]
    meta = json.loads(archive.read("metadata.json"))
    assert sorted(m["id"] for m in meta["images"]) == sorted([a["id"], c["id"]])
    assert outside["id"] not in {m["id"] for m in meta["images"]}
    for entry in meta["images"]:
        key = entry["public_url"].rsplit("/", 1)[-1]
        assert archive.read(entry["path"]) == backend.read_object(key)
