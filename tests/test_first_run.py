"""First run (imagehost issue 11): with nothing set, every URL the app gives out points
where the server listens, and the address `serve` prints is one that works."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from imagehost.app import create_app
from imagehost.cli import serving_lines, with_address
from imagehost.config import load_settings
from imagehost.db import new_id
from imagehost.integrations.service import flameshot_script, sharex_config
from imagehost.routes import AbsoluteUrls
from imagehost.storage import LocalStorage
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent


def _settings(tmp_path: Path, **values: object):
    return load_settings(_env_file=None, data_dir=tmp_path, local_storage_path=tmp_path / "images", **values)


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        ("127.0.0.1", 8000, "http://127.0.0.1:8000"),
        ("127.0.0.1", 8011, "http://127.0.0.1:8011"),
        ("0.0.0.0", 8000, "http://localhost:8000"),
        ("::", 9000, "http://localhost:9000"),
        ("::1", 8000, "http://[::1]:8000"),
        ("localhost", 8123, "http://localhost:8123"),
    ],
)
def test_the_default_public_base_url_follows_host_and_port(tmp_path, host, port, expected):
    settings = _settings(tmp_path, host=host, port=port)
    assert settings.public_base_url == expected
    assert settings.base_url_derived and not settings.is_production


def test_a_public_base_url_that_was_set_is_kept_whatever_the_port(tmp_path):
    settings = _settings(tmp_path, port=8011, public_base_url="https://img.example.com", secret_key="s" * 40)
    assert settings.public_base_url == "https://img.example.com"
    assert not settings.base_url_derived and settings.is_production
    assert with_address(settings, "0.0.0.0", 9000).public_base_url == "https://img.example.com"


def test_serve_host_and_port_options_move_the_default_public_url_too(tmp_path):
    settings = with_address(_settings(tmp_path), "0.0.0.0", 8099)
    assert (settings.host, settings.port, settings.public_base_url) == ("0.0.0.0", 8099, "http://localhost:8099")


def test_with_port_8011_every_url_given_out_says_8011(tmp_path):
    """The public, upload and deletion URLs, the .sxcu file and the Flameshot script."""
    settings = _settings(tmp_path, port=8011)
    urls = AbsoluteUrls(create_app(settings).router, settings.public_base_url)
    storage = LocalStorage(settings.local_storage_path, settings.public_base_url, settings.secret_key)
    key = new_id() + ".png"
    assert storage.public_url(key) == f"http://127.0.0.1:8011/i/{key}"
    assert urls("deletion", id="x", token="y") == "http://127.0.0.1:8011/d/x/y"

    class _Env:  # sharex_config reads only the settings and the URL builder
        pass

    env = _Env()
    env.settings, env.url = settings, urls  # type: ignore[attr-defined]
    sxcu = sharex_config(env, "ih_key")  # type: ignore[arg-type]
    assert sxcu["RequestURL"] == "http://127.0.0.1:8011/api/upload"
    assert 'IMAGEHOST_URL="${IMAGEHOST_URL:-http://127.0.0.1:8011}"' in flameshot_script(settings)
    assert "8000" not in json.dumps(sxcu)


def test_a_loopback_public_url_on_another_port_is_warned_about(tmp_path):
    settings = _settings(tmp_path, port=8011, public_base_url="http://localhost:8000")
    first, warning = serving_lines(settings)
    assert first.startswith("serving on http://localhost:8000 (listening on 127.0.0.1:8011")
    assert "PUBLIC_BASE_URL" in warning and "8011" in warning
    assert len(serving_lines(_settings(tmp_path, port=8011))) == 1


@pytest.mark.parametrize(("host", "name"), [("127.0.0.1", "127.0.0.1"), ("0.0.0.0", "localhost")])
def test_serve_prints_an_address_that_answers(tmp_path, host, name):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    env.update(
        PYTHONPATH=str(ROOT),
        HOST=host,
        PORT=str(port),
        DATA_DIR=str(tmp_path / "data"),
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite'}",
        LOCAL_STORAGE_PATH=str(tmp_path / "images"),
        LOG_LEVEL="INFO",
        GC_INTERVAL_SECONDS="0",
    )
    cmd = [sys.executable, "-m", "imagehost"]
    subprocess.run([*cmd, "migrate"], env=env, cwd=tmp_path, check=True, capture_output=True, timeout=60)
    log = tmp_path / "serve.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([*cmd, "serve"], env=env, cwd=tmp_path, stdout=fh, stderr=subprocess.STDOUT)
    try:
        address = None
        for _ in range(300):
            found = re.search(r"serving on (\S+)", log.read_text())
            if found:
                address = found.group(1)
                break
            assert proc.poll() is None, log.read_text()
            time.sleep(0.1)
        assert address == f"http://{name}:{port}", log.read_text()
        with urllib.request.urlopen(address + "/login", timeout=10) as resp:
            page = resp.read().decode()
        assert resp.status == 200 and "Log in" in page
    finally:
        proc.terminate()
        proc.wait(10)
