"""Searching the image list by filename (`?q=`), filtering by album, and deleting several
images at once (`POST /api/images/delete`), all or nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from imagehost.images import store as images_store
from imagehost.images.store import filename_words
from imagehost.tables import image_words
from imagehost.typedefs import ENGINE
from tests.support.uploads import error_of, image_bytes, snapshot, uploaded


def test_filename_words_are_case_folded_letters_and_digits():
    words = ["screenshot", "2024", "01", "05", "at", "10", "03", "png"]
    assert filename_words("Screenshot_2024-01-05 at 10.03.PNG") == words
    assert filename_words("STRASSE Straße.jpg") == ["strasse", "jpg"]  # case-folded, deduplicated
    assert filename_words("ＡＢＣ.png") == ["abc", "png"]  # NFKC
    assert filename_words("<script>") == ["script"]
    assert filename_words("%_") == []


async def names(client, user, **params) -> tuple[list[str], int]:
    resp = await client.get("/api/images/", params=params, headers=user.auth)
    body = await resp.json()
    assert resp.status == 200, body
    return [i["filename"] for i in body["images"]], body["total"]


async def test_q_matches_the_start_of_filename_words_case_insensitively(client, backend, make_user):
    user, other = await make_user(), await make_user()
    for name in ("Screenshot_2024-01-05.png", "holiday_beach.jpg", "BEACH-party.png", "invoice-100.png"):
        await uploaded(client, user, image_bytes(), name)
    await uploaded(client, other, image_bytes(), "beach-of-someone-else.png")
    assert await names(client, user, q="beach") == (["BEACH-party.png", "holiday_beach.jpg"], 2)
    assert await names(client, user, q="BeA") == (["BEACH-party.png", "holiday_beach.jpg"], 2)
    assert await names(client, user, q="scr 2024") == (["Screenshot_2024-01-05.png"], 1)
    assert await names(client, user, q="beach party") == (["BEACH-party.png"], 1)
    assert await names(client, user, q="each") == ([], 0)  # a word's start, not its middle
    assert await names(client, user, q="100%") == (["invoice-100.png"], 1)
    assert await names(client, user, q="%") == ([], 0)  # no letter or digit: nothing, not everything
    assert await names(client, user, q="_") == ([], 0)
    assert await names(client, user, q="") == (
        ["invoice-100.png", "BEACH-party.png", "holiday_beach.jpg", "Screenshot_2024-01-05.png"],
        4,
    )


@pytest.mark.parametrize("density", [0, 10**6], ids=["walk-listing", "sort-matches"])
async def test_search_is_keyset_paginated(client, backend, make_user, monkeypatch, density):
    """Both ways a page is found (see `list_filtered`) give the same pages."""
    monkeypatch.setattr(images_store, "SCAN_DENSITY", density)
    user = await make_user()
    for i in range(5):
        await uploaded(client, user, image_bytes(), f"cat_{i}.png")
        await uploaded(client, user, image_bytes(), f"dog_{i}.png")
    seen, cursor = [], None
    while True:
        params = {"q": "cat", "limit": "2", **({"cursor": cursor} if cursor else {})}
        resp = await client.get("/api/images/", params=params, headers=user.auth)
        body = await resp.json()
        assert body["total"] == 5
        seen += [i["filename"] for i in body["images"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"cat_{i}.png" for i in reversed(range(5))]
    assert await names(client, user, q="cat 3") == (["cat_3.png"], 1)
    assert await names(client, user, q="dog cat") == ([], 0)


@pytest.mark.tiers("sqlite-local", "pg-local")
async def test_search_and_album_together(client, backend, make_user):
    user = await make_user()
    a = await uploaded(client, user, image_bytes(), "cat_a.png")
    await uploaded(client, user, image_bytes(), "cat_b.png")
    c = await uploaded(client, user, image_bytes(), "dog_c.png")
    resp = await client.post("/api/albums", json={"title": "pets"}, headers=user.auth)
    album = await resp.json()
    await client.put(f"/api/albums/{album['id']}/images", json={"image_ids": [a["id"], c["id"]]}, headers=user.auth)
    assert await names(client, user, album=album["id"], q="cat") == (["cat_a.png"], 1)
    assert await names(client, user, album=album["id"]) == (["dog_c.png", "cat_a.png"], 2)


@pytest.mark.tiers("sqlite-local", "pg-local")
async def test_bad_search_parameters(client, backend, make_user):
    user = await make_user()
    for params in ({"q": "x" * 201}, {"q": " ".join("abcdefghi")}):
        resp = await client.get("/api/images/", params=params, headers=user.auth)
        assert resp.status == 422, params
        assert error_of(await resp.json())
    resp = await client.get("/api/images/", params={"album": "nope"}, headers=user.auth)
    assert resp.status == 404


@pytest.mark.tiers("sqlite-local", "pg-local")
async def test_words_go_with_the_image(client, backend, make_user):
    user = await make_user()
    img = await uploaded(client, user, image_bytes(), "Sunset-Pier.png")
    async with client.server.app[ENGINE].connect() as conn:
        words = sorted((await conn.execute(select(image_words.c.word))).scalars())
    assert words == ["pier", "png", "sunset"]
    assert (await client.delete(f"/api/images/{img['id']}", headers=user.auth)).status == 204
    async with client.server.app[ENGINE].connect() as conn:
        assert (await conn.execute(select(image_words.c.word))).first() is None


# --------------------------------------------------------------------------- bulk delete


async def test_bulk_delete_removes_rows_and_objects(client, backend, make_user, storage):
    user = await make_user()
    imgs = [await uploaded(client, user, image_bytes(), f"{n}.png") for n in range(3)]
    keep = imgs[2]
    before = set(backend.objects())
    ids = [imgs[0]["id"], imgs[1]["id"]]
    resp = await client.post("/api/images/delete", json={"image_ids": ids}, headers=user.auth)
    assert resp.status == 200 and await resp.json() == {"deleted": 2}
    assert await names(client, user) == (["2.png"], 1)
    gone = before - set(backend.objects())
    assert gone and all(not k.startswith("pending/") for k in gone)
    assert keep["public_url"].rsplit("/", 1)[-1] in "".join(backend.objects())


async def test_bulk_delete_is_all_or_nothing_with_someone_elses_image(client, backend, make_user):
    alice, mallory = await make_user(), await make_user()
    mine = await uploaded(client, mallory, image_bytes())
    theirs = await uploaded(client, alice, image_bytes())
    before = await snapshot(client, backend)
    for ids in ([theirs["id"]], [mine["id"], theirs["id"]], [mine["id"], "unknown"]):
        resp = await client.post("/api/images/delete", json={"image_ids": ids}, headers=mallory.auth)
        assert resp.status == 404, ids
        assert error_of(await resp.json()) == "image not found"
    assert await snapshot(client, backend) == before  # rows, objects, tombstones and quota unchanged
    assert (await client.get(f"/api/images/{mine['id']}", headers=mallory.auth)).status == 200


@pytest.mark.tiers("sqlite-local", "pg-local")
async def test_bulk_delete_bad_input_is_422(client, backend, make_user):
    user = await make_user()
    await uploaded(client, user, image_bytes())
    before = await snapshot(client, backend)
    for body in ({}, {"image_ids": []}, {"image_ids": "x"}, {"image_ids": [None]}, {"image_ids": ["a"] * 501}):
        resp = await client.post("/api/images/delete", json=body, headers=user.auth)
        assert resp.status == 422, body
    assert await snapshot(client, backend) == before


@pytest.mark.tiers("sqlite-local", "pg-local")
@pytest.mark.parametrize("density", [0, 10**6], ids=["walk-listing", "sort-matches"])
async def test_an_image_with_several_words_of_the_prefix_counts_once(client, backend, make_user, monkeypatch, density):
    monkeypatch.setattr(images_store, "SCAN_DENSITY", density)
    user = await make_user()
    await uploaded(client, user, image_bytes(), "cat-catalog-category.png")
    await uploaded(client, user, image_bytes(), "concat.png")
    await uploaded(client, user, image_bytes(), "a-cat.png")
    assert await names(client, user, q="cat") == (["a-cat.png", "cat-catalog-category.png"], 2)
    assert await names(client, user, q="cata") == (["cat-catalog-category.png"], 1)
    assert await names(client, user, q="c") == (["a-cat.png", "concat.png", "cat-catalog-category.png"], 3)
