"""Screenshots of every page at 1366 and 375 px, light and dark, saved under
test-artifacts/screens/ (ignored by git) for a person to look at; no page may ever scroll
sideways, and every image shown must have loaded."""

from __future__ import annotations

import io
import secrets
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFilter
from playwright.sync_api import Browser, Page, expect

from tests.support.browser import new_context, register

pytestmark = pytest.mark.browser
PASSWORD = "correct horse battery"
DEVICES = {
    "1366": {"viewport": {"width": 1366, "height": 860}},
    "375": {"viewport": {"width": 375, "height": 780}, "is_mobile": True, "has_touch": True, "device_scale_factor": 2},
}
# (file name, width, height, sky top, sky bottom, ground): photo-like scenes of many shapes
SCENES = [
    ("harbour-at-dusk.jpg", 900, 600, (255, 150, 90), (90, 60, 140), (30, 40, 70)),
    ("IMG_2041.jpg", 600, 750, (120, 190, 255), (220, 240, 255), (60, 120, 60)),
    ("ridge-panorama.jpg", 1200, 400, (250, 210, 150), (250, 120, 80), (70, 50, 60)),
    ("screenshot 2024-05-02 at 10.14.33.png", 800, 450, (235, 238, 245), (210, 215, 230), (120, 130, 160)),
    ("fern.jpg", 600, 600, (200, 230, 190), (90, 150, 90), (30, 70, 40)),
    ("night-market.jpg", 540, 960, (20, 25, 60), (120, 50, 120), (250, 180, 60)),
    ("desk-setup.jpg", 900, 600, (240, 230, 215), (200, 185, 165), (90, 70, 60)),
    ("snow.jpg", 800, 533, (200, 215, 235), (245, 248, 252), (225, 232, 240)),
    ("Screenshot_20240502-101433.png", 360, 780, (245, 245, 250), (225, 228, 240), (90, 110, 200)),
]


def scene(width: int, height: int, top, bottom, ground) -> Image.Image:
    sky = Image.linear_gradient("L").resize((width, height))
    img = Image.composite(Image.new("RGB", (width, height), bottom), Image.new("RGB", (width, height), top), sky)
    draw = ImageDraw.Draw(img)
    r = min(width, height) // 9
    draw.ellipse([width * 0.68 - r, height * 0.3 - r, width * 0.68 + r, height * 0.3 + r], fill=(255, 244, 214))
    draw.polygon(
        [
            (0, height),
            (0, height * 0.72),
            (width * 0.3, height * 0.5),
            (width * 0.55, height * 0.68),
            (width * 0.78, height * 0.56),
            (width, height * 0.7),
            (width, height),
        ],
        fill=ground,
    )
    return img.filter(ImageFilter.GaussianBlur(1))


def encode(img: Image.Image, name: str) -> tuple[bytes, str]:
    buf = io.BytesIO()
    if name.endswith(".png"):
        img.save(buf, "PNG", optimize=True)
        return buf.getvalue(), "image/png"
    img.save(buf, "JPEG", quality=78)
    return buf.getvalue(), "image/jpeg"


def _upload_scenes(playwright, base_url: str, username: str) -> list[dict]:
    api = playwright.request.new_context(base_url=base_url)
    token = api.post("/api/auth/login", data={"username": username, "password": PASSWORD}).json()["access_token"]
    images = []
    for name, w, h, top, bottom, ground in SCENES:
        data, mime = encode(scene(w, h, top, bottom, ground), name)
        resp = api.post(
            "/api/upload",
            headers={"Authorization": f"Bearer {token}"},
            multipart={"file": {"name": name, "mimeType": mime, "buffer": data}},
        )
        assert resp.status == 201, resp.text()
        images.append(resp.json())
    api.dispose()
    return images


def _shoot(page: Page, folder: Path, name: str) -> None:
    page.wait_for_load_state("networkidle")
    page.evaluate("window.scrollTo(0, 0)")  # a sticky header would show mid-page in a full-page shot
    broken = page.evaluate(
        "[...document.images].filter(i => i.offsetParent && i.loading !== 'lazy' && !(i.complete && i.naturalWidth)).map(i => i.src)"
    )
    assert broken == [], f"{name}: images did not load: {broken}"
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{name}: the page scrolls sideways by {overflow} px"
    size = page.viewport_size
    if size["width"] < 600:
        # Chromium drops the touch emulation (hover: none) while it takes a full-page shot
        # of a tall mobile page: grow the viewport to the page instead, then shrink it back.
        height = page.evaluate("document.documentElement.scrollHeight")
        page.set_viewport_size({"width": size["width"], "height": max(size["height"], height)})
        page.screenshot(path=str(folder / f"{name}.png"))
        page.set_viewport_size(size)
    else:
        page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("device", list(DEVICES))
