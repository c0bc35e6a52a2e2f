"""Playwright helpers shared by the browser journeys (tests/browser): test images, a
browser context with clipboard access, register / log in / log out through the pages, a
real drop or paste of a file, and a plain HTTP fetch."""

from __future__ import annotations

import base64
import io
import os
import re
import urllib.error
import urllib.request
from typing import Any

from PIL import Image
from playwright.sync_api import Browser, BrowserContext, Page


def png_bytes(size: int = 64, noise: bool = False) -> bytes:
    if noise:
        img = Image.frombytes("RGB", (size, size), os.urandom(size * size * 3))
    else:
        img = Image.new("RGB", (size, size), (30, 120, 200))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def new_context(browser: Browser, base_url: str, **kwargs) -> BrowserContext:
    ctx = browser.new_context(base_url=base_url, **kwargs)
    if kwargs.get("java_script_enabled", True):
        ctx.grant_permissions(["clipboard-read", "clipboard-write"], origin=base_url)
    return ctx


def register(page: Page, username: str, password: str = "correct horse battery") -> None:
    page.goto("/register")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Email").fill(f"{username}@example.com")
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name=re.compile("register|create", re.I)).click()
    page.wait_for_url(re.compile(r"/gallery"))


def log_out(page: Page) -> None:
    """Log out from the account menu in the header."""
    page.get_by_test_id("account-menu").locator("summary").click()
    page.get_by_role("button", name=re.compile("log ?out", re.I)).click()
    page.wait_for_url(re.compile(r"/(login)?(\?.*)?$"))


def log_in(page: Page, username: str, password: str = "correct horse battery") -> None:
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name=re.compile("log ?in", re.I)).click()
    page.wait_for_url(re.compile(r"/gallery"))


def dispatch_files(page: Page, kind: str, data: bytes, name: str) -> None:
    """A real DataTransfer holding a File, delivered as a drop or a paste."""
    page.evaluate(
        """([kind, b64, name]) => {
            const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], name, {type: 'image/png'}));
            if (kind === 'drop') {
                for (const type of ['dragenter', 'dragover', 'drop']) {
                    const event = new DragEvent(type, {dataTransfer: dt, bubbles: true, cancelable: true});
                    document.body.dispatchEvent(event);
                }
            } else {
                const event = new ClipboardEvent('paste', {clipboardData: dt, bubbles: true, cancelable: true});
                document.dispatchEvent(event);
            }
        }""",
        [kind, base64.b64encode(data).decode(), name],
    )


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, Any]:
    """Status, body and (case-insensitive) headers; an error status is an answer too."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as resp:
            return resp.status, resp.read(), resp.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers
