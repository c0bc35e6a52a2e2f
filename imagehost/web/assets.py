"""Static assets: hashed once at start, served with long cache lifetimes.

`static_url('app.css')` gives `/static/app.css?v=<hash>`; the hash changes whenever the
file does, so the file can be cached for a year.
"""

from __future__ import annotations

import hashlib
import mimetypes
from pathlib import Path

from aiohttp import web

from ..typedefs import ASSETS

ROOT = Path(__file__).resolve().parent.parent.parent
STATIC_DIR = ROOT / "static"
TEMPLATES_DIR = ROOT / "templates"
_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain",
    ".webmanifest": "application/manifest+json",
}


class Assets:
    def __init__(self, root: Path = STATIC_DIR) -> None:
        self.root = root
        self.hashes: dict[str, str] = {}
        if root.is_dir():
            for path in sorted(root.rglob("*")):
                if path.is_file() and path.suffix != ".py":  # icons/make_icons.py stays private
                    rel = path.relative_to(root).as_posix()
                    self.hashes[rel] = hashlib.sha256(path.read_bytes()).hexdigest()[:12]

    def url(self, name: str) -> str:
        digest = self.hashes.get(name)
        if digest is None:
            raise KeyError(f"no static file {name!r}")
        return f"/static/{name}?v={digest}"


async def static_handler(request: web.Request) -> web.StreamResponse:
    assets = request.app[ASSETS]
    name = request.match_info["name"]
    if name not in assets.hashes:  # only files known at start: no path tricks possible
        raise web.HTTPNotFound()
    path = assets.root / name
    headers = {
        "Cache-Control": "public, max-age=31536000, immutable"
        if request.query.get("v") == assets.hashes[name]
        else "no-cache"
    }  # unversioned (module imports): revalidate by ETag
    ctype = _TYPES.get(path.suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
    resp = web.FileResponse(path, headers=headers)
    resp.content_type = ctype
    return resp
