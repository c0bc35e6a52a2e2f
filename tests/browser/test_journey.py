"""The seed's journey in a real Chromium: register → log in → upload (file chooser, drop,
paste) → watch progress → copy links → open the URL → delete; on the local backend and
on S3 (moto, CORS rule from `imagehost storage-setup`)."""

from __future__ import annotations

import os
import re
import secrets

import pytest
from playwright.sync_api import Browser, expect

from tests.support.browser import dispatch_files, fetch, log_in, log_out, new_context, png_bytes, register

pytestmark = pytest.mark.browser


def test_full_journey(browser: Browser, live_server, artifacts):
    ctx = new_context(browser, live_server.base_url)
    page = ctx.new_page()
    username = "journey_" + secrets.token_hex(3)
    register(page, username)
    log_out(page)
    log_in(page, username)
    expect(page.get_by_text("No images yet")).to_be_visible()

    # 1. the file chooser
    chosen = png_bytes(48)
    page.set_input_files(
        "[data-testid=upload-input]", files=[{"name": "chosen.png", "mimeType": "image/png", "buffer": chosen}]
    )
    expect(page.locator("[data-testid=tile]")).to_have_count(1)
    # 2. a dispatched drop with a real DataTransfer
    dropped = png_bytes(40)
    dispatch_files(page, "drop", dropped, "dropped.png")
    expect(page.locator("[data-testid=tile]")).to_have_count(2)
    # 3. a paste
    pasted = png_bytes(32)
    dispatch_files(page, "paste", pasted, "pasted.png")
    expect(page.locator("[data-testid=tile]")).to_have_count(3)
    expect(page.get_by_test_id("gallery-count")).to_have_text(re.compile(r"^3 images"))

    # newest first: the pasted one is on top; its bytes are stored and served exactly
    first = page.locator("[data-testid=tile]").first
    expect(first).to_have_attribute("data-filename", "pasted.png")
    url = first.get_attribute("data-url")
    status, body, headers = fetch(url)
    assert status == 200 and body == pasted
    assert headers.get("Content-Type") == "image/png"

    # copy: the clipboard holds the URL, then the Markdown
    first.get_by_test_id("copy-url").click()
    expect(page.get_by_test_id("copied-status")).to_have_text(re.compile("Copied"))
    assert page.evaluate("navigator.clipboard.readText()") == url
    first.locator("summary").click()
    first.get_by_test_id("copy-markdown").click()
    expect(page.get_by_test_id("copied-status")).to_have_text(re.compile("Copied"))
    assert page.evaluate("navigator.clipboard.readText()") == f"![pasted.png]({url})"

    # the page survives a reload with the three tiles (server-rendered this time)
    page.reload()
    expect(page.locator("[data-testid=tile]")).to_have_count(3)

    # delete: confirm, the tile goes without a reload, and storage + database forget it
    first = page.locator("[data-testid=tile]").first
    image_id = first.get_attribute("data-image-id")
    key = live_server.rows("SELECT storage_key FROM images WHERE id = ?", image_id)[0][0]
    assert key in live_server.objects()
    page.once("dialog", lambda d: d.accept())
    first.locator("summary").click()  # delete is in the tile's menu
    first.get_by_test_id("delete").click()
    expect(page.locator(f"[data-image-id='{image_id}']")).to_have_count(0)
    expect(page.locator("[data-testid=tile]")).to_have_count(2)
    assert page.url.endswith("/gallery")
    assert live_server.rows("SELECT count(*) FROM images WHERE id = ?", image_id) == [(0,)]
    assert key not in live_server.objects()
    ctx.close()


