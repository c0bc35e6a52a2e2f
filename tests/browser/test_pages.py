"""The other pages in a real browser: API keys, integrations, the detail view, load more,
keyboard focus, and the gallery's asset weight."""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.support.browser import fetch, new_context, png_bytes, register

pytestmark = pytest.mark.browser
STATIC = Path(__file__).resolve().parents[2] / "static"


def _upload_via_api(playwright, base_url: str, username: str, count: int) -> list[str]:
    api = playwright.request.new_context(base_url=base_url)
    token = api.post("/api/auth/login", data={"username": username, "password": "correct horse battery"}).json()
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    ids = []
    for i in range(count):
        resp = api.post(
            "/api/upload",
            headers=headers,
            multipart={"file": {"name": f"bulk-{i:03}.png", "mimeType": "image/png", "buffer": png_bytes(8 + i % 7)}},
        )
        assert resp.status == 201, resp.text()
        ids.append(resp.json()["id"])
    api.dispose()
    return ids


def test_api_keys_create_show_once_copy_and_revoke(browser: Browser, local_server):
    ctx = new_context(browser, local_server.base_url)
    page = ctx.new_page()
    register(page, "keys_" + secrets.token_hex(3))
    page.goto("/keys")
    page.get_by_label("Name").fill("ShareX at home")
    page.get_by_role("button", name="Create key").click()
    secret = page.get_by_test_id("new-key-secret").input_value()
    assert re.fullmatch(r"ih_[A-Za-z0-9_-]{32,}", secret)
    page.get_by_test_id("copy-secret").click()
    expect(page.get_by_test_id("copied-status")).to_have_text(re.compile("Copied"))
    assert page.evaluate("navigator.clipboard.readText()") == secret
    # the key works, and the secret is never shown again
    status, body, _ = fetch(local_server.base_url + "/api/images/", {"Authorization": f"Bearer {secret}"})
    assert status == 200 and json.loads(body)["total"] == 0
    page.goto("/keys")
    expect(page.get_by_test_id("new-key")).to_have_count(0)
    assert secret not in page.content()
    row = page.get_by_test_id("key-row").filter(has_text="ShareX at home")
    expect(row).to_contain_text(secret[:11])
    page.once("dialog", lambda d: d.accept())
    row.get_by_test_id("revoke").click()
    expect(page.get_by_test_id("key-row").filter(has_text="ShareX at home")).to_have_count(0)
    status, _, _ = fetch(local_server.base_url + "/api/images/", {"Authorization": f"Bearer {secret}"})
    assert status == 401
    ctx.close()


def test_integrations_page_gives_sharex_file_flameshot_script_and_curl_line(browser: Browser, local_server):
    ctx = new_context(browser, local_server.base_url, accept_downloads=True)
    page = ctx.new_page()
    register(page, "integr_" + secrets.token_hex(3))
    page.goto("/integrations")
    expect(page.get_by_test_id("curl-line")).to_contain_text(f"{local_server.base_url}/api/upload")
    with page.expect_download() as info:
        page.get_by_test_id("sharex-download").click()
    sxcu = json.loads(Path(info.value.path()).read_text())
    assert sxcu["RequestURL"] == f"{local_server.base_url}/api/upload"
    assert sxcu["Headers"]["Authorization"].startswith("Bearer ih_")
    with page.expect_download() as info:
        page.get_by_test_id("flameshot-download").click()
    script = Path(info.value.path()).read_text()
    assert script.startswith("#!") and local_server.base_url in script and "flameshot gui --raw" in script
    page.get_by_test_id("copy-curl").click()
    expect(page.get_by_test_id("copied-status")).to_have_text(re.compile("Copied"))
    assert "curl " in page.evaluate("navigator.clipboard.readText()")
    ctx.close()


def test_detail_view_shows_image_facts_and_every_link_format(browser: Browser, playwright, local_server):
    ctx = new_context(browser, local_server.base_url)
    page = ctx.new_page()
    username = "detail_" + secrets.token_hex(3)
    register(page, username)
    [image_id] = _upload_via_api(playwright, local_server.base_url, username, 1)
    page.goto("/gallery")
    page.locator(f"[data-image-id='{image_id}'] a.tile-link").click()
    page.wait_for_url(re.compile(f"/images/{image_id}$"))
    expect(page.locator("main")).to_contain_text("bulk-000.png")
    expect(page.locator("main")).to_contain_text("8 × 8")
    url = page.get_by_test_id("link-url").input_value()
    assert page.get_by_test_id("link-markdown").input_value() == f"![bulk-000.png]({url})"
    assert page.get_by_test_id("link-bbcode").input_value() == f"[img]{url}[/img]"
    assert 'alt="bulk-000.png"' in page.get_by_test_id("link-html").input_value()
    status, body, _ = fetch(url)
    assert status == 200 and body[:8] == b"\x89PNG\r\n\x1a\n"
    # another user gets 404 for the same page
    other = new_context(browser, local_server.base_url)
    op = other.new_page()
    register(op, "other_" + secrets.token_hex(3))
    resp = op.goto(f"/images/{image_id}")
    assert resp.status == 404
    other.close()
    ctx.close()


