"""Integrity under attack and crashes: confirm activates only the bytes it checked, a
presigned key stays tracked while its URL lives, a killed write leaves nothing behind
for long, malformed JSON and hang-ups are clean answers, not server errors."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from loguru import logger
from sqlalchemy import select, update

from imagehost.db import utcnow
from imagehost.images import sweep
from imagehost.storage import ObjectChanged
from imagehost.tables import images, storage_orphans
from imagehost.typedefs import ENGINE, ENV
from tests.images.test_presigned import ask, confirm, put
from tests.support.uploads import error_of, image_bytes, png_of_size, snapshot, used_bytes

ROOT = str(Path(__file__).resolve().parents[2])
EVERY_TIER = pytest.mark.tiers("sqlite-local", "sqlite-s3", "pg-local", "pg-s3", "s3-strict")


async def _tracked(client) -> dict[str, object]:
    async with client.server.app[ENGINE].connect() as conn:
        rows = await conn.execute(select(storage_orphans.c.storage_key, storage_orphans.c.next_attempt_at))
        return {r[0]: r[1] for r in rows}


async def _make_due(client) -> None:
    async with client.server.app[ENGINE].begin() as conn:
        await conn.execute(update(storage_orphans).values(next_attempt_at=utcnow() - timedelta(seconds=1)))


def _replace_object(backend, key: str, data: bytes) -> None:
    """What a client holding a still-valid presigned URL can do: PUT other bytes there."""
    if backend.storage_kind == "s3":
        backend.s3.put_object(Bucket=backend.settings.r2_bucket_name, Key=key, Body=data, ContentType="image/png")
    else:
        path = backend.settings.local_storage_path / key
        tmp = path.with_suffix(".swap")
        tmp.write_bytes(data)
        os.replace(tmp, path)  # a new file under the same name, as a new PUT would be


# --------------------------------------------------------------------------- defect 1


@EVERY_TIER
async def test_confirm_refuses_bytes_replaced_while_it_reads_them_and_leaves_nothing(client, backend, make_user):
    """A valid PNG is PUT and confirmed; right after confirm looked at it, other bytes (a
    header claiming 60000×60000 pixels) replace it. Every read is bound to the ETag that
    `head` saw, so confirm refuses, and neither version becomes an image."""
    user = await make_user()
    good = png_of_size(900_000)
    ticket = await (await ask(client, user, good)).json()
    assert await put(client, backend, ticket, good) == 200
    app = client.server.app
    env = app[ENV]
    real = env.storage
    evil = bytearray(good)
    evil[16:24] = (60000).to_bytes(4, "big") * 2  # IHDR width and height

    class Racing:
        name = real.name

        def __getattr__(self, name):
            return getattr(real, name)

        async def head(self, key):
            info = await real.head(key)
            await asyncio.to_thread(_replace_object, backend, key, bytes(evil))  # the attacker PUTs again
            return info

    app._state[ENV] = replace(env, storage=Racing())
    try:
        resp = await confirm(client, user, ticket["r2_key"])
    finally:
        app._state[ENV] = env
    body = await resp.json()
    assert resp.status == 409, body
    assert body["code"] == "upload_changed"
    snap = await snapshot(client, backend)
    assert snap.images == 0
    assert snap.objects == frozenset()  # neither the checked nor the replacing bytes stay
    assert await used_bytes(client, user.id) == 0


@EVERY_TIER
async def test_storage_reads_bound_to_an_etag_fail_once_the_object_changes(storage, backend):
    key = "pending/etagboundreadtest01.png"

    async def one(data):
        yield data

    await storage.put_stream(key, one(image_bytes()), "image/png")
    info = await storage.head(key)
    assert info is not None and info.etag
    assert await storage.read_range(key, 0, 8, if_match=info.etag) == image_bytes()[:8]
    await asyncio.to_thread(_replace_object, backend, key, image_bytes("PNG", (10, 10)))
    with pytest.raises(ObjectChanged):
        await storage.read_range(key, 0, 8, if_match=info.etag)
    await storage.delete(key)


# --------------------------------------------------------------------------- defect 2


@EVERY_TIER
async def test_the_presigned_key_stays_tracked_after_confirm_until_its_url_is_dead(client, backend, make_user):
    user = await make_user()
    data = image_bytes("PNG", (80, 60), noise=True)
    ticket = await (await ask(client, user, data)).json()
    assert await put(client, backend, ticket, data) == 200
    resp = await confirm(client, user, ticket["r2_key"])
    assert resp.status == 201
    image = await resp.json()
    tracked = await _tracked(client)
    assert set(tracked) == {ticket["r2_key"]}  # the temporary object is gone, its key still tracked
    url_expiry = utcnow() + timedelta(seconds=backend.settings.pending_upload_expiry_seconds)
    assert tracked[ticket["r2_key"]] >= url_expiry - timedelta(seconds=5)
    assert ticket["r2_key"] not in backend.objects()

    # A late PUT to the still-valid URL: S3 takes it (the local PUT refuses: no pending row).
    late = await put(client, backend, ticket, data)
    if backend.storage_kind == "s3":
        assert late == 200 and ticket["r2_key"] in backend.objects()
    else:
        assert late == 404 and ticket["r2_key"] not in backend.objects()

    # Deleting the image and running the sweep before the URL is dead leaves it tracked …
    assert (await client.delete(f"/api/images/{image['id']}", headers=user.auth)).status == 204
    await sweep.sweep(client.server.app[ENV])
    assert ticket["r2_key"] in await _tracked(client)
    # … and once it is due, the sweep removes whatever is there.
    await _make_due(client)
    await sweep.sweep(client.server.app[ENV])
    snap = await snapshot(client, backend)
    assert (snap.objects, snap.images, snap.orphans) == (frozenset(), 0, 0)


@EVERY_TIER
async def test_a_refused_confirm_keeps_the_key_tracked_and_a_late_put_is_swept(client, backend, make_user):
    user = await make_user()
    jpeg = image_bytes("JPEG", (80, 60), noise=True)
    ticket = await (await ask(client, user, jpeg, "image/png")).json()  # a JPEG declared as a PNG
    assert await put(client, backend, ticket, jpeg) == 200
    resp = await confirm(client, user, ticket["r2_key"])
    body = await resp.json()
    assert resp.status == 415 and body["code"] == "type_mismatch", body
    assert set(await _tracked(client)) == {ticket["r2_key"]}
    assert backend.objects() == set()
    late = await put(client, backend, ticket, jpeg)  # the URL is still valid
    if backend.storage_kind == "local":
        assert late == 404  # the local PUT needs a pending upload
    await _make_due(client)
    await sweep.sweep(client.server.app[ENV])
    snap = await snapshot(client, backend)
    assert (snap.objects, snap.images, snap.orphans) == (frozenset(), 0, 0)
    assert await used_bytes(client, user.id) == 0


# --------------------------------------------------------------------------- defect 3


@pytest.mark.tiers("sqlite-local", "sqlite-s3", "s3-strict")
async def test_sweep_removes_partials_a_dead_process_left_and_spares_live_ones(client, backend):
    env = client.server.app[ENV]
    expiry = timedelta(seconds=backend.settings.pending_upload_expiry_seconds)
    if backend.storage_kind == "local":
        tmp = backend.settings.local_storage_path / ".tmp"
        old, live = tmp / "deadprocess0001.part", tmp / "liveupload00001.part"
        old.write_bytes(b"x" * 1000)
        live.write_bytes(b"y" * 1000)
        stale = time.time() - expiry.total_seconds() - 60
        os.utime(old, (stale, stale))
        assert await sweep.sweep_partials(env) == {"partials_removed": 1}
        assert not old.exists() and live.exists()
        live.unlink()
    else:
        s3, bucket = backend.s3, backend.settings.r2_bucket_name
        s3.create_multipart_upload(Bucket=bucket, Key="abandonedupload01.png")
        assert backend.incomplete_multipart_uploads() == 1
        (started,) = [u["Initiated"] for u in s3.list_multipart_uploads(Bucket=bucket)["Uploads"]]
        if started.year > 2020:  # moto reports every upload as begun in 2010; a real store tells the time
            assert await sweep.sweep_partials(env) == {"partials_removed": 0}  # younger than the expiry
        later = utcnow() + expiry + timedelta(minutes=1)
        assert await sweep.sweep_partials(env, now=later) == {"partials_removed": 1}
        assert backend.incomplete_multipart_uploads() == 0


@pytest.mark.tiers("sqlite-local", "sqlite-s3")
async def test_kill_9_during_a_streamed_upload_then_gc_leaves_nothing(backend, tmp_path):
    """A real server process is killed (SIGKILL) while it streams an upload to storage;
    after the expiry, the sweep leaves no row, object, partial or quota behind."""
    import secrets
    import signal
    import subprocess
    import sys

    from tests.conftest import free_port

    port = free_port()
    s = backend.settings
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    env.update(
        PYTHONPATH=ROOT,
        HOST="127.0.0.1",
        PORT=str(port),
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        SECRET_KEY=s.secret_key,
        DATA_DIR=str(tmp_path / "killed-data"),
        DATABASE_URL=s.database_url,
        LOCAL_STORAGE_PATH=str(s.local_storage_path),
        STORAGE_BACKEND=s.storage_backend,
        GC_INTERVAL_SECONDS="0",
        LOG_LEVEL="WARNING",
        MAX_UPLOAD_MB="40",
    )
    if backend.storage_kind == "s3":
        env.update(
            S3_ENDPOINT_URL=s.s3_endpoint_url,
            S3_REGION=s.s3_region,
            R2_ACCESS_KEY_ID=s.r2_access_key_id,
            R2_SECRET_ACCESS_KEY=s.r2_secret_access_key,
            R2_BUCKET_NAME=s.r2_bucket_name,
            R2_PUBLIC_URL=s.r2_public_url,
        )
    from imagehost.accounts.service import create_api_key, register_user
    from imagehost.cli import cli_env

    async with cli_env(s) as ienv:
        account = await register_user(ienv, "killed", "killed@example.com", "correct horse battery")
        _key, api_key = await create_api_key(ienv, account.id, "kill test")
    proc = subprocess.Popen(  # noqa: ASYNC220 - a server to kill, not a call to wait on
        [sys.executable, "-m", "imagehost", "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                _reader, writer = await asyncio.open_connection("127.0.0.1", port)
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("the server did not start")
                await asyncio.sleep(0.1)
        data = png_of_size(30_000_000)  # several S3 parts, many local writes
        boundary = "k1ll" + secrets.token_hex(4)
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        body = head + data + f"\r\n--{boundary}--\r\n".encode()
        writer.write(
            (
                f"POST /api/upload HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {api_key}\r\n"
                f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
        )
        # Send most of the body, until storage holds part of it, then kill the server.
        sent = 0
        for start in range(0, len(body) * 2 // 3, 1 << 20):
            writer.write(body[start : start + (1 << 20)])
            await writer.drain()
            sent = start
        deadline = time.monotonic() + 60
        while not (backend.objects() or backend.incomplete_multipart_uploads()):
            if time.monotonic() > deadline:
                pytest.fail(f"nothing reached storage after {sent} bytes")
            await asyncio.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        writer.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    # The crash left a pending row with its reservation, and a partial in storage.
    async with cli_env(s) as ienv:
        async with ienv.engine.connect() as conn:
            assert (await conn.execute(select(images.c.status))).scalars().all() == ["pending"]
        assert backend.objects() or backend.incomplete_multipart_uploads()
        later = utcnow() + timedelta(seconds=s.pending_upload_expiry_seconds + 60)
        await sweep.sweep(ienv, now=later)
        await sweep.sweep_partials(ienv, now=later)
        async with ienv.engine.connect() as conn:
            assert (await conn.execute(select(images.c.id))).all() == []
            assert (await conn.execute(select(storage_orphans.c.storage_key))).all() == []
    assert backend.objects() == set()
    assert backend.incomplete_multipart_uploads() == 0
    async with cli_env(s) as ienv, ienv.engine.connect() as conn:
        from imagehost.tables import users

        assert (
            await conn.execute(select(users.c.storage_used_bytes).where(users.c.id == account.id))
        ).scalar_one() == 0


# --------------------------------------------------------------------------- defects 4 and 5


@pytest.mark.tiers("sqlite-local")
@pytest.mark.parametrize(
    "path", ["/api/auth/login", "/api/auth/register", "/api/images/upload-url", "/api/images/confirm", "/api/keys"]
)
async def test_deeply_nested_json_is_a_400_envelope_and_logs_no_error(client, backend, make_user, path):
    user = await make_user()
    records: list[str] = []
    sink = logger.add(lambda m: records.append(str(m)), level="ERROR")
    try:
        resp = await client.post(path, data="[" * 200_000, headers={**user.auth, "Content-Type": "application/json"})
        body = await resp.json()
    finally:
        logger.remove(sink)
    if path == "/api/keys":  # an API key may not create keys: refused before the body is read
        assert resp.status == 403
        return
    assert resp.status == 400, body
    assert body["code"] == "malformed_json" and error_of(body) == "malformed JSON"
    assert records == []
    assert json.loads(json.dumps(body))  # a plain envelope, nothing else


@pytest.mark.tiers("sqlite-local", "sqlite-s3")
@pytest.mark.parametrize("cancel_handlers", [True, False], ids=["handler-cancelled", "read-fails"])
async def test_a_client_hanging_up_mid_upload_is_a_499_at_info_not_an_error(
    client, backend, make_user, caplog, cancel_handlers
):
    """aiohttp's test server cancels the handler when the client goes; `imagehost serve`
    (web.run_app) does not, and the handler's next read fails instead. Both are a 499."""
    from aiohttp import web

    from imagehost.app import create_app
    from tests.conftest import free_port

    user = await make_user()
    before = await snapshot(client, backend)
    runner = None
    if cancel_handlers:
        host, port = client.server.host, client.server.port
    else:
        runner = web.AppRunner(create_app(backend.settings), handler_cancellation=False)
        await runner.setup()
        host, port = "127.0.0.1", free_port()
        await web.TCPSite(runner, host, port).start()
    records: list[tuple[str, str]] = []
    sink = logger.add(lambda m: records.append((m.record["level"].name, m.record["message"])), level="INFO")
    caplog.set_level(logging.INFO)
    try:
        data = png_of_size(3_000_000)
        boundary = "h4ngup"
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        body = head + data + f"\r\n--{boundary}--\r\n".encode()
        _reader, writer = await asyncio.open_connection(host, port)
        writer.write(
            (
                f"POST /api/upload HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {user.api_key}\r\n"
                f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body[: len(body) // 2]
        )
        await writer.drain()
        deadline = asyncio.get_running_loop().time() + 30
        while not (await snapshot(client, backend)).images:
            if asyncio.get_running_loop().time() > deadline:
                pytest.fail("the server never started storing the upload")
            await asyncio.sleep(0.02)
        writer.close()
        await writer.wait_closed()
        deadline = asyncio.get_running_loop().time() + 30
        while not any("499" in msg for _lvl, msg in records):
            if asyncio.get_running_loop().time() > deadline:
                pytest.fail(f"no 499 access line: {records}")
            await asyncio.sleep(0.05)
        while await snapshot(client, backend) != before:  # the clean-up is exactly as it was
            if asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.05)
    finally:
        logger.remove(sink)
        if runner is not None:
            await runner.cleanup()
    assert await snapshot(client, backend) == before
    assert [r for r in records if r[0] in ("ERROR", "CRITICAL")] == []
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert ("INFO", "POST /api/upload 499") in records
