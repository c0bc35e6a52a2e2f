"""`imagehost serve --workers 2`: two processes on one port, one database, one storage,
behaving as one program — login throttling, sessions, key revocation, the quota and the
sweep. Every request below opens a new connection, so the kernel (SO_REUSEPORT) spreads
them over both workers; `test_two_processes_answer` checks that it does."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import create_engine, select, text, update

from imagehost.config import Settings
from imagehost.db import utcnow
from imagehost.tables import images, users
from tests.conftest import free_port
from tests.support.uploads import png_of_size

ROOT = Path(__file__).resolve().parent.parent
TIERS = pytest.mark.tiers("sqlite-local", "pg-local")
SPREAD = 16  # fresh connections per check: all on one worker has odds 2 × 2⁻¹⁶
DEADLINE = 15.0  # seconds to wait for what must happen (never a measure of speed)


def _env(settings: Settings, port: int, **extra: object) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    env["PYTHONPATH"] = str(ROOT)
    values = settings.model_dump() | {"host": "127.0.0.1", "port": port, "public_base_url": ""} | extra
    values["registration_mode"] = settings.registration  # the mode in effect, not the legacy switch
    values["default_user_quota_mb"] = extra.get("default_user_quota_mb", settings.default_quota_bytes / 1024 / 1024)
    for name, value in values.items():
        if value is None or name in ("public_base_url", "registration_open", "max_user_storage_mb"):
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, tuple):
            value = ",".join(value)
        env[name.upper()] = str(value)
    return env


class Workers:
    def __init__(self, base: str, proc: subprocess.Popen[bytes], settings: Settings) -> None:
        self.base, self.proc, self.settings = base, proc, settings

    @asynccontextmanager
    async def session(self) -> AsyncIterator[aiohttp.ClientSession]:
        """A client whose every request opens a new connection (cookies kept)."""
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(
            self.base, connector=connector, cookie_jar=aiohttp.CookieJar(unsafe=True)
        ) as s:
            yield s

    def sql(self, statement, **params):
        url = self.settings.database_url.replace("+aiosqlite", "").replace("+asyncpg", "")
        engine = create_engine(url)
        try:
            with engine.begin() as conn:
                result = conn.execute(statement if not isinstance(statement, str) else text(statement), params)
                return result.all() if result.returns_rows else None
        finally:
            engine.dispose()


def _launch(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """Migrate, then `imagehost serve --workers 2`, its output to `log_path`."""
    migrate = subprocess.run([sys.executable, "-m", "imagehost", "migrate"], env=env, capture_output=True)
    assert migrate.returncode == 0, migrate.stderr
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "imagehost", "serve", "--workers", "2"], env=env, stdout=log, stderr=log
        )


async def _both_listening(w: Workers) -> None:
    """Wait until both processes answer (each counts its own /metrics requests: over one
    process the counts run 0, 1, 2…; once two answer, some count comes back twice)."""
    deadline = time.monotonic() + DEADLINE
    seen: list[float] = []
    async with w.session() as s:
        while True:
            count = await _metric(s, METRICS_READS)
            if count in seen:
                return
            seen.append(count)
            assert time.monotonic() < deadline, f"only one worker answered: {seen}"
            await asyncio.sleep(0.05)


METRICS_READS = 'imagehost_http_requests_total{method="GET",route="metrics"'


@pytest.fixture
def two_workers(backend, tmp_path):
    async def start(**extra: object) -> Workers:
        port = free_port()
        env = _env(backend.settings, port, **extra)
        proc = _launch(env, tmp_path / "serve.log")
        started.append(proc)
        workers = Workers(f"http://127.0.0.1:{port}", proc, backend.settings)
        deadline = time.monotonic() + DEADLINE
        async with workers.session() as s:
            while True:
                try:
                    if (await s.get("/api/health")).status == 200:
                        break
                except aiohttp.ClientError:
                    pass
                assert proc.poll() is None, (tmp_path / "serve.log").read_text()
                assert time.monotonic() < deadline, "the server did not come up"
                await asyncio.sleep(0.1)
        await _both_listening(workers)
        return workers

    started: list[subprocess.Popen[bytes]] = []
    yield start
    for proc in started:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(20) == 0, (tmp_path / "serve.log").read_text()
        finally:
            if proc.poll() is None:
                proc.kill()


async def _account(s: aiohttp.ClientSession, name: str = "alice") -> tuple[str, str, str]:
    """Register; (password, JWT, API key)."""
    password = "correct horse battery"
    resp = await s.post(
        "/api/auth/register", json={"username": name, "email": f"{name}@example.com", "password": password}
    )
    assert resp.status == 201, await resp.text()
    resp = await s.post("/api/auth/login", json={"username": name, "password": password})
    token = (await resp.json())["access_token"]
    resp = await s.post("/api/keys", json={"name": "k"}, headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 201
    return password, token, (await resp.json())["secret"]


async def _metric(s: aiohttp.ClientSession, name: str) -> float:
    text_ = await (await s.get("/metrics")).text()
    total = 0.0
    for line in text_.splitlines():
        if line.startswith(name):
            total += float(line.rsplit(" ", 1)[1])
    return total


@TIERS
async def test_two_processes_answer(backend, two_workers):
    """Once both listen, fresh connections reach both (see `_both_listening`)."""
    w = await two_workers()
    async with w.session() as s:
        seen = [await _metric(s, METRICS_READS) for _ in range(SPREAD)]
    assert len(set(seen)) < len(seen), seen


@TIERS
async def test_login_throttle_and_sessions_are_shared(backend, two_workers):
    w = await two_workers()
    async with w.session() as s:
        password, _token, _key = await _account(s)
        # Ten failures over both workers lock the username, as they would on one.
        for _ in range(10):
            resp = await s.post("/api/auth/login", json={"username": "alice", "password": "wrong password!"})
            assert resp.status == 401
        resp = await s.post("/api/auth/login", json={"username": "alice", "password": password})
        assert resp.status == 429 and int(resp.headers["Retry-After"]) > 0

    async with w.session() as s:
        await _account(s, "bob")
        page = await (await s.get("/login")).text()
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)[1]
        resp = await s.post(
            "/login",
            data={"username": "bob", "password": "correct horse battery", "csrf_token": csrf},
            allow_redirects=False,
        )
        assert resp.status == 303
        for _ in range(SPREAD):  # the session cookie is good on every worker
            me = await s.get("/api/auth/me")
            assert me.status == 200 and (await me.json())["username"] == "bob"
        cookies = {c.key: c.value for c in s.cookie_jar}
        gallery = await (await s.get("/gallery")).text()
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', gallery)[1]
        assert (await s.post("/logout", data={"csrf_token": csrf}, allow_redirects=False)).status == 303
    async with w.session() as copy:  # a copy of the logged-out cookie is dead on every worker
        for _ in range(SPREAD):
            me = await copy.get("/api/auth/me", cookies=cookies)
            assert me.status == 401


@TIERS
async def test_a_revoked_key_fails_on_every_worker_within_the_cache_lifetime(backend, two_workers):
    w = await two_workers()
    async with w.session() as s:
        _password, token, key = await _account(s)
        auth = {"Authorization": f"Bearer {key}"}
        for _ in range(SPREAD):  # both workers have the key cached now
            assert (await s.get("/api/auth/me", headers=auth)).status == 200
        keys = await (await s.get("/api/keys", headers={"Authorization": f"Bearer {token}"})).json()
        key_id = next(k["id"] for k in keys["keys"] if k["name"] == "k")
        resp = await s.delete(f"/api/keys/{key_id}", headers={"Authorization": f"Bearer {token}"})
        assert resp.status == 204
        deadline = time.monotonic() + DEADLINE
        while True:
            statuses = [(await s.get("/api/auth/me", headers=auth)).status for _ in range(SPREAD)]
            if set(statuses) == {401}:
                break
            assert set(statuses) <= {200, 401}
            assert time.monotonic() < deadline, statuses
            await asyncio.sleep(0.1)
        for _ in range(SPREAD):  # and stays refused
            assert (await s.get("/api/upload", headers=auth)).status in (401, 405)
            assert (await s.get("/api/auth/me", headers=auth)).status == 401


@TIERS
async def test_the_quota_holds_across_workers(backend, two_workers):
    w = await two_workers(default_user_quota_mb=0.2)  # 209 715 bytes
    data = png_of_size(30_000)
    async with w.session() as s:
        _password, _token, key = await _account(s)
        auth = {"Authorization": f"Bearer {key}"}

        async def one() -> int:
            form = aiohttp.FormData()
            form.add_field("file", data, filename="x.png", content_type="image/png")
            return (await s.post("/api/upload", data=form, headers=auth)).status

        statuses = await asyncio.gather(*(one() for _ in range(12)))
    assert set(statuses) <= {201, 413}, statuses
    accepted = statuses.count(201)
    rows = w.sql(select(images.c.size_bytes).where(images.c.status == "active"))
    used = w.sql(select(users.c.storage_used_bytes, users.c.image_count))[0]
    assert len(rows) == accepted and 0 < accepted < 12
    assert used == (sum(r[0] for r in rows), accepted)
    assert used[0] <= 0.2 * 1024 * 1024


@TIERS
async def test_the_sweep_runs_in_one_worker_and_returns_the_quota_once(backend, two_workers):
    w = await two_workers(gc_interval_seconds=0.5)
    async with w.session() as s:
        _password, _token, key = await _account(s)
        resp = await s.post(
            "/api/images/upload-url",
            json={"filename": "a.png", "content_type": "image/png", "size_bytes": 5000},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert resp.status == 201
        assert w.sql(select(users.c.storage_used_bytes))[0][0] == 5000  # reserved by the pending row
        w.sql(update(images).values(expires_at=utcnow() - timedelta(minutes=1)))
        deadline = time.monotonic() + DEADLINE
        while w.sql(select(images.c.id)):
            assert time.monotonic() < deadline, "the sweep did not remove the expired pending upload"
            await asyncio.sleep(0.2)
        assert w.sql(select(users.c.storage_used_bytes, users.c.image_count))[0] == (0, 0)
        runs = [await _metric(s, "imagehost_sweep_runs_total") for _ in range(SPREAD)]
    assert 0 in runs and any(r > 0 for r in runs), runs  # one worker sweeps, the other never


def test_a_worker_that_cannot_start_stops_the_server_with_an_error(tmp_path):
    """The port is held by another program: the workers cannot listen, and `serve`
    exits non-zero saying so, leaving no worker behind."""
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
        env |= {
            "PYTHONPATH": str(ROOT),
            "SECRET_KEY": "s" * 48,
            "DATA_DIR": str(tmp_path / "data"),
            "LOCAL_STORAGE_PATH": str(tmp_path / "images"),
            "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite",
            "GC_INTERVAL_SECONDS": "0",
        }
        migrate = subprocess.run([sys.executable, "-m", "imagehost", "migrate"], env=env, capture_output=True)
        assert migrate.returncode == 0, migrate.stderr
        # The migration leaves the file in WAL mode: workers opening it together never race
        # to switch it (that race answered "database is locked" to all but one of them).
        with contextlib.closing(sqlite3.connect(tmp_path / "db.sqlite")) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        done = subprocess.run(
            [sys.executable, "-m", "imagehost", "serve", "--port", str(port), "--workers", "2"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr


def test_serve_puts_a_file_left_in_rollback_mode_in_wal_before_forking(tmp_path):
    """A database migrated by an older version is still in rollback mode: `serve
    --workers` switches it once, in the parent, before the workers open it together."""
    from imagehost import db
    from imagehost.config import load_settings

    path = tmp_path / "old.sqlite"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA journal_mode = DELETE")
        conn.execute("CREATE TABLE t (x INTEGER)")
    settings = load_settings(_env_file=None, data_dir=tmp_path, database_url=f"sqlite:///{path}")
    db.use_wal(settings)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
