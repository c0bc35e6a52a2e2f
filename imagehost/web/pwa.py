"""The installable app: the web app manifest, the service worker, and the share target.

- `GET /manifest.webmanifest`: name, icons, `display: standalone`, the gallery as start
  page, and a Web Share Target — on Android, sharing photos from any app to the installed
  imagehost POSTs them (multipart, field `file`) to `/share`.
- `GET /sw.js`: `static/sw.js`, served from the site root so its scope is the whole site,
  with the route paths and the assets' version prepended. It caches static assets only,
  and receives the share POST itself: it hands the files to the gallery, which shows them
  and uploads nothing until the person says so.
- `POST /share` reaches the server only when no service worker took it (not installed,
  or cleared). It never reads the body and never uploads: it sends the browser to the
  gallery, which says the files did not arrive. So a cross-site POST can never upload
  anything, whatever cookies it carries; the path is CSRF-exempt because it acts on nothing.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from aiohttp import web
from loguru import logger

from ..typedefs import ASSETS
from .context import url

NAME = "imagehost"
THEME_COLOR = "#3a5bd9"
BACKGROUND_COLOR = "#f6f6f8"
ICONS = (
    ("icons/icon-192.png", "192x192", "any"),
    ("icons/icon-512.png", "512x512", "any"),
    ("icons/icon-maskable-512.png", "512x512", "maskable"),
)
SHARE_FIELD = "file"  # the multipart field the share target puts the files in
NO_CACHE = {"Cache-Control": "no-cache"}


def manifest_json(request: web.Request) -> dict[str, Any]:
    assets = request.app[ASSETS]
    start = url(request, "gallery")
    return {
        "id": start,
        "name": NAME,
        "short_name": NAME,
        "description": "Your own image host: upload, share and manage your images.",
        "start_url": start,
        "scope": "/",
        "display": "standalone",
        "theme_color": THEME_COLOR,
        "background_color": BACKGROUND_COLOR,
        "icons": [
            {"src": assets.url(name), "sizes": sizes, "type": "image/png", "purpose": purpose}
            for name, sizes, purpose in ICONS
        ],
        "share_target": {
            "action": url(request, "share_target"),
            "method": "POST",
            "enctype": "multipart/form-data",
            "params": {"files": [{"name": SHARE_FIELD, "accept": ["image/*"]}]},
        },
    }


async def manifest(request: web.Request) -> web.Response:
    return web.Response(
        text=json.dumps(manifest_json(request), indent=2),
        content_type="application/manifest+json",
        headers=NO_CACHE,
    )


async def service_worker(request: web.Request) -> web.Response:
    """`static/sw.js` at the root, so it controls every page; its first line tells it the
    paths it needs (from the route table) and the assets' version, so a new release
    changes its bytes and the browser installs it again."""
    assets = request.app[ASSETS]
    version = hashlib.sha256("".join(sorted(assets.hashes.values())).encode()).hexdigest()[:12]
    config = {"share": url(request, "share_target"), "gallery": url(request, "gallery"), "version": version}
    body = f"self.IMAGEHOST = {json.dumps(config)};\n" + (assets.root / "sw.js").read_text()
    return web.Response(
        text=body,
        content_type="text/javascript",
        headers={**NO_CACHE, "Service-Worker-Allowed": "/"},
    )


async def share_target(request: web.Request) -> web.Response:
    """POST /share without a service worker to take it: read nothing, upload nothing, and
    send the browser (GET, so a reload repeats nothing) to the gallery, which says so."""
    logger.info(
        "share target reached the server, not the service worker (Sec-Fetch-Site: {}); nothing stored",
        request.headers.get("Sec-Fetch-Site", "-")[:20],
    )
    raise web.HTTPSeeOther(url(request, "gallery") + "?shared=lost")
