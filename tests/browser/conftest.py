"""Browser journeys: a real `imagehost serve` process on a free port, driven by Playwright
in the system Chromium. One server per module and storage backend (local folder, or S3 on
the moto server with the CORS rule set by `imagehost storage-setup`)."""

from __future__ import annotations

import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from ..conftest import CI, S3_KEY_ID, S3_SECRET, free_port

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"

pytestmark = pytest.mark.browser
# Waits end as soon as their condition holds; the longer ceiling is for a loaded CI machine.
expect.set_options(timeout=15_000)


@pytest.fixture(scope="session")
def browser_type_launch_args() -> dict[str, Any]:
    if not Path(CHROMIUM).exists():
        message = f"browser tier: {CHROMIUM} not found (Debian: apt-get install chromium)"
        if CI:
            pytest.fail(message)
        pytest.skip(message)
    return {
        "executable_path": CHROMIUM,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ],
    }


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@dataclass
class LiveServer:
    base_url: str
    storage_kind: str
    db_path: Path
    images_path: Path
    bucket: str
    s3: Any
    max_upload_mb: float

    def rows(self, sql: str, *args: Any) -> list[tuple]:
        with sqlite3.connect(self.db_path) as conn:
            return conn.execute(sql, args).fetchall()

    def objects(self) -> set[str]:
        if self.storage_kind == "s3":
            resp = self.s3.list_objects_v2(Bucket=self.bucket)
            return {o["Key"] for o in resp.get("Contents", [])}
        return {p.relative_to(self.images_path).as_posix() for p in self.images_path.rglob("*") if p.is_file()}

    def read_object(self, key: str) -> bytes:
        if self.storage_kind == "s3":
            return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return (self.images_path / key).read_bytes()


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "/api/health", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server did not become healthy:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module", params=["local", "s3"])
def live_server(request, tmp_path_factory) -> LiveServer:
    yield from _serve(request.param, request, tmp_path_factory)


@pytest.fixture(scope="module")
def local_server(request, tmp_path_factory) -> LiveServer:
    yield from _serve("local", request, tmp_path_factory)


@pytest.fixture(scope="module")
def quota_server(request, tmp_path_factory) -> LiveServer:
    """A server whose users may store 40 KB in all."""
    yield from _serve("local", request, tmp_path_factory, {"MAX_USER_STORAGE_MB": str(40 / 1024)})


def _serve(kind: str, request, tmp_path_factory, extra_env: dict[str, str | None] | None = None):
    tmp = tmp_path_factory.mktemp(f"live-{kind}")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "PUBLIC_BASE_URL": base,
            "SECRET_KEY": "browser-secret-" + "b" * 40,
            "DATA_DIR": str(tmp / "data"),
            "DATABASE_URL": f"sqlite:///{tmp / 'imagehost.db'}",
            "LOCAL_STORAGE_PATH": str(tmp / "images"),
            "BCRYPT_ROUNDS": "4",
            "MAX_UPLOAD_MB": "1",
            "LOG_LEVEL": "WARNING",
            "GC_INTERVAL_SECONDS": "0",
            "REGISTRATION_OPEN": "true",  # journeys register several people (the default is invite)
        }
    )
    for name, value in (extra_env or {}).items():  # None: leave the variable unset
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    bucket, s3 = "", None
    if kind == "s3":
        endpoint = request.getfixturevalue("moto_endpoint")
        s3 = request.getfixturevalue("s3_admin")
        bucket = "ih-browser-" + secrets.token_hex(4)
        env.update(
            {
                "STORAGE_BACKEND": "s3",
                "S3_ENDPOINT_URL": endpoint,
                "S3_REGION": "us-east-1",
                "R2_ACCESS_KEY_ID": S3_KEY_ID,
                "R2_SECRET_ACCESS_KEY": S3_SECRET,
                "R2_BUCKET_NAME": bucket,
                "R2_PUBLIC_URL": f"{endpoint}/{bucket}",
            }
        )
    cmd = [sys.executable, "-m", "imagehost"]
    for step in (["migrate"], ["storage-setup"]):
        subprocess.run(cmd + step, env=env, cwd=tmp, check=True, capture_output=True, timeout=60)
    if kind == "s3":  # images are public-read through R2_PUBLIC_URL in production
        s3.put_bucket_policy(
            Bucket=bucket,
            Policy=(
                '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*",'
                f'"Action":"s3:GetObject","Resource":"arn:aws:s3:::{bucket}/*"}}]}}'
            ),
        )
    log = tmp / "server.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([*cmd, "serve"], env=env, cwd=tmp, stdout=fh, stderr=subprocess.STDOUT)
    try:
        _wait_healthy(base, proc, log)
        yield LiveServer(base, kind, tmp / "imagehost.db", tmp / "images", bucket, s3, 1)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(tmp / "images", ignore_errors=True)
