"""Account settings in a real browser (issue 12, part 5): from the account menu to the
account page, two-factor sign-in turned on with the QR code the server drew (no CSP
violation) and the key read off the page, signing in with a code, changing the password,
and deleting the account with its images."""

from __future__ import annotations

import re
import secrets

import pyotp
import pytest
from playwright.sync_api import Browser, expect

from tests.support.browser import fetch, log_out, new_context, png_bytes, register

pytestmark = pytest.mark.browser

WATCH = """
window.__problems = [];
document.addEventListener('securitypolicyviolation',
  (e) => window.__problems.push(`csp ${e.violatedDirective} ${e.blockedURI}`));
"""


def test_two_factor_password_change_and_deleting_the_account(browser: Browser, local_server):
    # The instance's first account is its admin (and the last admin cannot delete itself).
    admin_ctx = new_context(browser, local_server.base_url)
    register(admin_ctx.new_page(), "settings_admin_" + secrets.token_hex(3))
    admin_ctx.close()
    ctx = new_context(browser, local_server.base_url)
    ctx.add_init_script(WATCH)
    page = ctx.new_page()
    username = "settings_" + secrets.token_hex(3)
    password = "correct horse battery"
    register(page, username, password)
    page.set_input_files(
        "[data-testid=upload-input]", files=[{"name": "mine.png", "mimeType": "image/png", "buffer": png_bytes(24)}]
    )
    tile = page.locator("[data-testid=tile]")
    expect(tile).to_have_count(1)
    image_url = tile.first.get_attribute("data-url")

    # The account menu leads to the settings.
    page.get_by_test_id("account-menu").locator("summary").click()
    page.get_by_test_id("account-link").click()
    page.wait_for_url(re.compile(r"/account$"))
    # The embed settings (issue 13) are one link away.
    expect(page.get_by_role("link", name="Sharing and embeds")).to_have_attribute("href", "/account/sharing")

    # Two-factor: the password, then the QR code and the key, then a code from the app.
    section = page.get_by_test_id("two-factor")
    section.get_by_label("Password").fill(password)
    section.get_by_role("button", name="Set up two-factor sign-in").click()
    qr = page.get_by_role("img", name=re.compile("QR code"))
    expect(qr).to_be_visible()
    assert qr.get_attribute("src").startswith("data:image/svg+xml")
    assert qr.evaluate("img => img.complete && img.naturalWidth > 0")
    secret = page.get_by_test_id("totp-secret").inner_text().replace(" ", "")
    page.get_by_label("Code from your app").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Turn on").click()
    expect(page.get_by_test_id("account-notice")).to_have_text("Two-factor sign-in is on.")
    codes = page.get_by_test_id("recovery-codes").locator("code").all_inner_texts()
    assert len(codes) == 10
    page.reload()
    expect(page.get_by_test_id("recovery-codes")).to_have_count(0)  # shown once

    # Signing in now asks for a code after the password; a recovery code works once.
    log_out(page)
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name=re.compile("log ?in", re.I)).click()
    page.wait_for_url(re.compile(r"/login/otp$"))
    page.get_by_label("Code", exact=True).fill(codes[0])
    page.get_by_role("button", name="Verify").click()
    page.wait_for_url(re.compile(r"/gallery"))

    # A new password: this browser stays signed in; the page says API keys stay.
    page.goto("/account")
    page.get_by_label("Current password").fill(password)
    page.get_by_label("New password").fill("another good passphrase")
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_test_id("account-notice")).to_contain_text("API keys still work")
    page.goto("/gallery")
    expect(page.locator("[data-testid=tile]")).to_have_count(1)

    # Deleting the account: the wrong password changes nothing, the right one removes all.
    page.goto("/account")
    page.once("dialog", lambda d: d.accept())
    page.locator("#delete-password").fill("not my password")
    page.get_by_role("button", name="Delete my account").click()
    expect(page.get_by_test_id("delete-error")).to_contain_text("current password is wrong")
    assert fetch(image_url)[0] == 200
    page.once("dialog", lambda d: d.accept())
    page.locator("#delete-password").fill("another good passphrase")
    page.get_by_role("button", name="Delete my account").click()
    page.wait_for_url(re.compile(r"/(login)?$"))
    assert local_server.rows("SELECT id FROM users WHERE username = ?", username) == []
    assert local_server.rows("SELECT count(*) FROM images") == [(0,)]
    assert local_server.objects() == set()
    assert fetch(image_url)[0] == 404
    assert page.evaluate("window.__problems") == []
