"""Helpers shared by the tests (no tests here, pytest collects nothing from this package):
`accounts` (browser-like login, CSRF tokens, cookies), `uploads` (test images, multipart
posts, a snapshot of everything an upload could leave behind), `browser` (Playwright
helpers for the journeys). Fixtures live in `tests/conftest.py`."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository: templates/, static/, docs/ ...
