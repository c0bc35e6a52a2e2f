"""The Flameshot script, filled in with this server's address."""

from __future__ import annotations

import re
from pathlib import Path

from ..config import Settings

SCRIPT = Path(__file__).with_name("flameshot.sh")
PLACEHOLDER = "__IMAGEHOST_URL__"
# The URL lands inside double quotes in a bash script: allow nothing that bash would
# expand or that could end the string.
_SAFE_URL = re.compile(r"^https?://(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~%/-]*)?$")


def flameshot_script(settings: Settings) -> str:
    """The script text with IMAGEHOST_URL set to PUBLIC_BASE_URL (validated)."""
    url = settings.public_base_url.rstrip("/")
    if not _SAFE_URL.fullmatch(url):
        raise ValueError(f"PUBLIC_BASE_URL cannot be put in a shell script: {url!r}")
    return SCRIPT.read_text().replace(PLACEHOLDER, url, 1)