def test_every_page_screenshots(browser: Browser, playwright, local_server, artifacts, scheme, device):
    folder = artifacts / "screens"
    folder.mkdir(exist_ok=True)
    tag = f"{device}-{scheme}"
    ctx = new_context(browser, local_server.base_url, color_scheme=scheme, **DEVICES[device])
    page = ctx.new_page()

    for path, name in (("/login", "login"), ("/register", "register"), ("/no/such/page", "error-404")):
        page.goto(path)
        _shoot(page, folder, f"{name}-{tag}")

    username = f"shots_{device}_{scheme}_" + secrets.token_hex(2)
    register(page, username)
    _shoot(page, folder, f"gallery-empty-{tag}")

    images = _upload_scenes(playwright, local_server.base_url, username)
    page.goto("/gallery")
    expect(page.locator("[data-testid=tile]")).to_have_count(len(SCENES))
    _shoot(page, folder, f"gallery-{tag}")

    # the tray: one upload done, one refused
    data, mime = encode(scene(640, 480, (255, 200, 150), (200, 120, 160), (60, 50, 90)), "sunset.jpg")
    page.set_input_files(
        "[data-testid=upload-input]",
        files=[
            {"name": "sunset.jpg", "mimeType": mime, "buffer": data},
            {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not an image"},
        ],
    )
    expect(
        page.get_by_test_id("upload-row").filter(has_text="sunset.jpg").get_by_test_id("upload-status")
    ).to_have_text("Uploaded")
    _shoot(page, folder, f"gallery-tray-{tag}")

    page.reload()
    first = page.locator("[data-testid=tile]").first
    if device == "1366":
        first.hover()
    first.locator("summary").click()
    expect(first.get_by_test_id("delete")).to_be_visible()
    _shoot(page, folder, f"gallery-menu-{tag}")

    image = images[0]
    page.goto(f"/images/{image['id']}")
    _shoot(page, folder, f"image-{tag}")

    page.goto("/keys")
    page.get_by_label("Name").fill("ShareX on my desktop")
    page.get_by_role("button", name="Create key").click()
    expect(page.get_by_test_id("new-key")).to_be_visible()
    _shoot(page, folder, f"keys-{tag}")

    page.goto("/integrations")
    page.get_by_test_id("flameshot-create-key").click()
    expect(page.get_by_test_id("flameshot-key")).to_be_visible()
    _shoot(page, folder, f"integrations-{tag}")

    page.goto(image["deletion_url"])
    _shoot(page, folder, f"deletion-{tag}")
    page.get_by_test_id("confirm-delete").click()
    expect(page.locator("h1")).to_have_text("Deleted")
    _shoot(page, folder, f"deleted-{tag}")

    page.goto(image["public_url"].replace(image["public_url"].rsplit("/", 1)[1], "A" * 22 + ".png"))
    _shoot(page, folder, f"image-404-{tag}")
    ctx.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_gallery_with_a_quota_shows_the_storage_meter(browser: Browser, quota_server, artifacts, scheme):
    folder = artifacts / "screens"
    folder.mkdir(exist_ok=True)
    ctx = new_context(browser, quota_server.base_url, color_scheme=scheme, **DEVICES["1366"])
    page = ctx.new_page()
    username = f"meter_{scheme}_" + secrets.token_hex(2)
    register(page, username)
    data, mime = encode(scene(300, 200, (120, 190, 255), (220, 240, 255), (60, 120, 60)), "meadow.jpg")
    page.set_input_files("[data-testid=upload-input]", files=[{"name": "meadow.jpg", "mimeType": mime, "buffer": data}])
    expect(page.locator("[data-testid=tile]")).to_have_count(1)
    meter = page.locator("[data-meter]")
    expect(meter).to_have_js_property("value", len(data))
    page.reload()
    _shoot(page, folder, f"gallery-quota-1366-{scheme}")
    ctx.close()
