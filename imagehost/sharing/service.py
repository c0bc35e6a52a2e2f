"""Sharing use cases: the share page's content and its link previews (OpenGraph, oEmbed),
and each user's embed settings and default expiry.

An embed title is a template with exactly six variables, `{filename}`, `{username}`,
`{size}`, `{width}`, `{height}` and `{date}`, filled in by one regular-expression pass
(`fill_title`): nothing else in braces means anything (`{filename.__class__}` and
`{{7*7}}` stay as they are written), the substituted values are never scanned again, and
the result is plain text, escaped where it is used (Jinja's autoescape in the page and
its meta tags, `json_text` in the oEmbed answer). `str.format` is never applied to what
a user wrote.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from jinja2.filters import do_filesizeformat

from ..db import json_time, transaction, utcnow
from ..env import Env
from ..errors import AppError, NotFound, Unprocessable
from ..images import service as images
from ..images.store import DERIVATIVE_TYPE
from . import store
from .store import Preferences, Shared

PREFERENCE_FIELDS = store.PREFERENCE_FIELDS  # the settings' names (the form's fields too)

SITE_NAME = "imagehost"  # the default site name (the pages' own, web/context.py)
DEFAULT_TITLE = "{filename}"
DEFAULT_COLOR = "#3a5bd9"  # the brand colour (base.html's theme-color)
TITLE_MAX, DESCRIPTION_MAX, SITE_NAME_MAX = 200, 500, 100
VARIABLES = ("filename", "username", "size", "width", "height", "date")
_VARIABLE = re.compile(r"\{(" + "|".join(VARIABLES) + r")\}")
_COLOR = re.compile(r"#[0-9a-fA-F]{6}")
# The expiries the browser uploader offers (seconds; None: never), within the server's limits.
EXPIRY_CHOICES: tuple[tuple[int | None, str], ...] = (
    (None, "Never"),
    (600, "10 minutes"),
    (3600, "1 hour"),
    (86400, "1 day"),
    (7 * 86400, "7 days"),
    (30 * 86400, "30 days"),
)


# --------------------------------------------------------------------------- settings


def fill_title(template: str, values: dict[str, str]) -> str:
    """The template with each of the six variables replaced by its value, in one pass."""
    return _VARIABLE.sub(lambda m: values[m[1]], template)


def _text(field: str, value: object, limit: int, *, newlines: bool = False) -> str | None:
    """A text setting: None or "" clears it (the default applies); otherwise a string of
    at most `limit` characters without control or format characters (line breaks allowed
    where `newlines`)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise Unprocessable(f"{field} must be a string or null", {"field": field})
    text = value.replace("\r\n", "\n").strip()
    if not text:
        return None
    allowed = "\n" if newlines else ""
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs") and c not in allowed for c in text):
        raise Unprocessable(f"{field} must not contain control characters", {"field": field})
    if len(text) > limit:
        raise Unprocessable(f"{field} is longer than {limit} characters", {"field": field, "max_length": limit})
    return text


def _color(value: object) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _COLOR.fullmatch(value):
        raise Unprocessable("embed_color must be a colour as #rrggbb", {"field": "embed_color"})
    return value.lower()


def _expiry(env: Env, value: object) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise Unprocessable("default_expiry_seconds must be an integer or null", {"field": "default_expiry_seconds"})
    try:
        return images.parse_expiry(env, value)
    except Unprocessable as exc:
        raise Unprocessable(
            "default_expiry_seconds is out of range", {**exc.detail, "field": "default_expiry_seconds"}
        ) from None


def clean_preferences(env: Env, body: dict[str, Any]) -> dict[str, Any]:
    """The fields of a PATCH, checked: unknown fields and any invalid value are 422
    `invalid_input` naming the field (then nothing is changed)."""
    unknown = sorted(set(body) - set(PREFERENCE_FIELDS))
    if unknown:
        raise Unprocessable(f"unknown field: {unknown[0]}", {"field": unknown[0]})
    cleaners: dict[str, Callable[[object], str | int | None]] = {
        "embed_title": lambda v: _text("embed_title", v, TITLE_MAX),
        "embed_description": lambda v: _text("embed_description", v, DESCRIPTION_MAX, newlines=True),
        "embed_site_name": lambda v: _text("embed_site_name", v, SITE_NAME_MAX),
        "embed_color": _color,
        "default_expiry_seconds": lambda v: _expiry(env, v),
    }
    return {name: cleaners[name](value) for name, value in body.items()}


async def preferences(env: Env, user_id: str) -> Preferences:
    async with env.engine.connect() as conn:
        prefs = await store.get_preferences(conn, user_id)
    if prefs is None:
        raise NotFound("user not found")
    return prefs


async def update_preferences(env: Env, user_id: str, body: dict[str, Any]) -> Preferences:
    """Change the given settings (all checked first: one bad field changes nothing)."""
    values = clean_preferences(env, body)
    async with transaction(env.engine) as conn:
        await store.set_preferences(conn, user_id, values)
        prefs = await store.get_preferences(conn, user_id)
    if prefs is None:
        raise NotFound("user not found")
    return prefs


def expiry_choices(env: Env, default: int | None) -> list[tuple[int | None, str]]:
    """The uploader's choices within the server's limits, with the user's default among
    them (it may be any allowed number of seconds, set through the API; one the limits no
    longer allow is left out, and the picker starts at "Never")."""
    s = env.settings
    low, high = s.expiry_min_seconds, s.expiry_max_seconds
    choices = [(v, label) for v, label in EXPIRY_CHOICES if v is None or low <= v <= high]
    if default is not None and low <= default <= high and default not in {v for v, _ in choices}:
        choices.append((default, duration(default)))
        choices.sort(key=lambda c: -1 if c[0] is None else c[0])
    return choices


