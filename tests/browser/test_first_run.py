"""First run in a real browser (imagehost issue 11): a server started with nothing but
HOST and PORT set works when opened as 127.0.0.1 and as localhost — uploads succeed,
the gallery shows the images, and the page's policy blocks nothing."""

from __future__ import annotations

import re
import secrets

import pytest
from playwright.sync_api import Browser, expect

from tests.support.browser import fetch, new_context, png_bytes, register

from .conftest import _serve

pytestmark = pytest.mark.browser

# Every CSP violation and failed request the page sees, kept for the test to read.
WATCH = """
window.__problems = [];
document.addEventListener('securitypolicyviolation',
  (e) => window.__problems.push(`csp ${e.violatedDirective} ${e.blockedURI}`));
"""


@pytest.fixture(scope="module")
def first_run_server(request, tmp_path_factory):
    """`imagehost serve` as `make run` starts it: PUBLIC_BASE_URL not set."""
    yield from _serve("local", request, tmp_path_factory, {"PUBLIC_BASE_URL": None, "LOG_LEVEL": "INFO"})


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost"])
def test_uploads_and_images_work_at_every_loopback_name(browser: Browser, first_run_server, name):
    port = first_run_server.base_url.rsplit(":", 1)[1]
    log = (first_run_server.db_path.parent / "server.log").read_text()
    assert f"serving on http://127.0.0.1:{port} " in log  # the printed address
    origin = f"http://{name}:{port}"
    ctx = new_context(browser, origin)
    ctx.add_init_script(WATCH)
    page = ctx.new_page()
    failed: list[str] = []
    page.on("requestfailed", lambda r: failed.append(f"{r.method} {r.url} {r.failure}"))
    register(page, "firstrun_" + secrets.token_hex(3))
    data = png_bytes(40)
    page.set_input_files(
        "[data-testid=upload-input]", files=[{"name": f"at-{name}.png", "mimeType": "image/png", "buffer": data}]
    )
    expect(page.get_by_test_id("upload-status").first).to_have_text("Uploaded")
    tile = page.locator("[data-testid=tile]")
    expect(tile).to_have_count(1)
    image = tile.first.locator("img")
    expect(image).to_have_js_property("complete", True)
    assert image.evaluate("img => img.naturalWidth") == 40  # the image shows, not a broken icon
    page.reload()  # and server-rendered too
    page.locator("[data-testid=tile] img").first.evaluate(
        "img => img.complete || new Promise(ok => img.addEventListener('load', ok, {once: true}))"
    )
    assert page.locator("[data-testid=tile] img").first.evaluate("img => img.naturalWidth") == 40
    assert page.evaluate("window.__problems") == []
    assert failed == []
    url = tile.first.get_attribute("data-url")
    assert re.match(rf"http://127\.0\.0\.1:{port}/i/", url)  # PUBLIC_BASE_URL: what links say
    status, body, _ = fetch(url)
    assert status == 200 and body == data
    ctx.close()
