"""The admin pages in a real browser (issue 12): on an invite-only instance the first
account is the admin; it invites a second person, who registers through the link; the
admin sets their quota, disables them (their browser is signed out at the next page),
enables them, makes them a password-reset link they use, and deletes them. The audit
trail shows it all."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support.browser import log_in, new_context, register

from .conftest import _serve

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def invite_server(request, tmp_path_factory):
    """An instance with the defaults of issue 12: invitations only (REGISTRATION_OPEN unset)."""
    yield from _serve("local", request, tmp_path_factory, {"REGISTRATION_OPEN": None})


def open_admin_user(page: Page, username: str) -> None:
    page.goto("/admin/users")
    page.get_by_label("Name or email contains").fill(username)
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name=username, exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(username)


def test_an_admin_invites_manages_and_deletes_a_person(browser: Browser, invite_server):
    admin_ctx = new_context(browser, invite_server.base_url)
    admin = admin_ctx.new_page()
    admin.on("dialog", lambda d: d.accept())
    register(admin, "founder")  # the first account: no invitation needed, and it is the admin

    admin.get_by_test_id("account-menu").locator("summary").click()
    admin.get_by_test_id("admin-link").click()
    expect(admin).to_have_url(re.compile(r"/admin$"))
    expect(admin.locator('[data-figure="users"]')).to_have_text("1")

    admin.get_by_label("Uses").fill("1")
    admin.get_by_role("button", name="Create link").click()
    link = admin.get_by_test_id("new-link-url").input_value()
    assert "/register?invite=" in link
    expect(admin.get_by_test_id("invite-uses")).to_have_text("0 of 1")

    guest_ctx = new_context(browser, invite_server.base_url)
    guest = guest_ctx.new_page()
    guest.goto("/register")
    expect(guest.get_by_test_id("registration-refused")).to_contain_text("by invitation")
    guest.goto(link)
    register_through_form(guest, "guest")

    admin.reload()
    expect(admin.get_by_test_id("invite-uses")).to_have_text("1 of 1")
    expect(admin.locator("tr[data-invite-id]")).to_have_attribute("data-state", "used_up")

    open_admin_user(admin, "guest")
    admin.get_by_label("Quota in MB").fill("3")
    admin.get_by_role("button", name="Save quota").click()
    expect(admin.get_by_test_id("admin-notice")).to_have_text("Quota saved.")
    expect(admin.get_by_test_id("user-quota")).to_have_text("3.0 MiB")

    admin.get_by_test_id("disable-user").click()
    expect(admin.get_by_test_id("user-status")).to_have_text("disabled")
    guest.goto("/gallery")
    expect(guest).to_have_url(re.compile(r"/login"))  # signed out at the next page
    guest.get_by_label("Username").fill("guest")
    guest.get_by_label("Password").fill("correct horse battery")
    guest.get_by_role("button", name=re.compile("log ?in", re.I)).click()
    expect(guest.get_by_role("alert")).to_have_text("This account is disabled.")

    admin.get_by_test_id("enable-user").click()
    expect(admin.get_by_test_id("user-status")).to_have_text("active")
    admin.get_by_test_id("reset-link").click()
    reset = admin.get_by_test_id("new-link-url").input_value()
    assert "/reset/" in reset

    guest.goto(reset)
    guest.get_by_label("New password", exact=True).fill("a fresh password")
    guest.get_by_label("The same again").fill("a fresh password")
    guest.get_by_role("button", name="Set password").click()
    expect(guest.get_by_test_id("reset-done")).to_be_visible()
    log_in(guest, "guest", "a fresh password")
    guest.goto(reset)  # used: it works once
    expect(guest.get_by_test_id("reset-invalid")).to_be_visible()

    admin.get_by_test_id("delete-confirm").fill("guest")
    admin.get_by_test_id("delete-user").click()
    expect(admin).to_have_url(re.compile(r"/admin/users$"))
    expect(admin.get_by_test_id("admin-notice")).to_contain_text("guest and everything they stored were deleted")
    expect(admin.get_by_test_id("user-row")).to_have_count(1)
    assert invite_server.rows("SELECT username, role FROM users") == [("founder", "admin")]

    admin.goto("/admin")
    actions = admin.locator("table[data-testid=audit] tr[data-action]")
    expect(actions).to_have_count(6)
    assert [a for (a,) in invite_server.rows("SELECT action FROM audit_log ORDER BY at, id")] == [
        "invite",
        "quota",
        "disable",
        "enable",
        "reset_link",
        "delete",
    ]
    admin_ctx.close()
    guest_ctx.close()


def register_through_form(page: Page, username: str) -> None:
    page.get_by_label("Username").fill(username)
    page.get_by_label("Email").fill(f"{username}@example.com")
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("button", name=re.compile("register", re.I)).click()
    page.wait_for_url(re.compile(r"/gallery"))
