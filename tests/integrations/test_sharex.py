"""GET /api/sharex.sxcu, then the upload exactly as ShareX performs it."""

from __future__ import annotations

import io
import json
import re
from urllib.parse import urlsplit

import aiohttp

from imagehost.typedefs import ENGINE
from tests.support import ROOT
from tests.support.uploads import image_bytes, snapshot

TEMPLATE = ROOT / "sharex-config.sxcu"


def resolve(template: str, response: dict) -> str:
    """ShareX's {json:path} syntax, for the flat paths the config uses."""
    return re.sub(r"\{json:([A-Za-z0-9_.]+)\}", lambda m: str(response.get(m.group(1), "")), template)


async def test_sharex_config_round_trip(client, backend, make_user):
    user = await make_user()
    resp = await client.get("/api/sharex.sxcu", headers=user.auth)
    assert resp.status == 200
    assert resp.headers["Content-Disposition"] == 'attachment; filename="imagehost-localhost-8000.sxcu"'
    assert resp.headers["Cache-Control"] == "no-store"
    config = json.loads(await resp.text())
    template = json.loads(TEMPLATE.read_text())
    assert set(config) == set(template)
    for field in (
        "DestinationType",
        "RequestMethod",
        "Body",
        "FileFormName",
        "URL",
        "ThumbnailURL",
        "DeletionURL",
        "ErrorMessage",
        "Version",
    ):
        assert config[field] == template[field], field
    assert config["RequestURL"] == "http://localhost:8000/api/upload"
    key = config["Headers"]["Authorization"].removeprefix("Bearer ")
    assert key.startswith("ih_") and key != user.api_key and "|" not in key
    keys = await (await client.get("/api/keys", headers=user.auth)).json()
    names = [k["name"] for k in (keys["keys"] if isinstance(keys, dict) else keys)]
    assert "ShareX" in names

    # The request exactly as ShareX sends it: POST RequestURL, its headers, multipart
    # with the file in FileFormName (ShareX sends a filename and its guessed type).
    parts = urlsplit(config["RequestURL"])
    form = aiohttp.FormData()
    form.add_field(
        config["FileFormName"],
        io.BytesIO(image_bytes("PNG", (32, 32))),
        filename="Screenshot_2024.png",
        content_type="image/png",
    )
    assert config["RequestMethod"] == "POST" and config["Body"] == "MultipartFormData"
    up = await client.post(parts.path, data=form, headers=config["Headers"])
    assert up.status == 201
    answer = await up.json()
    url, thumb, deletion = (resolve(config[f], answer) for f in ("URL", "ThumbnailURL", "DeletionURL"))
    assert url == answer["public_url"] and thumb and deletion == answer["deletion_url"]

    key_name = url.rsplit("/", 1)[-1]
    if backend.storage_kind == "local":
        got = await client.get(urlsplit(url).path)
        assert got.status == 200 and got.headers["Content-Type"] == "image/png"
    else:
        # R2 serves the public URL itself; moto needs the bucket made public first.
        bucket = backend.settings.r2_bucket_name
        backend.s3.put_bucket_policy(
            Bucket=bucket,
            Policy=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": "*",
                            "Action": "s3:GetObject",
                            "Resource": f"arn:aws:s3:::{bucket}/*",
                        }
                    ],
                }
            ),
        )
        async with aiohttp.ClientSession() as session, session.get(url) as got:
            assert got.status == 200, await got.text()
            assert got.headers["Content-Type"] == "image/png"
    assert key_name in backend.objects()

    # The deletion URL: a GET shows the confirmation page, a POST deletes; no login.
    page = await client.get(urlsplit(deletion).path)
    assert page.status == 200 and "<form" in await page.text()
    assert (await snapshot(client, backend)).images == 1
    gone = await client.post(urlsplit(deletion).path)
    assert gone.status == 200
    snap = await snapshot(client, backend)
    assert snap.images == 0 and snap.objects == frozenset()

    # ShareX shows ErrorMessage from a failed upload's JSON. (ShareX keeps no cookies;
    # the confirmation page gave this test client a session cookie.)
    client.session.cookie_jar.clear()
    bad = aiohttp.FormData()
    bad.add_field("file", io.BytesIO(b"<svg/>"), filename="x.svg", content_type="image/svg+xml")
    failed = await client.post(parts.path, data=bad, headers=config["Headers"])
    assert failed.status == 415
    assert resolve(config["ErrorMessage"], await failed.json()) == "unsupported file type"
    assert client.server.app[ENGINE] is not None


async def test_sharex_config_needs_a_login(client, backend):
    assert (await client.get("/api/sharex.sxcu")).status == 401
