"""Embed settings and the default expiry: `GET/PATCH /api/account/preferences` and the
`/account/sharing` form. Invalid input is 422 naming the field, and nothing changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from imagehost.sharing.service import fill_title
from imagehost.web.timeleft import time_left
from tests.support.accounts import ACCOUNT_TIERS, csrf_of, logged_in_token, page_token

pytestmark = pytest.mark.tiers(*ACCOUNT_TIERS)

DEFAULTS = {
    "embed_title": None,
    "embed_description": None,
    "embed_site_name": None,
    "embed_color": None,
    "default_expiry_seconds": None,
}
PREFS = "/api/account/preferences"


async def _prefs(client, user) -> dict:
    resp = await client.get(PREFS, headers=user.auth)
    assert resp.status == 200
    return await resp.json()


async def test_preferences_start_empty_and_change_field_by_field(client, backend, make_user):
    user = await make_user()
    other = await make_user()
    assert await _prefs(client, user) == DEFAULTS
    resp = await client.patch(
        PREFS,
        headers=user.auth,
        json={"embed_title": "  {filename} by {username}  ", "embed_color": "#FF8800", "default_expiry_seconds": 3600},
    )
    assert resp.status == 200
    changed = {
        **DEFAULTS,
        "embed_title": "{filename} by {username}",
        "embed_color": "#ff8800",
        "default_expiry_seconds": 3600,
    }
    assert await resp.json() == changed == await _prefs(client, user)
    # a second PATCH changes only what it names; null and "" go back to the default
    resp = await client.patch(PREFS, headers=user.auth, json={"embed_color": None, "embed_title": ""})
    assert await resp.json() == {**changed, "embed_color": None, "embed_title": None}
    assert await _prefs(client, other) == DEFAULTS  # someone else's are untouched


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"embed_color": "red"}, "embed_color"),
        ({"embed_color": "#12345g"}, "embed_color"),
        ({"embed_color": "#fff"}, "embed_color"),
        ({"embed_color": "#ffffff;x"}, "embed_color"),
        ({"embed_title": "x" * 201}, "embed_title"),
        ({"embed_title": "a\nb"}, "embed_title"),
        ({"embed_title": "a\u202eb"}, "embed_title"),
        ({"embed_title": 7}, "embed_title"),
        ({"embed_site_name": "\x00"}, "embed_site_name"),
        ({"embed_description": "x" * 501}, "embed_description"),
        ({"default_expiry_seconds": 5}, "default_expiry_seconds"),
        ({"default_expiry_seconds": 10**9}, "default_expiry_seconds"),
        ({"default_expiry_seconds": "1h"}, "default_expiry_seconds"),
        ({"default_expiry_seconds": True}, "default_expiry_seconds"),
        ({"owner_id": "someone"}, "owner_id"),
        # one bad field among good ones: nothing at all changes
        ({"embed_title": "fine", "embed_site_name": "fine", "embed_color": "blue"}, "embed_color"),
    ],
)
async def test_invalid_preferences_are_refused_and_nothing_changes(client, backend, make_user, body, field):
    user = await make_user()
    await client.patch(PREFS, headers=user.auth, json={"embed_title": "before", "embed_color": "#000000"})
    before = await _prefs(client, user)
    resp = await client.patch(PREFS, headers=user.auth, json=body)
    answer = await resp.json()
    assert resp.status == 422, answer
    assert answer["code"] == "invalid_input" and answer["detail"]["field"] == field
    assert await _prefs(client, user) == before


async def test_preferences_need_a_caller_and_csrf_with_a_cookie(client, backend, make_user):
    user = await make_user()
    assert (await client.get(PREFS)).status == 401
    assert (await client.patch(PREFS, json={"embed_title": "x"})).status == 401
    token = await logged_in_token(client, user)
    refused = await client.patch(PREFS, json={"embed_title": "no token"})
    assert refused.status == 403 and (await refused.json())["code"] == "csrf_failed"
    assert await _prefs(client, user) == DEFAULTS
    ok = await client.patch(PREFS, json={"embed_title": "with token"}, headers={"X-CSRF-Token": token})
    assert ok.status == 200 and (await _prefs(client, user))["embed_title"] == "with token"


async def test_the_sharing_page_saves_the_form_without_javascript(client, backend, make_user):
    user = await make_user()
    assert (await client.get("/account/sharing", allow_redirects=False)).status == 303  # to the login page
    await logged_in_token(client, user)
    token = await page_token(client, "/account/sharing")
    form = {
        "csrf_token": token,
        "embed_title": "{filename} ({width}×{height})",
        "embed_description": "Line one\nline two",
        "embed_site_name": "Alice's shots",
        "embed_color": "#00aa55",
        "default_expiry_seconds": "604800",
    }
    resp = await client.post("/account/sharing", data=form, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/account/sharing"
    assert await _prefs(client, user) == {
        "embed_title": "{filename} ({width}×{height})",
        "embed_description": "Line one\nline two",
        "embed_site_name": "Alice's shots",
        "embed_color": "#00aa55",
        "default_expiry_seconds": 604800,
    }
    page = await (await client.get("/account/sharing")).text()
    assert "Saved." in page and 'value="#00aa55"' in page and '<option value="604800" selected>' in page
    # emptied fields go back to the defaults
    cleared = dict.fromkeys(form, "") | {"csrf_token": csrf_of(page)}
    assert (await client.post("/account/sharing", data=cleared, allow_redirects=False)).status == 303
    assert await _prefs(client, user) == DEFAULTS


@pytest.mark.parametrize(
    ("field", "value"),
    [("embed_color", '"><script>alert(1)</script>'), ("default_expiry_seconds", "1h"), ("default_expiry_seconds", "1")],
)
async def test_the_sharing_page_shows_an_invalid_field_again_and_changes_nothing(
    client, backend, make_user, field, value
):
    user = await make_user()
    await logged_in_token(client, user)
    token = await page_token(client, "/account/sharing")
    form = {"csrf_token": token, "embed_title": "kept?", field: value}
    resp = await client.post("/account/sharing", data=form, allow_redirects=False)
    page = await resp.text()
    assert resp.status == 422
    assert 'role="alert"' in page and 'aria-invalid="true"' in page
    assert "<script>alert(1)</script>" not in page  # the typed value comes back escaped
    assert await _prefs(client, user) == DEFAULTS
    # without the CSRF token: refused, nothing changed
    resp = await client.post("/account/sharing", data={"embed_title": "x"}, allow_redirects=False)
    assert resp.status == 403
    assert await _prefs(client, user) == DEFAULTS


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{filename}", "a.png"),
        ("{filename} by {username} ({width}×{height}, {size}, {date})", "a.png by bob (640×480, 1.2 kB, 2025-01-31)"),
        ("{filename.__class__}", "{filename.__class__}"),
        ("{filename!r}{filename:>10}", "{filename!r}{filename:>10}"),
        ("{{7*7}} {{filename}}", "{{7*7}} {a.png}"),
        ("{0} {} {unknown} {__import__}", "{0} {} {unknown} {__import__}"),
        ("%s %(filename)s ${filename}", "%s %(filename)s $a.png"),
    ],
)
def test_the_title_template_knows_six_variables_and_nothing_else(template, expected):
    values = {"filename": "a.png", "username": "bob", "size": "1.2 kB", "width": "640", "height": "480"}
    assert fill_title(template, values | {"date": "2025-01-31"}) == expected


def test_values_are_never_expanded_again():
    values = dict.fromkeys(("username", "size", "width", "height", "date"), "x")
    assert fill_title("{filename}", values | {"filename": "{username}.png"}) == "{username}.png"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "Expired"),
        (0, "Expired"),
        (1, "1 min left"),
        (600, "10 min left"),
        (3599, "60 min left"),
        (3600, "1 h left"),
        (86400, "24 h left"),
        (2 * 86400 - 1, "47 h left"),
        (2 * 86400, "2 d left"),
        (30 * 86400, "30 d left"),
    ],
)
def test_time_left_reads_like_the_gallery_says_it(seconds, text):
    now = datetime(2025, 1, 31, 12, 0, tzinfo=UTC)
    end = (now + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert time_left(end, now) == text
