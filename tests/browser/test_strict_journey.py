"""An upload through the gallery on the strict S3 peer (LocalStack): the browser's
cross-origin PUT to the presigned URL passes only through the bucket's CORS rule set by
`imagehost storage-setup`, and only with the signed type and length. Moto ignores CORS,
so the S3 journey in test_journey.py cannot show this."""

from __future__ import annotations

import json
import re
import secrets

import pytest
from playwright.sync_api import Browser, expect

from tests.support.browser import fetch, new_context, png_bytes, register

from .conftest import _serve

pytestmark = pytest.mark.browser


# `_serve("s3", ...)` asks for the S3 peer by these names: here, the strict one.
@pytest.fixture(scope="module")
def moto_endpoint(strict_endpoint: str) -> str:
    return strict_endpoint


@pytest.fixture(scope="module")
def s3_admin(strict_admin):
    return strict_admin


@pytest.fixture(scope="module")
def strict_server(request, tmp_path_factory):
    yield from _serve("s3", request, tmp_path_factory)


def test_gallery_upload_passes_the_cors_rule_of_the_strict_peer(browser: Browser, strict_server, strict_endpoint):
    server = strict_server
    ctx = new_context(browser, server.base_url)
    page = ctx.new_page()
    username = "strict_" + secrets.token_hex(3)
    register(page, username)

    data = png_bytes(48, noise=True)
    with page.expect_response(lambda r: r.request.method == "PUT" and r.url.startswith(strict_endpoint)) as put:
        page.set_input_files(
            "[data-testid=upload-input]", files=[{"name": "strict.png", "mimeType": "image/png", "buffer": data}]
        )
    assert put.value.status == 200
    assert put.value.headers.get("access-control-allow-origin") == server.base_url
    expect(page.locator("[data-testid=tile]")).to_have_count(1)
    url = page.locator("[data-testid=tile]").first.get_attribute("data-url")
    status, body, _ = fetch(url)
    assert status == 200 and body == data
    final = url.rsplit("/", 1)[-1]
    thumbs = {k for k in server.objects() if k.endswith(".webp")}
    assert len(thumbs) == 1
    assert server.objects() == {final, *thumbs}  # the final key and its thumbnail; pending/ is gone

    # The same upload from an origin the bucket's rule does not name: the browser's
    # preflight is refused, so the PUT is never sent; nothing is stored or confirmed.
    cors = server.s3.get_bucket_cors(Bucket=server.bucket)
    other = json.loads(json.dumps(cors["CORSRules"]))
    other[0]["AllowedOrigins"] = ["http://127.0.0.1:1"]
    server.s3.put_bucket_cors(Bucket=server.bucket, CORSConfiguration={"CORSRules": other})
    try:
        before = server.objects()
        page.set_input_files(
            "[data-testid=upload-input]",
            files=[{"name": "refused.png", "mimeType": "image/png", "buffer": png_bytes(40, noise=True)}],
        )
        row = page.get_by_test_id("upload-row").filter(has_text="refused.png")
        expect(row.get_by_test_id("upload-status")).to_have_text(re.compile("Network lost"))
        expect(page.locator("[data-testid=tile]")).to_have_count(1)
        assert server.objects() == before
        active = server.rows(
            "SELECT count(*) FROM images i JOIN users u ON u.id = i.owner_id WHERE u.username = ? AND status = ?",
            username,
            "active",
        )
        assert active == [(1,)]
    finally:
        server.s3.put_bucket_cors(Bucket=server.bucket, CORSConfiguration={"CORSRules": cors["CORSRules"]})
    ctx.close()
