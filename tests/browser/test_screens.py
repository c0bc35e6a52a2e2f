"""Screenshots of the gallery at desktop and phone widths, light and dark, saved under
test-artifacts/ (ignored by git); the page must never scroll sideways."""

from __future__ import annotations

import secrets

import pytest
from playwright.sync_api import Browser, expect

from tests.support.browser import new_context, png_bytes, register

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_gallery_screenshots(browser: Browser, local_server, artifacts, scheme):
    ctx = new_context(browser, local_server.base_url, color_scheme=scheme)
    page = ctx.new_page()
    register(page, f"shots_{scheme}_" + secrets.token_hex(2))
    for i in range(5):
        page.set_input_files(
            "[data-testid=upload-input]",
            files=[{"name": f"shot-{i}.png", "mimeType": "image/png", "buffer": png_bytes(60 + i * 10)}],
        )
        expect(page.locator("[data-testid=tile]")).to_have_count(i + 1)
    for name, width in (("desktop", 1280), ("phone", 375)):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(artifacts / f"gallery-{name}-{scheme}.png"), full_page=True)
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"horizontal scroll at {width}px"
    ctx.close()
