"""Configuration: defaults that work, and one clear line + exit 1 for a bad value."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from imagehost.config import ConfigError, load_settings

ROOT = Path(__file__).resolve().parent.parent


def run_cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "SYSTEMROOT")}
    return subprocess.run(
        [sys.executable, "-m", "imagehost", *args],
        cwd=cwd,
        env={**base, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_defaults_need_nothing_set_and_keep_a_generated_secret(tmp_path):
    s1 = load_settings(_env_file=None, data_dir=tmp_path)
    s2 = load_settings(_env_file=None, data_dir=tmp_path)
    assert s1.database_url.startswith("sqlite+aiosqlite:///")
    assert s1.storage_backend == "local"
    assert len(s1.secret_key) >= 32
    assert s1.secret_key == s2.secret_key  # kept under data/, not regenerated
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"PORT": "eighty"}, "PORT"),
        ({"MAX_UPLOAD_MB": "-3"}, "MAX_UPLOAD_MB"),
        ({"STORAGE_BACKEND": "ftp"}, "STORAGE_BACKEND"),
        ({"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL"),
        ({"ALLOWED_IMAGE_TYPES": "image/png,image/svg+xml"}, "ALLOWED_IMAGE_TYPES"),
        ({"PUBLIC_BASE_URL": "javascript:alert(1)"}, "PUBLIC_BASE_URL"),
        ({"TRUSTED_PROXIES": "not-an-ip"}, "TRUSTED_PROXIES"),
        ({"LOG_JSON": "perhaps"}, "LOG_JSON"),
        ({"SECRET_KEY": "too-short"}, "SECRET_KEY"),
        ({"STORAGE_BACKEND": "s3", "SECRET_KEY": "k" * 40}, "R2_ACCOUNT_ID"),
        ({"PUBLIC_BASE_URL": "https://img.example.com"}, "SECRET_KEY"),
    ],
)
def test_bad_setting_stops_start_with_one_line_naming_it(tmp_path, env, needle):
    result = run_cli(["migrate"], env, tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert needle in lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data" / "imagehost.db").exists()


def test_dotenv_file_is_read(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("MAX_UPLOAD_MB=7\nREGISTRATION_OPEN=false\n")
    monkeypatch.chdir(tmp_path)
    s = load_settings(data_dir=tmp_path)
    assert s.max_upload_mb == 7 and s.registration_open is False


def test_production_requires_a_strong_secret_key(tmp_path):
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        load_settings(_env_file=None, data_dir=tmp_path, public_base_url="https://img.example.com")
    s = load_settings(_env_file=None, data_dir=tmp_path, public_base_url="https://img.example.com", secret_key="s" * 32)
    assert s.is_production and s.cookie_secure


def test_postgres_urls_are_normalised_to_psycopg(tmp_path):
    s = load_settings(_env_file=None, data_dir=tmp_path, database_url="postgres://u:p@db/imagehost")
    assert s.database_url == "postgresql+psycopg://u:p@db/imagehost"
    assert s.yoyo_url == s.database_url


def test_unreachable_database_at_start_is_one_line_naming_it(tmp_path):
    result = run_cli(["migrate"], {"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}, tmp_path)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "database" in lines[0], result.stderr


def test_serve_with_unreachable_database_exits_naming_it(tmp_path):
    env = {"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none", "LOG_LEVEL": "ERROR"}
    result = run_cli(["serve", "--port", "1"], env, tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("imagehost: database unreachable")
    assert "Traceback" not in result.stderr


def test_serve_with_unreachable_storage_exits_naming_it(tmp_path):
    env = {
        "STORAGE_BACKEND": "s3",
        "S3_ENDPOINT_URL": "http://127.0.0.1:1",
        "R2_ACCESS_KEY_ID": "a",
        "R2_SECRET_ACCESS_KEY": "b",
        "R2_BUCKET_NAME": "bucket",
        "R2_PUBLIC_URL": "http://127.0.0.1:1/bucket",
        "SECRET_KEY": "k" * 40,
        "LOG_LEVEL": "ERROR",
    }
    assert run_cli(["migrate"], env, tmp_path).returncode == 0
    result = run_cli(["serve", "--port", "1"], env, tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("imagehost: storage unreachable (s3)")
    assert "Traceback" not in result.stderr
