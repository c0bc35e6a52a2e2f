"""The sweep: expired pending rows with their objects and quota; orphans retried; safe
with several processes at once."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import replace
from datetime import timedelta

from sqlalchemy import select, update

from imagehost.db import new_id, transaction, utcnow
from imagehost.images import store, sweep
from imagehost.storage import StorageError
from imagehost.tables import storage_orphans, users
from imagehost.typedefs import ENGINE, ENV, STORAGE
from tests.support.uploads import image_bytes, snapshot, uploaded, used_bytes


async def _stranded_upload(app, user_id: str, expired: bool = True) -> str:
    """What a process that died mid-upload leaves: a pending row, its reservation, its object."""
    key = f"{new_id()}.png"

    async def one():
        yield image_bytes()

    async with transaction(app[ENGINE]) as conn:
        await store.reserve_quota(conn, user_id, 1000, 0)
        await store.insert_pending(
            conn,
            image_id=new_id(),
            owner_id=user_id,
            storage_key=key,
            upload_key=None,
            filename="x.png",
            content_type="image/png",
            size_bytes=1000,
            delete_token_hash="0" * 64,
            expires_at=utcnow() + (timedelta(seconds=-1) if expired else timedelta(hours=1)),
        )
    await app[STORAGE].put_stream(key, one(), "image/png")
    return key


async def test_sweep_removes_expired_pending_uploads_with_objects_and_quota(client, backend, make_user):
    user = await make_user()
    app = client.server.app
    kept = await uploaded(client, user, image_bytes())
    live = await _stranded_upload(app, user.id, expired=False)
    for _ in range(3):
        await _stranded_upload(app, user.id)
    assert len(backend.objects()) == 6  # the kept image's original and thumbnail, four stranded
    result = await sweep.sweep(app[ENV])
    assert result == {"pending_removed": 3, "orphans_removed": 3, "orphans_failed": 0}
    snap = await snapshot(client, backend)
    assert snap.objects == {kept["public_url"].rsplit("/", 1)[-1], kept["thumbnail_url"].rsplit("/", 1)[-1], live}
    assert snap.images == 2 and snap.orphans == 0
    assert await used_bytes(client, user.id) == kept["size_bytes"] + 1000
    assert await sweep.sweep(app[ENV]) == {
        "pending_removed": 0,
        "orphans_removed": 0,
        "orphans_failed": 0,
    }


async def test_failed_orphan_deletes_back_off_and_are_retried(client, backend, make_user):
    user = await make_user()
    app = client.server.app
    await _stranded_upload(app, user.id)
    real = app[STORAGE]

    class Down:
        name = real.name

        async def delete(self, key):
            raise StorageError("down")

    result = await sweep.sweep(replace(app[ENV], storage=Down()))
    assert result == {"pending_removed": 1, "orphans_removed": 0, "orphans_failed": 1}
    async with app[ENGINE].connect() as conn:
        ((attempts, next_at),) = (
            await conn.execute(select(storage_orphans.c.attempts, storage_orphans.c.next_attempt_at))
        ).all()
    assert attempts == 1 and next_at > utcnow()
    assert (await sweep.sweep(app[ENV]))["orphans_removed"] == 0  # not due yet
    async with app[ENGINE].begin() as conn:
        await conn.execute(update(storage_orphans).values(next_attempt_at=utcnow()))
    assert (await sweep.sweep(app[ENV]))["orphans_removed"] == 1
    snap = await snapshot(client, backend)
    assert (snap.objects, snap.images, snap.orphans) == (frozenset(), 0, 0)


async def test_concurrent_sweeps_act_once_on_each_row_and_object(client, backend, make_user):
    user = await make_user()
    app = client.server.app
    keys = [await _stranded_upload(app, user.id) for _ in range(12)]
    real = app[STORAGE]
    deletes: Counter = Counter()

    class Counting:
        name = real.name

        async def delete(self, key):
            deletes[key] += 1
            await asyncio.sleep(0.01)
            await real.delete(key)

    results = await asyncio.gather(*(sweep.sweep(replace(app[ENV], storage=Counting())) for _ in range(4)))
    assert sum(r["pending_removed"] for r in results) == 12
    assert sum(r["orphans_removed"] for r in results) == 12
    assert set(deletes) == set(keys) and set(deletes.values()) == {1}
    snap = await snapshot(client, backend)
    assert (snap.objects, snap.images, snap.orphans) == (frozenset(), 0, 0)
    async with app[ENGINE].connect() as conn:
        assert (await conn.execute(select(users.c.storage_used_bytes))).scalar_one() == 0


async def test_the_cli_gc_command_runs_the_sweep(backend, tmp_path):
    import subprocess
    import sys

    env = {
        "DATABASE_URL": backend.settings.database_url,
        "SECRET_KEY": backend.settings.secret_key,
        "STORAGE_BACKEND": "local",
        "LOCAL_STORAGE_PATH": str(tmp_path / "gc-images"),
        "DATA_DIR": str(tmp_path / "data"),
        "PATH": "/usr/bin:/bin",
    }
    if backend.storage_kind == "s3":
        s = backend.settings
        env.update(
            STORAGE_BACKEND="s3",
            S3_ENDPOINT_URL=s.s3_endpoint_url,
            R2_ACCESS_KEY_ID=s.r2_access_key_id,
            R2_SECRET_ACCESS_KEY=s.r2_secret_access_key,
            R2_BUCKET_NAME=s.r2_bucket_name,
            R2_PUBLIC_URL=s.r2_public_url,
            S3_REGION=s.s3_region,
        )
    else:
        (tmp_path / "gc-images").mkdir()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "imagehost",
        "gc",
        env=env,
        cwd=str(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, (out, err)
