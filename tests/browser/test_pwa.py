"""The installable app in Chromium (imagehost issue 11): the service worker controls the
whole site and caches static assets only; a share (a multipart POST to the share target)
shows the files and uploads them only when the person says so; a cross-site POST, with or
without the service worker, uploads nothing."""

from __future__ import annotations

import base64
import re
import secrets

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support.browser import new_context, png_bytes, register

from .conftest import _serve

pytestmark = pytest.mark.browser
EVIL = "http://evil.example"

# What a share launch sends: a multipart POST of the files in the manifest's field.
SHARE = """([files]) => {
    const form = document.createElement('form');
    form.method = 'post';
    form.action = '/share';
    form.enctype = 'multipart/form-data';
    const input = document.createElement('input');
    input.type = 'file';
    input.name = 'file';
    input.multiple = true;
    const dt = new DataTransfer();
    for (const [name, b64] of files) {
        dt.items.add(new File([Uint8Array.from(atob(b64), c => c.charCodeAt(0))], name, {type: 'image/png'}));
    }
    input.files = dt.files;
    form.append(input);
    document.body.append(form);
    form.submit();
}"""


def _attack_page(target: str) -> str:
    return f"""<!doctype html><title>free prizes</title>
<form method="post" action="{target}/share" enctype="multipart/form-data">
  <input type="file" name="file" multiple><button>go</button>
</form>"""


@pytest.fixture(scope="module")
def pwa_server(request, tmp_path_factory):
    """A local server that logs at INFO, so a test can read what the share route received."""
    yield from _serve("local", request, tmp_path_factory, {"LOG_LEVEL": "INFO"})


def _server_saw(server) -> list[str]:
    log = (server.db_path.parent / "server.log").read_text()
    return re.findall(r"share target reached the server, not the service worker \(Sec-Fetch-Site: ([a-z-]+)\)", log)


def _controlled(page: Page) -> None:
    page.wait_for_function("navigator.serviceWorker && navigator.serviceWorker.controller !== null")


def _images(server, username: str) -> int:
    rows = server.rows("SELECT count(*) FROM images i JOIN users u ON u.id = i.owner_id WHERE u.username = ?", username)
    return rows[0][0]


def test_the_worker_controls_the_site_and_caches_only_static_assets(browser: Browser, local_server):
    ctx = new_context(browser, local_server.base_url)
    page = ctx.new_page()
    register(page, "sw_" + secrets.token_hex(3))
    _controlled(page)
    scope = page.evaluate("navigator.serviceWorker.getRegistration().then(r => r.scope)")
    assert scope == local_server.base_url + "/"
    page.set_input_files(
        "[data-testid=upload-input]", files=[{"name": "cached.png", "mimeType": "image/png", "buffer": png_bytes(30)}]
    )
    expect(page.locator("[data-testid=tile]")).to_have_count(1)
    image_id = page.locator("[data-testid=tile]").first.get_attribute("data-image-id")
    for path in ("/gallery", f"/images/{image_id}", "/keys", "/integrations", "/gallery"):
        page.goto(path)
        page.wait_for_load_state("networkidle")
    page.evaluate("fetch('/api/images/').then(r => r.json())")
    cached = page.evaluate("""async () => {
        const urls = [];
        for (const name of await caches.keys()) {
            for (const request of await (await caches.open(name)).keys()) urls.push(request.url);
        }
        return urls;
    }""")
    paths = [url.removeprefix(local_server.base_url) for url in cached]
    assert any(p.startswith("/static/app.css?v=") for p in paths), paths
    assert any(p.startswith("/static/gallery.js?v=") for p in paths), paths
    assert all(p.startswith("/static/") for p in paths), paths  # no page, no /api, no /i/
    ctx.close()


