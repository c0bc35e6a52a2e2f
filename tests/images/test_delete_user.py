"""Deleting an account (`accounts.service.delete_user`): the account, its images, keys
and sessions go through the same path as deleting an image — rows first, objects
recorded as tombstones, then deleted; the sweep finishes what storage refuses — and an
upload of theirs in flight leaves no row, object or quota behind."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from sqlalchemy import func, select, update

from imagehost.accounts import service as accounts
from imagehost.db import utcnow
from imagehost.errors import NotFound, Unauthorized
from imagehost.images import service as images
from imagehost.images import sweep
from imagehost.images.formats import HEAD_BYTES
from imagehost.storage import StorageError
from imagehost.tables import api_keys, storage_orphans, users
from imagehost.tables import images as images_table
from imagehost.typedefs import ENGINE, ENV, STORAGE
from tests.support.accounts import jwt_for
from tests.support.uploads import image_bytes, png_of_size, snapshot, uploaded


async def _count(client, table, **where) -> int:
    q = select(func.count()).select_from(table)
    for k, v in where.items():
        q = q.where(table.c[k] == v)
    async with client.server.app[ENGINE].connect() as conn:
        return (await conn.execute(q)).scalar_one()


def _keys(body: dict) -> set[str]:
    return {body["public_url"].rsplit("/", 1)[-1], body["thumbnail_url"].rsplit("/", 1)[-1]}


async def test_deleting_a_user_removes_their_rows_and_objects_and_nobody_elses(client, backend, make_user):
    doomed, other = await make_user(), await make_user()
    for n in range(3):
        await uploaded(client, doomed, image_bytes(size=(40 + n, 30)))
    kept = await uploaded(client, other, image_bytes())
    token = await jwt_for(client, doomed)
    app = client.server.app

    assert await accounts.delete_user(app[ENV], doomed.id)

    assert await _count(client, users, id=doomed.id) == 0
    assert await _count(client, images_table, owner_id=doomed.id) == 0
    assert await _count(client, api_keys, user_id=doomed.id) == 0
    snap = await snapshot(client, backend)
    assert snap.objects == frozenset(_keys(kept))  # only the other user's image is stored
    assert snap.images == 1 and snap.orphans == 0
    # Their credentials identify no one; the other user's work as before.
    assert (await client.get("/api/auth/me", headers=doomed.auth)).status == 401
    assert (await client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})).status == 401
    assert (await client.get("/api/images/", headers=other.auth)).status == 200
    assert not await accounts.delete_user(app[ENV], doomed.id)  # a second time: no such account


async def test_objects_storage_refuses_stay_recorded_and_the_sweep_finishes_them(client, backend, make_user):
    doomed = await make_user()
    body = await uploaded(client, doomed, image_bytes())
    app = client.server.app
    real = app[STORAGE]

    class Down:
        name = real.name

        async def delete(self, key):
            raise StorageError("down")

    assert await accounts.delete_user(replace(app[ENV], storage=Down()), doomed.id)
    # The account is gone at once; its objects are still there, and recorded.
    assert await _count(client, users, id=doomed.id) == 0
    assert backend.objects() == _keys(body)
    assert await _count(client, storage_orphans) == 2
    async with app[ENGINE].begin() as conn:  # the tombstones fall due
        await conn.execute(update(storage_orphans).values(next_attempt_at=utcnow()))
    assert (await sweep.sweep(app[ENV]))["orphans_removed"] == 2
    snap = await snapshot(client, backend)
    assert (snap.objects, snap.images, snap.orphans) == (frozenset(), 0, 0)


class Gate:
    """A request body that stops after `before` bytes until it is let go."""

    def __init__(self, data: bytes, before: int) -> None:
        self.data, self.before, self.pos = data, before, 0
        self.reached, self.go = asyncio.Event(), asyncio.Event()

    async def read(self) -> bytes:
        if self.pos >= len(self.data):
            return b""
        if self.pos >= self.before:
            self.reached.set()
            await self.go.wait()
        end = self.before if self.pos < self.before else len(self.data)
        chunk, self.pos = self.data[self.pos : end], end
        return chunk


async def test_an_upload_in_flight_when_its_user_is_deleted_leaves_nothing(client, backend, make_user):
    doomed, other = await make_user(), await make_user()
    kept = await uploaded(client, other, image_bytes())
    before = await snapshot(client, backend)
    app = client.server.app
    data = png_of_size(HEAD_BYTES + 300_000)  # more than the head: the row exists, bytes are being stored
    gate = Gate(data, HEAD_BYTES + 1000)
    task = asyncio.create_task(images.upload_stream(app[ENV], doomed.id, "x.png", gate.read, len(data)))
    await asyncio.wait_for(gate.reached.wait(), 30)
    assert await _count(client, images_table, owner_id=doomed.id, status="pending") == 1

    assert await accounts.delete_user(app[ENV], doomed.id)
    gate.go.set()
    with pytest.raises(NotFound) as refused:
        await task
    assert refused.value.code == "upload_expired"

    snap = await snapshot(client, backend)
    assert snap.objects == frozenset(_keys(kept)) == before.objects
    assert snap.images == 1 and snap.orphans == 0 and snap.multipart == 0
    assert await _count(client, users, id=doomed.id) == 0


async def test_an_upload_that_had_not_reserved_yet_stores_nothing_for_a_deleted_user(client, backend, make_user):
    doomed = await make_user()
    app = client.server.app
    data = image_bytes(size=(300, 200), noise=True)
    gate = Gate(data, len(data) // 2)  # still reading the head: no row yet
    task = asyncio.create_task(images.upload_stream(app[ENV], doomed.id, "x.png", gate.read, len(data)))
    await asyncio.wait_for(gate.reached.wait(), 30)
    assert await accounts.delete_user(app[ENV], doomed.id)
    gate.go.set()
    with pytest.raises(Unauthorized):
        await task
    snap = await snapshot(client, backend)
    assert (snap.objects, snap.images, snap.orphans, snap.used) == (frozenset(), 0, 0, ())


async def test_a_presigned_upload_of_a_deleted_user_is_tracked_until_its_url_is_dead(client, backend, make_user):
    doomed = await make_user()
    app = client.server.app
    ask = {"filename": "a.png", "content_type": "image/png", "size_bytes": 1000}
    resp = await client.post("/api/images/upload-url", headers=doomed.auth, json=ask)
    assert resp.status == 201
    r2_key = (await resp.json())["r2_key"]

    assert await accounts.delete_user(app[ENV], doomed.id)

    assert await _count(client, images_table) == 0
    async with app[ENGINE].connect() as conn:
        tracked = {r[0] for r in await conn.execute(select(storage_orphans.c.storage_key))}
    assert r2_key in tracked  # whatever is PUT there later is removed by the sweep
    async with app[ENGINE].connect() as conn:
        due = (
            await conn.execute(select(storage_orphans.c.next_attempt_at).where(storage_orphans.c.storage_key == r2_key))
        ).scalar_one()
    assert due > utcnow()
