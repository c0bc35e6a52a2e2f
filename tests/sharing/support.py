"""Helpers for the sharing tests: a crawler's reading of a page's meta tags (html.parser,
as link-preview bots do), and fetching a public URL on either storage backend."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from urllib.parse import urlsplit

import aiohttp

BASE = "http://localhost:8000"


class PageTags(HTMLParser):
    """Every <meta>, <link> and <script> of a page, and the text of <title>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.meta: dict[str, list[str]] = {}
        self.links: list[dict[str, str]] = []
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.append((tag, a))
        if tag == "meta" and ("property" in a or "name" in a):
            self.meta.setdefault(a.get("property") or a["name"], []).append(a.get("content", ""))
        elif tag == "link":
            self.links.append(a)
        elif tag == "title":
            self._in_title = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data

    def one(self, name: str) -> str:
        values = self.meta.get(name, [])
        assert len(values) == 1, (name, values)
        return values[0]


def parse(html: str) -> PageTags:
    tags = PageTags()
    tags.feed(html)
    tags.close()
    return tags


def local_path(url: str) -> str:
    """The app's own absolute URL as the test client's path (with its query)."""
    assert url.startswith(BASE + "/"), url
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def make_bucket_public(backend) -> None:
    """R2 serves public URLs itself; moto needs the bucket made public first."""
    bucket = backend.settings.r2_bucket_name
    statement = {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}
    backend.s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [statement]}))


async def fetch_public(client, backend, url: str) -> tuple[int, str, bytes]:
    """Status, Content-Type and body of an image's public URL, as a crawler gets it: from
    the app (local storage) or from the bucket (S3), without cookies."""
    if backend.storage_kind == "local":
        client.session.cookie_jar.clear()
        resp = await client.get(local_path(url))
        return resp.status, resp.headers.get("Content-Type", ""), await resp.read()
    make_bucket_public(backend)
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), await resp.read()
