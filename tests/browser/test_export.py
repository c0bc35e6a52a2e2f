"""Export in a real browser: the account menu's "Export all images" downloads the ZIP
with the browser's own progress (the server announces its length)."""

from __future__ import annotations

import json
import secrets
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from tests.support.browser import new_context, png_bytes, register

pytestmark = pytest.mark.browser


def test_export_all_from_the_account_menu_downloads_every_image(browser: Browser, playwright, local_server):
    ctx = new_context(browser, local_server.base_url, accept_downloads=True)
    page = ctx.new_page()
    username = "export_" + secrets.token_hex(3)
    register(page, username)
    api = playwright.request.new_context(base_url=local_server.base_url)
    token = api.post("/api/auth/login", data={"username": username, "password": "correct horse battery"}).json()
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    sent = {}
    for i in range(2):
        data = png_bytes(16 + i, noise=True)
        resp = api.post(
            "/api/upload",
            headers=headers,
            multipart={"file": {"name": f"shot-{i}.png", "mimeType": "image/png", "buffer": data}},
        )
        assert resp.status == 201, resp.text()
        sent[f"images/shot-{i}.png"] = resp.json()["id"]
    head = api.head("/api/export", headers=headers)
    length = int(head.headers["content-length"])
    api.dispose()

    started = datetime.now(UTC).strftime("%Y-%m-%d")
    page.goto("/gallery")
    page.get_by_test_id("account-menu").locator("summary").click()
    with page.expect_download() as info:
        page.get_by_test_id("export-all").click()
    download = info.value
    days = {datetime.now(UTC).strftime("%Y-%m-%d"), started}  # the download may straddle midnight
    assert download.suggested_filename in {f"imagehost-export-{username}-{day}.zip" for day in days}
    path = Path(download.path())
    assert path.stat().st_size == length  # what the server announced is what arrived
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        assert sorted(archive.namelist()) == sorted([*sent, "metadata.json"])
        meta = json.loads(archive.read("metadata.json"))
    assert {m["path"]: m["id"] for m in meta["images"]} == sent
    ctx.close()
