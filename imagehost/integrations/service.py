"""Screenshot-tool set-ups for this server: the ShareX custom-uploader file and the
Flameshot script, filled in with the server's own URLs.

Only hashes of API keys are stored, so an existing key cannot be put in a file: each
`.sxcu` download creates a fresh key named "ShareX" (revocable on the API keys page).
The fields follow https://getsharex.com/docs/custom-uploader and the documented
template `sharex-config.sxcu` at the top of the repository.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..accounts import service as accounts
from ..config import Settings
from ..env import Env
from ..errors import Unprocessable
from ..sharing import service as sharing

SHAREX_KEY_NAME = "ShareX"
FLAMESHOT_KEY_NAME = "Flameshot"
# Where flameshot.sh reads its key when IMAGEHOST_KEY is unset (its `key_file`).
FLAMESHOT_KEY_DIR = "~/.config/imagehost"
FLAMESHOT_SCRIPT = Path(__file__).with_name("flameshot.sh")
PLACEHOLDER = "__IMAGEHOST_URL__"
# The URL lands inside double quotes in a bash script: allow nothing that bash would
# expand or that could end the string.
_SAFE_URL = re.compile(r"^https?://(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~%/-]*)?$")


# What ShareX copies after an upload (`?link=` of the download): the image itself, or
# its share page (whose link previews show the image in chat apps).
SHAREX_LINKS = {"direct": "{json:public_url}", "page": "{json:page_url}"}


def sharex_link(raw: str | None) -> str:
    """The `link` query parameter: `direct` (the default) or `page`; anything else 422."""
    link = raw or "direct"
    if link not in SHAREX_LINKS:
        raise Unprocessable("link must be direct or page", {"field": "link", "allowed": list(SHAREX_LINKS)})
    return link


def sharex_config(env: Env, api_key: str, link: str = "direct", expiry_seconds: int | None = None) -> dict[str, Any]:
    """The uploader: copies the direct link or the share page's (`link`), and asks for the
    user's default expiry with `X-Expires-In` when they have one."""
    host = urlsplit(env.settings.public_base_url).netloc
    headers = {"Authorization": f"Bearer {api_key}"}
    if expiry_seconds is not None:
        headers["X-Expires-In"] = str(expiry_seconds)
    return {
        "Version": "17.0.0",
        "Name": f"imagehost ({host})",
        "DestinationType": "ImageUploader",
        "RequestMethod": "POST",
        "RequestURL": env.url("api.upload"),
        "Headers": headers,
        "Body": "MultipartFormData",
        "FileFormName": "file",
        "URL": SHAREX_LINKS[link],
        "ThumbnailURL": "{json:thumbnail_url}",
        "DeletionURL": "{json:deletion_url}",
        "ErrorMessage": "{json:error}",
    }


async def sharex_file(env: Env, user_id: str, link: str = "direct") -> tuple[str, str]:
    """A new "ShareX" key for the user and the `.sxcu` text holding it, with its file name."""
    expiry = (await sharing.preferences(env, user_id)).default_expiry_seconds
    if expiry is not None and not env.settings.expiry_min_seconds <= expiry <= env.settings.expiry_max_seconds:
        expiry = None  # the limits changed since it was set: every upload would be refused
    _key, secret = await accounts.create_api_key(env, user_id, SHAREX_KEY_NAME)
    body = json.dumps(sharex_config(env, secret, link, expiry), indent=2) + "\n"
    host = re.sub(r"[^A-Za-z0-9.-]+", "-", urlsplit(env.settings.public_base_url).netloc).strip("-") or "imagehost"
    return body, f"imagehost-{host}.sxcu"


def flameshot_script(settings: Settings) -> str:
    """The script text with IMAGEHOST_URL set to PUBLIC_BASE_URL (validated)."""
    url = settings.public_base_url.rstrip("/")
    if not _SAFE_URL.fullmatch(url):
        raise ValueError(f"PUBLIC_BASE_URL cannot be put in a shell script: {url!r}")
    return FLAMESHOT_SCRIPT.read_text().replace(PLACEHOLDER, url, 1)


async def flameshot_key(env: Env, user_id: str) -> str:
    """A new "Flameshot" key for the user; its secret (shown once)."""
    _key, secret = await accounts.create_api_key(env, user_id, FLAMESHOT_KEY_NAME)
    return secret


def flameshot_key_command(secret: str) -> str:
    """The shell line that puts a key where flameshot.sh reads it, readable by its owner
    only. Keys are URL-safe base64 with a prefix, so single quotes hold them as they are."""
    if not re.fullmatch(r"[A-Za-z0-9_-]+", secret):
        raise ValueError("not an API key")
    return f"mkdir -p {FLAMESHOT_KEY_DIR} && (umask 077; echo '{secret}' > {FLAMESHOT_KEY_DIR}/key)"


def curl_line(env: Env) -> str:
    upload = env.url("api.upload")
    return f'curl -H "Authorization: Bearer ih_YOUR_KEY" -F "file=@screenshot.png" "{upload}?format=text"'