def test_progress_is_visible_while_uploading(browser: Browser, live_server, artifacts):
    ctx = new_context(browser, live_server.base_url, viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    register(page, "slow_" + secrets.token_hex(3))
    cdp = ctx.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 20, "downloadThroughput": -1, "uploadThroughput": 64 * 1024},
    )
    big = png_bytes(420, noise=True)  # ~530 KB: several seconds at 64 KB/s
    assert len(big) < live_server.max_upload_mb * 1024 * 1024
    page.set_input_files(
        "[data-testid=upload-input]", files=[{"name": "slow.png", "mimeType": "image/png", "buffer": big}]
    )
    progress = page.get_by_test_id("upload-progress").first
    page.wait_for_function("el => el.value > 0 && el.value < el.max", arg=progress.element_handle(), timeout=20_000)
    page.screenshot(path=str(artifacts / f"upload-in-progress-{live_server.storage_kind}.png"))
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )
    expect(page.locator("[data-testid=tile]")).to_have_count(1, timeout=30_000)
    ctx.close()


def test_too_big_and_non_image_show_their_errors(browser: Browser, live_server):
    ctx = new_context(browser, live_server.base_url)
    page = ctx.new_page()
    register(page, "errors_" + secrets.token_hex(3))
    before = live_server.objects()
    too_big = b"\x89PNG\r\n\x1a\n" + os.urandom(int(live_server.max_upload_mb * 1024 * 1024) + 10)
    page.set_input_files(
        "[data-testid=upload-input]",
        files=[
            {"name": "huge.png", "mimeType": "image/png", "buffer": too_big},
            {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"just some text"},
        ],
    )
    rows = page.get_by_test_id("upload-row")
    expect(rows).to_have_count(2)
    expect(rows.filter(has_text="huge.png").get_by_test_id("upload-status")).to_have_text(re.compile("Too big"))
    expect(rows.filter(has_text="notes.txt").get_by_test_id("upload-status")).to_have_text(
        re.compile("Not a supported image")
    )
    # a file that claims to be a PNG but is not: the server refuses it
    page.set_input_files(
        "[data-testid=upload-input]",
        files=[{"name": "fake.png", "mimeType": "image/png", "buffer": b"<html><script>alert(1)</script></html>"}],
    )
    expect(rows.filter(has_text="fake.png").get_by_test_id("upload-status")).to_have_text(
        re.compile("Not a supported image|not an? (allowed|supported)|type", re.I)
    )
    expect(page.locator("[data-testid=tile]")).to_have_count(0)
    assert live_server.objects() == before
    ctx.close()


def test_journey_without_javascript(browser: Browser, playwright, live_server):
    """Login, logout and delete are plain forms."""
    ctx = browser.new_context(base_url=live_server.base_url, java_script_enabled=False)
    page = ctx.new_page()
    username = "nojs_" + secrets.token_hex(3)
    register(page, username)
    log_out(page)
    log_in(page, username)
    # upload through the API with a key, then delete it from the page without JavaScript
    api = playwright.request.new_context(base_url=live_server.base_url)  # no cookies: a script
    token = api.post("/api/auth/login", data={"username": username, "password": "correct horse battery"})
    jwt = token.json()["access_token"]
    resp = api.post(
        "/api/upload",
        headers={"Authorization": f"Bearer {jwt}"},
        multipart={"file": {"name": "nojs.png", "mimeType": "image/png", "buffer": png_bytes(20)}},
    )
    assert resp.status == 201, resp.text()
    image_id = resp.json()["id"]
    api.dispose()
    page.goto("/gallery")
    tile = page.locator(f"[data-image-id='{image_id}']")
    expect(tile).to_have_count(1)
    tile.locator("summary").click()  # the tile's menu opens without JavaScript too
    tile.get_by_test_id("delete").click()
    page.wait_for_url(re.compile(r"/gallery"))
    expect(page.locator(f"[data-image-id='{image_id}']")).to_have_count(0)
    assert live_server.rows("SELECT count(*) FROM images WHERE id = ?", image_id) == [(0,)]
    log_out(page)
    page.goto("/gallery")
    assert "/login" in page.url
    ctx.close()
