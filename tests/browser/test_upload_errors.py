"""Upload errors in plain words, per file, with a retry: the network going away, and a
full quota. Nothing is left behind by a failed upload."""

from __future__ import annotations

import re
import secrets

import pytest
from playwright.sync_api import Browser, expect

from tests.support.browser import new_context, png_bytes, register

pytestmark = pytest.mark.browser


def test_network_lost_then_retry_succeeds(browser: Browser, local_server):
    ctx = new_context(browser, local_server.base_url)
    page = ctx.new_page()
    register(page, "offline_" + secrets.token_hex(3))
    before = local_server.objects()
    ctx.set_offline(True)
    page.set_input_files(
        "[data-testid=upload-input]", files=[{"name": "flaky.png", "mimeType": "image/png", "buffer": png_bytes(30)}]
    )
    row = page.get_by_test_id("upload-row").filter(has_text="flaky.png")
    expect(row.get_by_test_id("upload-status")).to_have_text(re.compile("Network lost"))
    expect(row.get_by_test_id("upload-retry")).to_be_visible()
    assert local_server.objects() == before
    ctx.set_offline(False)
    row.get_by_test_id("upload-retry").click()
    expect(page.locator("[data-testid=tile]")).to_have_count(1)
    expect(page.locator("[data-testid=tile]").first).to_have_attribute("data-filename", "flaky.png")
    ctx.close()


def test_full_quota_is_said_in_plain_words_and_leaves_nothing(browser: Browser, quota_server):
    ctx = new_context(browser, quota_server.base_url)
    page = ctx.new_page()
    username = "quota_" + secrets.token_hex(3)
    register(page, username)
    first = png_bytes(100, noise=True)  # ~30 KB of the 40 KB allowed
    assert 20_000 < len(first) < 40 * 1024
    page.set_input_files(
        "[data-testid=upload-input]", files=[{"name": "fits.png", "mimeType": "image/png", "buffer": first}]
    )
    expect(page.locator("[data-testid=tile]")).to_have_count(1)
    objects = quota_server.objects()
    page.set_input_files(
        "[data-testid=upload-input]",
        files=[{"name": "overflow.png", "mimeType": "image/png", "buffer": png_bytes(100, noise=True)}],
    )
    row = page.get_by_test_id("upload-row").filter(has_text="overflow.png")
    expect(row.get_by_test_id("upload-status")).to_have_text("Storage quota full")
    expect(page.locator("[data-testid=tile]")).to_have_count(1)
    assert quota_server.objects() == objects
    rows = quota_server.rows(
        "SELECT count(*), max(u.storage_used_bytes) FROM images i JOIN users u ON u.id = i.owner_id "
        "WHERE u.username = ?",
        username,
    )
    assert rows == [(1, len(first))]  # one image, and only its bytes count
    ctx.close()
