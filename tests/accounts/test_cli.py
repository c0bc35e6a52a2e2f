"""`imagehost create-user`, run as a real subprocess against the test database."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from tests.support.accounts import ACCOUNT_TIERS

pytestmark = pytest.mark.tiers(*ACCOUNT_TIERS)

PASSWORD = "a long cli password"


async def create_user(backend, tmp_path, *args: str, password: str = PASSWORD, **env: str):
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "SECRET_", "REGISTRATION_"))}
    environ.update(
        DATABASE_URL=backend.settings.database_url,
        SECRET_KEY=backend.settings.secret_key,
        BCRYPT_ROUNDS="4",
        LOG_LEVEL="WARNING",
        DATA_DIR=str(tmp_path / "cli-data"),
        **env,
    )
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "imagehost", "create-user", *args, "--password-stdin"],
        input=password + "\n",
        capture_output=True,
        text=True,
        env=environ,
        cwd=tmp_path,
        timeout=60,
    )


async def test_create_user_adds_a_user_who_can_log_in(client, backend, tmp_path):
    proc = await create_user(backend, tmp_path, "cliuser", "cli@example.com")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("created user cliuser (")
    assert PASSWORD not in proc.stdout + proc.stderr
    resp = await client.post("/api/auth/login", json={"username": "cliuser", "password": PASSWORD})
    assert resp.status == 200


async def test_create_user_works_with_registration_closed(client, backend, tmp_path):
    proc = await create_user(backend, tmp_path, "admin", "admin@example.com", REGISTRATION_OPEN="false")
    assert proc.returncode == 0, proc.stderr
    assert (await client.post("/api/auth/login", json={"username": "admin", "password": PASSWORD})).status == 200


async def test_create_user_refuses_a_duplicate_in_another_case(client, backend, tmp_path, make_user, db_count):
    await make_user("Taken")
    proc = await create_user(backend, tmp_path, "TAKEN", "other@example.com")
    assert proc.returncode == 1
    assert proc.stderr.strip() == "imagehost: username: this username is already taken"
    assert await db_count("users") == 1


@pytest.mark.parametrize(
    "args,password,field",
    [
        (("ok_name", "ok@example.com"), "short", "password"),
        (("bad name", "ok@example.com"), PASSWORD, "username"),
        (("ok_name", "not-an-email"), PASSWORD, "email"),
        (("ok_name", "ok@example.com"), "with\ra carriage return", "password"),
    ],
)
async def test_create_user_names_the_invalid_field(client, backend, tmp_path, db_count, args, password, field):
    proc = await create_user(backend, tmp_path, *args, password=password)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"imagehost: {field}: ")
    assert password not in proc.stderr
    assert await db_count("users") == 0
