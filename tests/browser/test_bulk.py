"""Search and bulk actions in the gallery (imagehost issue 13): the search box filters
the gallery (a plain GET, so it works without JavaScript too); tiles are selected with a
click, a shift-click for a range, Space or Enter; the selection is deleted (one confirm),
added to an album, or its links copied at once."""

from __future__ import annotations

import re
import secrets

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support.browser import new_context, png_bytes, register

pytestmark = pytest.mark.browser
NAMES = ["cat-1.png", "cat-2.png", "dog-1.png", "cat-3.png", "bird-1.png"]


def gallery_with(page: Page, names: list[str]) -> None:
    """Upload `names` one by one (so their order is known: the newest first)."""
    for n, name in enumerate(names, 1):
        page.set_input_files(
            "[data-testid=upload-input]",
            files=[{"name": name, "mimeType": "image/png", "buffer": png_bytes(16 + n, noise=True)}],
        )
        expect(page.get_by_test_id("tile")).to_have_count(n)
    page.reload()


def tile_names(page: Page) -> list[str]:
    return page.get_by_test_id("tile").evaluate_all("tiles => tiles.map(t => t.dataset.filename)")


def test_search_filters_the_gallery_with_and_without_javascript(browser: Browser, local_server):
    ctx = new_context(browser, local_server.base_url)
    page = ctx.new_page()
    user = "search_" + secrets.token_hex(3)
    register(page, user)
    gallery_with(page, NAMES)
    page.keyboard.press("/")
    page.keyboard.type("CAT")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"[?&]q=CAT"))
    assert tile_names(page) == ["cat-3.png", "cat-2.png", "cat-1.png"]
    expect(page.get_by_test_id("search-note")).to_contain_text("3 matches")
    expect(page.get_by_test_id("search")).to_have_value("CAT")
    page.get_by_test_id("search-clear").click()
    expect(page.get_by_test_id("tile")).to_have_count(5)
    ctx.close()

    # the same form without JavaScript
    nojs = new_context(browser, local_server.base_url, java_script_enabled=False)
    page = nojs.new_page()
    page.goto("/login")
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("button", name=re.compile("log ?in", re.I)).click()
    page.wait_for_url(re.compile(r"/gallery"))
    page.get_by_test_id("search").fill("dog")
    page.get_by_test_id("search").press("Enter")
    page.wait_for_url(re.compile(r"[?&]q=dog"))
    assert tile_names(page) == ["dog-1.png"]
    expect(page.get_by_test_id("tile-select")).to_be_hidden()  # selecting needs JavaScript
    nojs.close()


def test_select_with_shift_click_and_keyboard_then_copy_and_add_to_album(browser: Browser, local_server):
    ctx = new_context(browser, local_server.base_url)
    page = ctx.new_page()
    user = "bulk_" + secrets.token_hex(3)
    register(page, user)
    gallery_with(page, NAMES)
    boxes = page.get_by_test_id("tile-select")
    bar = page.get_by_test_id("bulk-bar")
    expect(bar).to_be_hidden()
    boxes.nth(0).click()  # loads bulk.js
    expect(bar).to_be_visible()
    expect(page.get_by_test_id("bulk-count")).to_have_text("1 selected")
    boxes.nth(2).click(modifiers=["Shift"])  # the range 0..2
    expect(page.get_by_test_id("bulk-count")).to_have_text("3 selected")
    boxes.nth(4).focus()
    page.keyboard.press("Space")
    expect(page.get_by_test_id("bulk-count")).to_have_text("4 selected")
    page.keyboard.press("Enter")  # Enter toggles too
    expect(page.get_by_test_id("bulk-count")).to_have_text("3 selected")
    selected = ["bird-1.png", "cat-3.png", "dog-1.png"]  # the newest three
    checked = boxes.evaluate_all("bs => bs.filter(b => b.checked).map(b => b.closest('.tile').dataset.filename)")
    assert checked == selected

    # copy all their links, in the chosen format, one a line
    urls = page.get_by_test_id("tile").evaluate_all(
        "ts => ts.filter(t => t.querySelector('[data-select]').checked).map(t => t.dataset.url)"
    )
    page.get_by_test_id("bulk-format").select_option("markdown")
    page.get_by_test_id("bulk-copy").click()
    expect(page.get_by_test_id("copied-status")).to_have_text("Copied")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == "\n".join(f"![{n}]({u})" for n, u in zip(selected, urls, strict=True))

    # add them to a new album, then two of them to the same album again (it is picked)
    page.get_by_test_id("bulk-album").click()
    dialog = page.get_by_test_id("album-dialog")
    expect(dialog).to_be_visible()
    page.get_by_test_id("album-title").fill("<b>Pets</b>")
    page.get_by_test_id("album-visibility").select_option("unlisted")
    page.get_by_test_id("album-add").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_test_id("copied-status")).to_contain_text("Added 3 images")
    albums = local_server.rows(
        "SELECT a.id, a.title, a.visibility FROM albums a JOIN users u ON u.id = a.owner_id WHERE u.username = ?",
        user,
    )
    assert [a[1:] for a in albums] == [("<b>Pets</b>", "unlisted")]
    members = local_server.rows(
        "SELECT i.filename FROM album_images m JOIN images i ON i.id = m.image_id WHERE m.album_id = ? "
        "ORDER BY i.filename",
        albums[0][0],
    )
    assert [m[0] for m in members] == sorted(selected)
    page.get_by_test_id("bulk-clear").click()
    expect(bar).to_be_hidden()
    boxes.nth(3).click()
    page.get_by_test_id("bulk-album").click()
    expect(page.get_by_test_id("album-choice")).to_have_value(albums[0][0])
    page.get_by_test_id("album-add").click()
    expect(page.get_by_test_id("copied-status")).to_contain_text("Added 1 image to “<b>Pets</b>”")
    assert local_server.rows("SELECT COUNT(*) FROM album_images WHERE album_id = ?", albums[0][0]) == [(4,)]
    ctx.close()


def test_bulk_delete_asks_once_and_deletes_rows_and_objects(browser: Browser, local_server):
    ctx = new_context(browser, local_server.base_url)
    page = ctx.new_page()
    user = "bulkdel_" + secrets.token_hex(3)
    register(page, user)
    gallery_with(page, NAMES[:3])
    urls = page.get_by_test_id("tile").evaluate_all("ts => ts.map(t => t.dataset.url)")
    keys = [u.rsplit("/", 1)[-1] for u in urls]
    boxes = page.get_by_test_id("tile-select")
    boxes.nth(0).click()
    boxes.nth(1).click(modifiers=["Shift"])
    dialogs: list[str] = []

    def accept(dialog) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    page.get_by_test_id("bulk-delete").click()
    expect(page.get_by_test_id("tile")).to_have_count(1)
    assert len(dialogs) == 1 and "Delete 2 images" in dialogs[0]
    expect(page.get_by_test_id("gallery-count")).to_have_text("1 image")
    expect(page.get_by_test_id("bulk-bar")).to_be_hidden()
    mine = "SELECT i.filename FROM images i JOIN users u ON u.id = i.owner_id WHERE u.username = ?"
    assert [r[0] for r in local_server.rows(mine, user)] == ["cat-1.png"]
    objects = local_server.objects()
    assert keys[2] in objects and keys[0] not in objects and keys[1] not in objects
    page.reload()
    assert tile_names(page) == ["cat-1.png"]
    ctx.close()
