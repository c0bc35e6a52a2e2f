"""Gallery details (imagehost issue 11): tiles show the thumbnail with its own size when
the image JSON has one (so nothing moves while it loads), and `/` focuses the search box."""

from __future__ import annotations

import json
import secrets

import pytest
from playwright.sync_api import Browser, Route, expect

from tests.support.browser import new_context, png_bytes, register

pytestmark = pytest.mark.browser


def test_a_new_tile_uses_the_thumbnail_and_its_size(browser: Browser, local_server):
    ctx = new_context(browser, local_server.base_url)
    page = ctx.new_page()
    register(page, "thumbs_" + secrets.token_hex(3))

    def with_thumbnail(route: Route) -> None:
        # the image JSON as it will be once the server makes thumbnails: a smaller image,
        # its own width and height
        response = route.fetch()
        image = response.json()
        image.update(thumbnail_url=image["public_url"] + "?thumb", thumbnail_width=320, thumbnail_height=160)
        route.fulfill(response=response, body=json.dumps(image))

    page.route("**/api/images/confirm", with_thumbnail)
    page.set_input_files(
        "[data-testid=upload-input]", files=[{"name": "wide.png", "mimeType": "image/png", "buffer": png_bytes(64)}]
    )
    tile = page.locator("[data-testid=tile]").first
    expect(tile).to_have_count(1)
    img = tile.locator("img")
    assert img.get_attribute("src").endswith("?thumb")
    assert (img.get_attribute("width"), img.get_attribute("height")) == ("320", "160")
    assert tile.get_attribute("data-ar") == "20"  # 2:1, from the thumbnail's size
    assert tile.get_attribute("data-width") == "64"  # the image's own size stays for the links
    # the reserved box has the thumbnail's shape before and after it loads
    box = tile.locator(".tile-link").bounding_box()
    assert abs(box["width"] / box["height"] - 2.0) < 0.02
    ctx.close()


def test_server_rendered_tiles_without_thumbnail_sizes_use_the_image_size(browser: Browser, playwright, local_server):
    ctx = new_context(browser, local_server.base_url)
    page = ctx.new_page()
    username = "sizes_" + secrets.token_hex(3)
    register(page, username)
    page.set_input_files(
        "[data-testid=upload-input]", files=[{"name": "square.png", "mimeType": "image/png", "buffer": png_bytes(48)}]
    )
    expect(page.locator("[data-testid=tile]")).to_have_count(1)
    page.reload()
    img = page.locator("[data-testid=tile] img").first
    assert (img.get_attribute("width"), img.get_attribute("height")) == ("48", "48")
    assert page.locator("[data-testid=tile]").first.get_attribute("data-ar") == "10"
    ctx.close()


def test_slash_focuses_the_search_box(browser: Browser, local_server):
    ctx = new_context(browser, local_server.base_url)
    page = ctx.new_page()
    register(page, "slash_" + secrets.token_hex(3))
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.matches('[data-search]')")
    page.keyboard.type("/cats")  # typing a slash in the box stays a slash
    assert page.evaluate("document.activeElement.value") == "/cats"
    ctx.close()