def duration(seconds: int) -> str:
    for unit, name in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds % unit == 0:
            n = seconds // unit
            return f"{n} {name}{'' if n == 1 else 's'}"
    return f"{seconds} seconds"


# --------------------------------------------------------------------------- the share page


@dataclass(frozen=True)
class Embed:
    """What a share page and its previews say about one image; all plain text (escape
    where used)."""

    id: str
    page_url: str
    filename: str
    username: str
    title: str
    description: str
    site_name: str
    color: str
    image_url: str  # og:image: the display size, or the original while there is none
    image_width: int | None
    image_height: int | None
    image_type: str
    public_url: str  # the original
    width: int | None
    height: int | None
    size_bytes: int
    content_type: str
    created_at: str
    expires_at: str | None
    oembed_url: str

    def link_image(self) -> dict[str, Any]:
        """The fields the link snippets (templates/_links.html) need: nothing else."""
        return {
            "public_url": self.public_url,
            "page_url": self.page_url,
            "filename": self.filename,
            "width": self.width,
            "height": self.height,
        }


async def shared_image(env: Env, image_id: str) -> Embed:
    """The image behind `/v/<id>`: active and not expired, or 404 (unknown, pending,
    deleted and expired images alike)."""
    async with env.engine.connect() as conn:
        shared = await store.get_shared(conn, image_id)
    if shared is None or shared.image.expired(utcnow()):
        raise NotFound("image not found")
    return embed(env, shared)


def embed(env: Env, shared: Shared) -> Embed:
    row, prefs = shared.image, shared.prefs
    public = env.storage.public_url
    iw: int | None
    ih: int | None
    if shared.display_size is not None and row.display_key:
        image_url, (iw, ih), itype = public(row.display_key), shared.display_size, DERIVATIVE_TYPE
    else:
        image_url, iw, ih, itype = public(row.storage_key), row.width, row.height, row.content_type
    size = do_filesizeformat(row.size_bytes)
    values = {
        "filename": row.filename,
        "username": shared.username,
        "size": size,
        "width": str(row.width or ""),
        "height": str(row.height or ""),
        "date": f"{row.created_at:%Y-%m-%d}",
    }
    dims = f"{row.width} × {row.height} · " if row.width and row.height else ""
    page_url = env.url("share", id=row.id)
    return Embed(
        id=row.id,
        page_url=page_url,
        filename=row.filename,
        username=shared.username,
        title=fill_title(prefs.embed_title or DEFAULT_TITLE, values),
        description=prefs.embed_description or f"{dims}{size} · shared by {shared.username}",
        site_name=prefs.embed_site_name or SITE_NAME,
        color=prefs.embed_color or DEFAULT_COLOR,
        image_url=image_url,
        image_width=iw,
        image_height=ih,
        image_type=itype,
        public_url=public(row.storage_key),
        width=row.width,
        height=row.height,
        size_bytes=row.size_bytes,
        content_type=row.content_type,
        created_at=json_time(row.created_at),
        expires_at=json_time(row.expires_at) if row.expires_at else None,
        oembed_url=env.url("api.oembed") + "?" + urlencode({"url": page_url, "format": "json"}),
    )


# --------------------------------------------------------------------------- oEmbed


class UnsupportedFormat(AppError):
    """oEmbed's spec answers 501 here; this server answers 400, as for any other bad query
    parameter (a 5xx would say the server failed, and monitors and the API fuzzing treat
    it so)."""

    status, code, message = 400, "unsupported_format", "only format=json is served"


def share_id(env: Env, url: object) -> str:
    """The image id of a share-page URL of this server; 404 for anything else (another
    host, another path, a URL with a query or fragment)."""
    if not isinstance(url, str) or not url:
        raise Unprocessable("url is required", {"field": "url"})
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        raise NotFound("not a share page of this server") from None
    image_id = parts.path.rsplit("/", 1)[-1]
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", image_id):
        raise NotFound("not a share page of this server")
    expected = urlsplit(env.url("share", id=image_id))
    same = (parts.scheme.lower(), parts.netloc.lower(), parts.path) == (
        expected.scheme.lower(),
        expected.netloc.lower(),
        expected.path,
    )
    if not same or parts.query or parts.fragment:
        raise NotFound("not a share page of this server")
    return image_id


async def oembed(env: Env, url: object, fmt: object) -> dict[str, Any]:
    """The oEmbed answer (type `photo`) for a share page of this server."""
    if fmt not in (None, "", "json"):
        raise UnsupportedFormat(detail={"field": "format", "supported": ["json"]})
    e = await shared_image(env, share_id(env, url))
    return {
        "version": "1.0",
        "type": "photo",
        "url": e.image_url,
        "width": e.image_width,
        "height": e.image_height,
        "title": e.title,
        "author_name": e.username,
        "provider_name": e.site_name,
        "provider_url": env.settings.public_base_url.rstrip("/") + "/",
    }


def json_text(data: Any) -> str:
    """JSON with `<`, `>`, `&` and the line separators as \\u escapes: the same data once
    parsed, but nothing in the text that HTML (or a JavaScript string) would act on if a
    consumer put it in a page unescaped."""
    text = json.dumps(data, ensure_ascii=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text