def test_load_more_follows_the_keyset_cursor(browser: Browser, playwright, local_server):
    ctx = new_context(browser, local_server.base_url)
    page = ctx.new_page()
    username = "many_" + secrets.token_hex(3)
    register(page, username)
    ids = _upload_via_api(playwright, local_server.base_url, username, 55)
    page.goto("/gallery")
    expect(page.locator("[data-testid=tile]")).to_have_count(50)
    expect(page.get_by_test_id("gallery-count")).to_have_text(re.compile(r"^55 images"))
    page.get_by_test_id("load-more").click()
    expect(page.locator("[data-testid=tile]")).to_have_count(55)
    shown = page.locator("[data-testid=tile]").evaluate_all("els => els.map(e => e.dataset.imageId)")
    assert shown == list(reversed(ids))  # newest first, no duplicates, none missing
    ctx.close()


def test_every_control_is_reachable_by_keyboard_with_a_visible_focus_ring(browser: Browser, playwright, local_server):
    ctx = new_context(browser, local_server.base_url)
    page = ctx.new_page()
    username = "keyboard_" + secrets.token_hex(3)
    register(page, username)
    _upload_via_api(playwright, local_server.base_url, username, 1)
    page.goto("/gallery")
    focused = """() => {
        const el = document.activeElement;
        if (el === document.body) return null;  // wrapped past the last control
        // a visually hidden file input shows its ring on its label
        const shown = el.type === 'file' ? document.querySelector(`label[for="${el.id}"]`) : el;
        const style = getComputedStyle(shown);
        return {id: el.dataset.testid || el.getAttribute('for') || el.tagName + ':' + (el.textContent || '').trim(),
                tag: el.tagName, label: el.getAttribute('aria-label') || '',
                ring: style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0
                      || style.boxShadow !== 'none'};
    }"""
    reached = set()
    for _ in range(40):
        page.keyboard.press("Tab")
        info = page.evaluate(focused)
        if info is None:
            break
        assert info["ring"], f"no visible focus ring on {info['id']}"
        reached.add(info["id"])
        if info["tag"] == "SUMMARY" and info["label"] == "More actions":
            break
    for needed in ("upload-input", "copy-url"):
        assert any(needed in r for r in reached), f"{needed} not reachable by Tab: {sorted(reached)}"
    # the tile's menu opens from the keyboard; its actions, delete included, follow; Escape closes it
    page.keyboard.press("Enter")
    for _ in range(8):
        page.keyboard.press("Tab")
        info = page.evaluate(focused)
        assert info["ring"], f"no visible focus ring on {info['id']}"
        reached.add(info["id"])
        if info["id"] == "delete":
            break
    assert "delete" in reached and "copy-markdown" in reached, sorted(reached)
    page.keyboard.press("Escape")
    expect(page.locator("[data-testid=tile] details[open]")).to_have_count(0)
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "More actions"
    ctx.close()


def test_gallery_javascript_and_css_stay_under_60_kb():
    """Everything the gallery page loads from static/ (its entry module, the modules it
    imports, the stylesheet), before compression."""
    gallery_html = (Path(__file__).resolve().parents[2] / "templates" / "gallery.html").read_text()
    base_html = (Path(__file__).resolve().parents[2] / "templates" / "base.html").read_text()
    entry = set(re.findall(r"static_url\('([^']+\.(?:js|css))'\)", gallery_html + base_html))
    seen, todo = set(), list(entry)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name.endswith(".js"):
            todo += [m.lstrip("./") for m in re.findall(r"""from\s+['"](\./[^'"]+)['"]""", (STATIC / name).read_text())]
    total = sum((STATIC / n).stat().st_size for n in seen)
    print(f"gallery JS+CSS: {total} bytes in {sorted(seen)}")
    assert "gallery.js" in seen and "app.css" in seen
    assert total < 60 * 1024
