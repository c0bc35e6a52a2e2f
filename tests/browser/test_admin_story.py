"""Issue 12's whole story in a real browser, on a server in invite mode: the first account
becomes the admin and invites a second person, who registers through the link; the admin
sets their quota; they turn on two-factor sign-in (the key read off the page, the code
computed as an authenticator app would) and sign in with a code; the admin disables them
(their API key stops at once), enables them, and finally deletes them (their images gone
from the database and from storage)."""

from __future__ import annotations

import json
import re
import secrets
import time

import pyotp
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support.browser import fetch, log_out, new_context, png_bytes, register

from .conftest import _serve

pytestmark = pytest.mark.browser
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def invite_server(request, tmp_path_factory):
    """A server as production starts it: invitations only, after the first account."""
    yield from _serve("local", request, tmp_path_factory, {"REGISTRATION_OPEN": None, "REGISTRATION_MODE": "invite"})


def _me(base_url: str, api_key: str) -> tuple[int, str]:
    status, body, _ = fetch(base_url + "/api/auth/me", {"Authorization": f"Bearer {api_key}"})
    return status, json.loads(body).get("code", "") if status != 200 else ""


def _admin_user_page(page: Page, username: str) -> None:
    page.goto("/admin/users")
    page.get_by_role("link", name=username, exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(username)


def test_admin_invites_sets_quota_disables_enables_and_deletes_a_person_with_two_factor(
    browser: Browser, invite_server
):
    base = invite_server.base_url

    # 1. The first account on the empty instance is its admin.
    admin_ctx = new_context(browser, base)
    admin = admin_ctx.new_page()
    admin_name = "admin_" + secrets.token_hex(3)
    register(admin, admin_name, PASSWORD)
    admin.get_by_test_id("account-menu").locator("summary").click()
    admin.get_by_test_id("admin-link").click()
    admin.wait_for_url(re.compile(r"/admin$"))

    # A second person cannot register without a link.
    bob_ctx = new_context(browser, base)
    bob = bob_ctx.new_page()
    assert bob.goto("/register").status == 403

    # 2. The admin makes an invitation link; Bob registers through it.
    admin.get_by_test_id("invite-form").get_by_role("button", name="Create link").click()
    invite_url = admin.get_by_test_id("new-link-url").input_value()
    assert invite_url.startswith(base)
    bob_name = "bob_" + secrets.token_hex(3)
    bob.goto(invite_url)
    bob.get_by_label("Username").fill(bob_name)
    bob.get_by_label("Email").fill(f"{bob_name}@example.com")
    bob.get_by_label("Password").fill(PASSWORD)
    bob.get_by_role("button", name=re.compile("register|create", re.I)).click()
    bob.wait_for_url(re.compile(r"/gallery"))
    admin.reload()
    expect(admin.get_by_test_id("invite-uses").first).to_have_text("1 of 1")

    # Bob uploads an image and makes an API key for a screenshot tool.
    bob.set_input_files(
        "[data-testid=upload-input]", files=[{"name": "bob.png", "mimeType": "image/png", "buffer": png_bytes(30)}]
    )
    expect(bob.locator("[data-testid=tile]")).to_have_count(1)
    image_url = bob.locator("[data-testid=tile]").first.get_attribute("data-url")
    bob.goto("/keys")
    bob.get_by_label("Name").fill("ShareX")
    bob.get_by_role("button", name="Create key").click()
    api_key = bob.get_by_test_id("new-key-secret").input_value()
    assert _me(base, api_key) == (200, "")

    # 3. The admin sets Bob's quota.
    _admin_user_page(admin, bob_name)
    admin.get_by_test_id("quota-input").fill("5")
    admin.get_by_role("button", name="Save quota").click()
    expect(admin.get_by_test_id("user-quota")).to_have_text(re.compile(r"^5(\.0)? Mi?B"))
    (quota,) = invite_server.rows("SELECT quota_bytes FROM users WHERE username = ?", bob_name)[0]
    assert quota == 5 * 1024 * 1024

    # 4. Bob turns on two-factor sign-in, reading the key off the page like a person
    # typing it into an authenticator app, and signs in again with a code.
    bob.goto("/account")
    section = bob.get_by_test_id("two-factor")
    section.get_by_label("Password").fill(PASSWORD)
    section.get_by_role("button", name="Set up two-factor sign-in").click()
    expect(bob.get_by_role("img", name=re.compile("QR code"))).to_be_visible()
    secret = bob.get_by_test_id("totp-secret").inner_text().replace(" ", "")
    totp = pyotp.TOTP(secret)
    bob.get_by_label("Code from your app").fill(totp.now())
    bob.get_by_role("button", name="Turn on").click()
    expect(bob.get_by_test_id("account-notice")).to_have_text("Two-factor sign-in is on.")
    expect(bob.get_by_test_id("recovery-codes").locator("code")).to_have_count(10)
    log_out(bob)
    bob.goto("/login")
    bob.get_by_label("Username").fill(bob_name)
    bob.get_by_label("Password").fill(PASSWORD)
    bob.get_by_role("button", name=re.compile("log ?in", re.I)).click()
    bob.wait_for_url(re.compile(r"/login/otp$"))
    # The confirming code's step is spent: the app's next code (accepted one step early).
    bob.get_by_label("Code", exact=True).fill(totp.at(time.time() + 30))
    bob.get_by_role("button", name="Verify").click()
    bob.wait_for_url(re.compile(r"/gallery"))
    expect(bob.locator("[data-testid=tile]")).to_have_count(1)

    # 5. The admin disables Bob: his API key is refused at once, and so is his session.
    _admin_user_page(admin, bob_name)
    admin.once("dialog", lambda d: d.accept())
    admin.get_by_test_id("disable-user").click()
    expect(admin.get_by_test_id("user-status")).to_have_text("disabled")
    assert _me(base, api_key) == (401, "account_disabled")
    bob.goto("/gallery")
    bob.wait_for_url(re.compile(r"/login"))
    assert fetch(image_url)[0] == 200  # his images stay served

    # 6. Enabled again: the key works again.
    admin.get_by_test_id("enable-user").click()
    expect(admin.get_by_test_id("user-status")).to_have_text("active")
    assert _me(base, api_key) == (200, "")

    # 7. Deleted: the account, its image rows and its objects are gone.
    (bob_id,) = invite_server.rows("SELECT id FROM users WHERE username = ?", bob_name)[0]
    rows = invite_server.rows("SELECT storage_key, thumb_key, display_key FROM images WHERE owner_id = ?", bob_id)
    keys = {k for row in rows for k in row if k}
    assert keys and keys <= invite_server.objects()
    admin.get_by_test_id("delete-confirm").fill(bob_name)
    admin.get_by_test_id("delete-user").click()
    admin.wait_for_url(re.compile(r"/admin/users"))
    assert invite_server.rows("SELECT id FROM users WHERE username = ?", bob_name) == []
    assert invite_server.rows("SELECT count(*) FROM images WHERE owner_id = ?", bob_id) == [(0,)]
    assert invite_server.objects() == set()  # only Bob ever uploaded
    assert fetch(image_url)[0] == 404
    assert _me(base, api_key)[0] == 401
    # The admin is untouched.
    admin.goto("/gallery")
    expect(admin.get_by_test_id("account-menu")).to_be_visible()
