"""`GET /api/sharex.sxcu`: a ShareX custom-uploader file for this server.

Only hashes of API keys are stored, so an existing key cannot be put in a file: each
download creates a fresh key named "ShareX" (revocable on the API keys page). The
fields follow https://getsharex.com/docs/custom-uploader and the documented template
`sharex-config.sxcu` at the top of the repository.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from ..accounts import apikeys
from ..accounts.identity import require_user
from ..config import Settings
from ..db import transaction
from ..typedefs import ENGINE, SETTINGS

KEY_NAME = "ShareX"


def sharex_config(settings: Settings, api_key: str) -> dict[str, Any]:
    base = settings.public_base_url
    host = urlsplit(base).netloc
    return {
        "Version": "17.0.0",
        "Name": f"imagehost ({host})",
        "DestinationType": "ImageUploader",
        "RequestMethod": "POST",
        "RequestURL": f"{base}/api/upload",
        "Headers": {"Authorization": f"Bearer {api_key}"},
        "Body": "MultipartFormData",
        "FileFormName": "file",
        "URL": "{json:public_url}",
        "ThumbnailURL": "{json:thumbnail_url}",
        "DeletionURL": "{json:deletion_url}",
        "ErrorMessage": "{json:error}",
    }


async def download(request: web.Request) -> web.Response:
    user = require_user(request)
    settings = request.app[SETTINGS]
    async with transaction(request.app[ENGINE]) as conn:
        _key, secret = await apikeys.create_key(conn, user.id, KEY_NAME)
    body = json.dumps(sharex_config(settings, secret), indent=2) + "\n"
    host = re.sub(r"[^A-Za-z0-9.-]+", "-", urlsplit(settings.public_base_url).netloc).strip("-") or "imagehost"
    return web.Response(
        text=body,
        content_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="imagehost-{host}.sxcu"',
            "Cache-Control": "no-store",
        },
    )
