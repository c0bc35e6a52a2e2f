"""A failed upload says what happened in a plain sentence, and offers Retry only when
trying again can help — decided by the error's code (imagehost issue 11)."""

from __future__ import annotations

import json
import re
import secrets

import pytest
from playwright.sync_api import Browser, Route, expect

from tests.support.browser import new_context, png_bytes, register

pytestmark = pytest.mark.browser


def _refuse_with(code: str, status: int, detail: object = None):
    def handle(route: Route) -> None:
        body = {"error": "words a client must not rely on", "code": code, "detail": detail}
        route.fulfill(status=status, content_type="application/json", body=json.dumps(body))

    return handle


def _upload(page, name: str, data: bytes, mime: str = "image/png"):
    page.set_input_files("[data-testid=upload-input]", files=[{"name": name, "mimeType": mime, "buffer": data}])
    return page.get_by_test_id("upload-row").filter(has_text=name)


def test_a_file_that_can_never_succeed_gets_no_retry_and_names_the_accepted_formats(browser: Browser, local_server):
    ctx = new_context(browser, local_server.base_url)
    page = ctx.new_page()
    register(page, "advice_" + secrets.token_hex(3))
    before = local_server.objects()
    # refused by the page's own check (a text file), and by the server (HTML named .png)
    for name, data, mime in (
        ("notes.txt", b"just text", "text/plain"),
        ("fake.png", b"<html><script>alert(1)</script></html>", "image/png"),
    ):
        row = _upload(page, name, data, mime)
        expect(row.get_by_test_id("upload-status")).to_have_text("Not a supported image")
        expect(row.get_by_test_id("upload-hint")).to_have_text(re.compile(r"Accepted: JPEG, PNG, GIF, WebP and AVIF\."))
        expect(row.get_by_test_id("upload-retry")).to_be_hidden()
    assert local_server.objects() == before
    ctx.close()


# code, HTTP status, detail, the status text, whether Retry is offered
CASES = [
    ("storage_unavailable", 503, None, "Server busy", True),
    ("database_unavailable", 503, None, "Server busy", True),
    ("rate_limited", 429, {"retry_after": 7}, "Too many uploads at once", True),
    ("internal_error", 500, {"request_id": "x"}, "Something went wrong on the server", True),
    ("unsupported_type", 415, {"allowed": ["image/png", "image/jpeg"]}, "Not a supported image", False),
    ("type_mismatch", 415, None, "Not a supported image", False),
    ("file_too_large", 413, {"max_bytes": 2 * 1048576}, "Too big (max 2 MB)", False),
    ("quota_exceeded", 413, None, "Storage quota full", False),
    ("invalid_image", 422, None, "Damaged image", False),
    ("too_many_pixels", 422, {"max_pixels": 100_000_000}, "Too many pixels", False),
    # the code decides, not the status: a 503 that says "unsupported" is not retried
    ("unsupported_type", 503, None, "Not a supported image", False),
]


def test_retry_is_offered_by_code(browser: Browser, local_server):
    ctx = new_context(browser, local_server.base_url)
    page = ctx.new_page()
    register(page, "bycode_" + secrets.token_hex(3))
    for i, (code, status, detail, text, retry) in enumerate(CASES):
        page.route("**/api/images/confirm", _refuse_with(code, status, detail))
        row = _upload(page, f"case-{i}-{code}.png", png_bytes(20 + i))
        expect(row.get_by_test_id("upload-status")).to_have_text(text)
        hint = row.get_by_test_id("upload-hint")
        expect(hint).not_to_be_empty()
        assert "words a client must not rely on" not in row.inner_text()
        if retry:
            expect(row.get_by_test_id("upload-retry")).to_be_visible()
        else:
            expect(row.get_by_test_id("upload-retry")).to_be_hidden()
        page.unroute("**/api/images/confirm")
    expect(page.get_by_test_id("upload-row").nth(2).get_by_test_id("upload-hint")).to_have_text("Wait 7 s, then retry.")
    expect(page.get_by_test_id("upload-row").nth(4).get_by_test_id("upload-hint")).to_have_text(
        re.compile(r"Accepted: PNG and JPEG\.")
    )
    # a transient failure, retried once the server is back, succeeds
    row = page.get_by_test_id("upload-row").first
    row.get_by_test_id("upload-retry").click()
    expect(row.get_by_test_id("upload-status")).to_have_text("Uploaded")
    expect(page.locator("[data-testid=tile]")).to_have_count(1)
    ctx.close()
