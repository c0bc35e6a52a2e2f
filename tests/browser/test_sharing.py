"""Sharing in a real Chromium: the uploader's expiry picker (an upload with "1 hour"
expires an hour later and its tile counts down), the default expiry set on the sharing
page, and the share page as a link format — copied, then opened without an account."""

from __future__ import annotations

import json
import re
import secrets
from datetime import UTC, datetime

import pytest
from playwright.sync_api import Browser, expect

from tests.support.browser import fetch, new_context, png_bytes, register

pytestmark = pytest.mark.browser


def _my_images(page) -> list[dict]:
    return page.evaluate("fetch('/api/images/').then((r) => r.json())")["images"]


def test_the_expiry_picker_and_the_share_page_link(browser: Browser, local_server, artifacts):
    ctx = new_context(browser, local_server.base_url)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    register(page, "share_" + secrets.token_hex(3))

    # The picker starts at "Never"; pick "1 hour", then upload.
    picker = page.get_by_test_id("expiry")
    expect(picker).to_have_value("")
    picker.select_option(label="1 hour")
    page.set_input_files(
        "[data-testid=upload-input]", files=[{"name": "soon.png", "mimeType": "image/png", "buffer": png_bytes(40)}]
    )
    tile = page.locator("[data-testid=tile]").first
    expect(tile).to_have_count(1)
    expect(tile.get_by_test_id("time-left")).to_be_visible()
    expect(tile.get_by_test_id("time-left")).to_have_text(re.compile(r"^(59|60) min left$"))
    (image,) = _my_images(page)
    left = (datetime.fromisoformat(image["expires_at"].replace("Z", "+00:00")) - datetime.now(UTC)).total_seconds()
    assert 3600 - 120 < left <= 3600

    # "Never" again: the next upload does not expire, and its tile says nothing.
    picker.select_option(label="Never")
    page.set_input_files(
        "[data-testid=upload-input]", files=[{"name": "kept.png", "mimeType": "image/png", "buffer": png_bytes(36)}]
    )
    expect(page.locator("[data-testid=tile]")).to_have_count(2)
    newest = page.locator("[data-testid=tile]").first
    expect(newest).to_have_attribute("data-filename", "kept.png")
    expect(newest.get_by_test_id("time-left")).to_be_hidden()
    kept = next(i for i in _my_images(page) if i["filename"] == "kept.png")
    assert kept["expires_at"] is None

    # Server-rendered after a reload, too.
    page.reload()
    expect(page.locator("[data-testid=tile]").nth(1).get_by_test_id("time-left")).to_have_text(
        re.compile(r"^(59|60) min left$")
    )

    # The share page is one of the copy formats.
    first = page.locator("[data-testid=tile]").first
    first.locator("summary").click()
    first.get_by_test_id("copy-page").click()
    expect(page.get_by_test_id("copied-status")).to_have_text(re.compile("Copied"))
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == kept["page_url"] == f"{local_server.base_url}/v/{kept['id']}"

    # Anyone with the link sees the image and its name, and the previews' tags.
    stranger = new_context(browser, local_server.base_url).new_page()
    stranger.goto(copied)
    expect(stranger.get_by_test_id("share-filename")).to_have_text("kept.png")
    expect(stranger.get_by_test_id("share-image")).to_be_visible()
    assert stranger.evaluate("document.querySelector('[data-testid=share-image]').naturalWidth") == 36
    og_image = stranger.locator('meta[property="og:image"]').get_attribute("content")
    status, body, headers = fetch(og_image)
    assert status == 200 and headers["Content-Type"] == "image/png" and body == png_bytes(36)
    oembed = stranger.locator('link[type="application/json+oembed"]').get_attribute("href")
    status, body, _ = fetch(oembed)
    assert status == 200 and json.loads(body)["url"] == og_image
    expect(stranger.get_by_test_id("link-page")).to_have_value(copied)
    stranger.screenshot(path=str(artifacts / "share-page.png"), full_page=True)
    stranger.context.close()

    # A default expiry set on the sharing page (a plain form) is where the picker starts.
    page.goto("/account/sharing")
    page.get_by_label("Delete my uploads after").select_option(label="1 day")
    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("saved")).to_be_visible()
    page.screenshot(path=str(artifacts / "sharing-settings.png"), full_page=True)
    page.goto("/gallery")
    expect(page.get_by_test_id("expiry")).to_have_value("86400")
    assert not errors, errors
    ctx.close()