def test_a_shared_image_is_shown_then_uploaded_when_the_person_says_so(browser: Browser, local_server, artifacts):
    ctx = new_context(
        browser, local_server.base_url, viewport={"width": 375, "height": 780}, is_mobile=True, has_touch=True
    )
    page = ctx.new_page()
    username = "share_" + secrets.token_hex(3)
    register(page, username)
    _controlled(page)
    files = [
        ["holiday-1.png", base64.b64encode(png_bytes(40)).decode()],
        ["holiday-2.png", base64.b64encode(png_bytes(44)).decode()],
    ]
    page.evaluate(SHARE, [files])
    page.wait_for_url("**/gallery")  # the worker redirected, and the address was tidied
    inbox = page.locator("[data-share-inbox]")
    expect(inbox).to_be_visible()
    expect(inbox).to_contain_text("holiday-1.png")
    expect(inbox).to_contain_text("holiday-2.png")
    assert _images(local_server, username) == 0  # shown, not uploaded
    expect(inbox).to_contain_text("Upload them to your gallery?")  # from this site: no warning
    (artifacts / "screens").mkdir(exist_ok=True)
    page.screenshot(path=str(artifacts / "screens" / "share-inbox-375-light.png"))
    page.keyboard.press("Enter")  # focus is on the question, not on the button
    page.wait_for_timeout(600)
    assert _images(local_server, username) == 0
    page.get_by_test_id("share-upload").click()
    expect(page.locator("[data-testid=tile]")).to_have_count(2)
    assert sorted(page.locator("[data-testid=tile]").evaluate_all("els => els.map(e => e.dataset.filename)")) == [
        "holiday-1.png",
        "holiday-2.png",
    ]
    assert _images(local_server, username) == 2
    page.reload()  # a reload asks for nothing again
    expect(inbox).to_be_hidden()
    ctx.close()


@pytest.mark.parametrize("worker", ["allow", "block"])
def test_a_cross_site_post_to_the_share_target_uploads_nothing(browser: Browser, pwa_server, worker):
    local_server = pwa_server
    ctx = new_context(browser, local_server.base_url, service_workers=worker)
    page = ctx.new_page()
    username = f"victim_{worker}_" + secrets.token_hex(3)
    register(page, username)
    if worker == "allow":
        _controlled(page)
    objects = local_server.objects()
    seen = len(_server_saw(local_server))
    page.route(
        f"{EVIL}/**", lambda route: route.fulfill(content_type="text/html", body=_attack_page(local_server.base_url))
    )
    page.goto(f"{EVIL}/")
    page.set_input_files(
        "input[type=file]", files=[{"name": "planted.png", "mimeType": "image/png", "buffer": png_bytes(36)}]
    )
    page.click("button")
    page.wait_for_url(f"{local_server.base_url}/gallery*")
    inbox = page.locator("[data-share-inbox]")
    expect(inbox).to_be_visible()
    if worker == "allow":  # the worker took it: the file is shown, waiting for a click
        expect(inbox).to_contain_text("planted.png")
        expect(inbox).to_contain_text("Sent by the website evil.example")
        expect(page.get_by_test_id("share-upload")).to_be_visible()
    else:  # the server got it: it read nothing, stored nothing
        expect(inbox).to_contain_text("did not reach imagehost")
        assert _server_saw(local_server)[seen:] == ["cross-site"]  # what Chromium sent
    page.wait_for_timeout(1000)
    assert _images(local_server, username) == 0
    assert local_server.objects() == objects
    page.get_by_test_id("share-discard").click()
    expect(inbox).to_be_hidden()
    assert _images(local_server, username) == 0
    ctx.close()


def test_a_same_origin_share_without_a_worker_is_refused_politely(browser: Browser, pwa_server):
    local_server = pwa_server
    ctx = new_context(browser, local_server.base_url, service_workers="block")
    page = ctx.new_page()
    username = "noworker_" + secrets.token_hex(3)
    register(page, username)
    seen = len(_server_saw(local_server))
    page.evaluate(SHARE, [[["lost.png", base64.b64encode(png_bytes(20)).decode()]]])
    page.wait_for_url("**/gallery")
    expect(page.locator("[data-share-inbox]")).to_contain_text("did not reach imagehost")
    assert _server_saw(local_server)[seen:] == ["same-origin"]  # what Chromium sent
    assert _images(local_server, username) == 0
    ctx.close()
