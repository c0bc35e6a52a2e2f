"""At 375 px (imagehost issue 11): the header is one row, every action is on screen and
at least 44 px square to touch, and a long file name stays inside its card."""

from __future__ import annotations

import io
import secrets

import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, expect

from tests.support.browser import new_context, png_bytes, register

pytestmark = pytest.mark.browser
PHONE = {"viewport": {"width": 375, "height": 740}, "is_mobile": True, "has_touch": True}
LONG_NAME = "holiday-" + "x" * 120 + "-final-final-v2.png"

# Every control a finger uses: buttons, menu buttons, links styled as buttons, nav links.
CONTROLS = """() => [...document.querySelectorAll(
    'button, summary, .btn, .nav-link, .brand, label.btn, .menu-item')]
  .filter((el) => el.offsetParent !== null && !el.closest('template'))
  .map((el) => { const r = el.getBoundingClientRect();
                 return {what: el.dataset.testid || el.getAttribute('aria-label') || el.textContent.trim().slice(0, 30),
                         w: Math.round(r.width), h: Math.round(r.height), right: Math.round(r.right)}; })"""


def _check_page(page: Page, path: str) -> None:
    page.goto(path)
    header = page.locator(".site-header").bounding_box()
    assert header["height"] <= 64, f"{path}: header is {header['height']} px tall (more than one row)"
    width = page.evaluate("document.documentElement.clientWidth")
    assert page.evaluate("document.documentElement.scrollWidth") <= width, f"{path}: scrolls sideways"
    for control in page.evaluate(CONTROLS):
        assert control["h"] >= 44 and control["w"] >= 44, f"{path}: {control} is smaller than 44 px"
        assert control["right"] <= width, f"{path}: {control} is off-screen"


def test_phone_layout_fits_and_every_control_can_be_touched(browser: Browser, playwright, local_server):
    ctx = new_context(browser, local_server.base_url, **PHONE)
    page = ctx.new_page()
    username = "phone_" + secrets.token_hex(3)
    register(page, username)
    page.set_input_files(
        "[data-testid=upload-input]", files=[{"name": LONG_NAME, "mimeType": "image/png", "buffer": png_bytes(50)}]
    )
    expect(page.locator("[data-testid=tile]")).to_have_count(1)
    tall = Image.new("RGB", (40, 100), (90, 40, 120))  # a narrow tile: 0.4 of its height
    buf = io.BytesIO()
    tall.save(buf, "PNG")
    page.set_input_files(
        "[data-testid=upload-input]", files=[{"name": "tall.png", "mimeType": "image/png", "buffer": buf.getvalue()}]
    )
    expect(page.locator("[data-testid=tile]")).to_have_count(2)
    page.goto("/keys")
    page.get_by_label("Name").fill("A phone key with a rather long name to wrap")
    page.get_by_role("button", name="Create key").click()
    expect(page.get_by_test_id("new-key")).to_be_visible()
    for path in ("/gallery", "/keys", "/integrations"):
        _check_page(page, path)

    # the tile's buttons: 44 px, and inside their own tile (never over a neighbour)
    page.goto("/gallery")
    for tile in page.locator("[data-testid=tile]").all():  # a wide one, and the narrow one
        outer = tile.bounding_box()
        controls = tile.locator("button:visible, summary:visible")
        assert controls.count() >= 1
        for i in range(controls.count()):
            box = controls.nth(i).bounding_box()
            assert box["width"] >= 44 and box["height"] >= 44, box
            inside = outer["x"] - 0.5 <= box["x"] and box["x"] + box["width"] <= outer["x"] + outer["width"] + 0.5
            assert inside, (box, outer)
    # Revoke: on screen, not in a scroll box, and the thing a tap hits
    page.goto("/keys")
    revoke = page.get_by_test_id("revoke").first
    box = revoke.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 375, box
    hit = page.evaluate(
        "([x, y]) => document.elementFromPoint(x, y).closest('[data-testid=revoke]') !== null",
        [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2],
    )
    assert hit, "Revoke is covered or scrolled away"

    # the deletion page of an image with a long name: the card holds it
    image_id = page.evaluate("fetch('/api/images/').then(r => r.json()).then(b => b.images[0].id)")
    deletion = page.evaluate(f"fetch('/api/images/{image_id}').then(r => r.json()).then(b => b.deletion_url)")
    page.goto(deletion)
    card = page.locator(".card").first
    assert card.evaluate("el => el.scrollWidth <= el.clientWidth"), "the file name overflows the card"
    heading = page.locator("h1").bounding_box()
    card_box = card.bounding_box()
    assert heading["x"] + heading["width"] <= card_box["x"] + card_box["width"]
    assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    ctx.close()


def test_anonymous_pages_fit_a_phone_too(browser: Browser, local_server):
    ctx = new_context(browser, local_server.base_url, **PHONE)
    page = ctx.new_page()
    for path in ("/login", "/register", "/no/such/page"):
        _check_page(page, path)
    ctx.close()
