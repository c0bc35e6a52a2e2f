"""What only a strict S3 peer shows (imagehost issue 9). LocalStack's S3, like R2 and S3,
refuses a presigned PUT that is off its terms (signature, expiry, signed Content-Type and
Content-Length) and answers CORS preflights from the bucket's rule; moto does neither.
Also `imagehost storage-setup` with R2's region "auto", and what it says when the store
refuses or does not answer."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiohttp
import pytest

from ..conftest import SECRET, Backend, free_port, s3_client

pytestmark = pytest.mark.tiers("s3-strict")

ROOT = Path(__file__).resolve().parents[2]
KEY = "pending/strictpeerstrictpeer01.png"
OTHER_KEY = "pending/strictpeerstrictpeer02.png"
APP_ORIGIN = "http://localhost:8000"


async def put(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.put(url, data=body, headers=headers) as resp:
        return resp.status, await resp.text()


def error_code(xml: str) -> str:
    match = re.search(r"<Code>([^<]+)</Code>", xml)
    return match.group(1) if match else ""


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    return urlunsplit(parts._replace(query=urlencode({**query, **changes})))


# --------------------------------------------------------------------------- presigned PUT


async def test_presigned_put_with_the_signed_type_and_length_is_stored(storage, backend: Backend):
    data = os.urandom(1234)
    signed = await storage.presign_put(KEY, "image/png", len(data), 300)
    status, text = await put(signed.url, data, signed.headers)
    assert status == 200, text
    assert backend.read_object(KEY) == data
    info = await storage.head(KEY)
    assert info is not None and (info.size, info.content_type) == (len(data), "image/png")


@pytest.mark.parametrize(
    "cheat",
    ["other-content-type", "more-bytes", "fewer-bytes", "tampered-signature", "other-key"],
)
async def test_presigned_put_off_its_terms_is_refused_and_stores_nothing(storage, backend: Backend, cheat):
    data = os.urandom(1234)
    signed = await storage.presign_put(KEY, "image/png", len(data), 300)
    url, body, headers = signed.url, data, dict(signed.headers)
    if cheat == "other-content-type":
        headers["Content-Type"] = "text/html"
    elif cheat == "more-bytes":
        body = data + b"<script>"
    elif cheat == "fewer-bytes":
        body = data[:-1]
    elif cheat == "tampered-signature":
        sig = dict(parse_qsl(urlsplit(url).query))["X-Amz-Signature"]
        url = with_query(url, **{"X-Amz-Signature": sig[:-1] + ("0" if sig[-1] != "0" else "1")})
    else:
        url = url.replace(KEY, OTHER_KEY)
    status, text = await put(url, body, headers)
    assert status == 403, text
    assert error_code(text) == "SignatureDoesNotMatch", text
    assert backend.objects() == set()


async def test_expired_presigned_put_is_refused_and_stores_nothing(storage, backend: Backend):
    data = os.urandom(100)
    signed = await storage.presign_put(KEY, "image/png", len(data), 1)
    await asyncio.sleep(2.5)  # past X-Amz-Date (whole seconds) + 1 s
    status, text = await put(signed.url, data, signed.headers)
    assert status == 403, text
    assert error_code(text) == "AccessDenied" and "expired" in text, text
    assert backend.objects() == set()


# --------------------------------------------------------------------------- storage-setup


def storage_setup(backend: Backend, tmp_path: Path, bucket: str, region: str, endpoint: str | None = None):
    """`imagehost storage-setup` in a process of its own, configured like a deployment."""
    s = backend.settings
    endpoint = endpoint or str(s.s3_endpoint_url)
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "SECRET_KEY": SECRET,
            "DATA_DIR": str(tmp_path / "data"),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
            "PUBLIC_BASE_URL": APP_ORIGIN + "/",
            "STORAGE_BACKEND": "s3",
            "S3_ENDPOINT_URL": endpoint,
            "S3_REGION": region,
            "R2_ACCESS_KEY_ID": str(s.r2_access_key_id),
            "R2_SECRET_ACCESS_KEY": str(s.r2_secret_access_key),
            "R2_BUCKET_NAME": bucket,
            "R2_PUBLIC_URL": f"{endpoint}/{bucket}",
            "LOG_LEVEL": "WARNING",
        }
    )
    return subprocess.run(
        [sys.executable, "-m", "imagehost", "storage-setup"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_storage_setup_with_r2_region_auto_creates_bucket_cors_and_lifecycle(backend: Backend, tmp_path):
    bucket = "ih-auto-" + secrets.token_hex(4)
    done = storage_setup(backend, tmp_path, bucket, "auto")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"bucket {bucket} created",
        f"CORS: PUT from {APP_ORIGIN}",
        "lifecycle: expire pending/, abort incomplete multipart uploads",
    ]
    admin = s3_client(str(backend.settings.s3_endpoint_url), "auto")
    (cors,) = admin.get_bucket_cors(Bucket=bucket)["CORSRules"]
    assert (cors["AllowedOrigins"], cors["AllowedMethods"], cors["AllowedHeaders"]) == (
        [APP_ORIGIN],
        ["PUT"],
        ["content-type"],
    )
    rules = {r["ID"]: r for r in admin.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}
    assert rules["imagehost-expire-pending"]["Filter"] == {"Prefix": "pending/"}
    assert rules["imagehost-expire-pending"]["Expiration"] == {"Days": 1}
    assert rules["imagehost-abort-incomplete-multipart"]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}

    again = storage_setup(backend, tmp_path, bucket, "auto")  # idempotent
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[0] == f"bucket {bucket} exists"
    assert len(admin.get_bucket_cors(Bucket=bucket)["CORSRules"]) == 1


async def test_the_cors_rule_lets_the_app_origin_put_and_no_one_else(backend: Backend, tmp_path):
    bucket = "ih-cors-" + secrets.token_hex(4)
    assert storage_setup(backend, tmp_path, bucket, "auto").returncode == 0
    url = f"{backend.settings.s3_endpoint_url}/{bucket}/{KEY}"

    async def preflight(origin: str, method: str = "PUT", headers: str = "content-type"):
        request = {"Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers}
        async with aiohttp.ClientSession() as http, http.options(url, headers=request) as resp:
            return resp.status, resp.headers

    status, headers = await preflight(APP_ORIGIN)
    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    assert headers["Access-Control-Allow-Methods"] == "PUT"
    assert headers["Access-Control-Allow-Headers"].lower() == "content-type"
    for origin, method, asked in (
        ("http://evil.example", "PUT", "content-type"),
        ("http://localhost:8001", "PUT", "content-type"),  # another port is another origin
        (APP_ORIGIN, "DELETE", "content-type"),
        (APP_ORIGIN, "PUT", "content-type,x-amz-acl"),
    ):
        status, headers = await preflight(origin, method, asked)
        assert status == 403, (origin, method, asked)
        assert "Access-Control-Allow-Origin" not in headers


def test_storage_setup_says_what_the_store_answered(backend: Backend, tmp_path):
    """imagehost issue 9, defect 6: a refusal is not "unreachable"."""
    bucket = "Not_A_Bucket_" + secrets.token_hex(2)
    done = storage_setup(backend, tmp_path, bucket, "auto")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "imagehost: storage-setup (s3): the store answered create_bucket with "
        "InvalidBucketName: The specified bucket is not valid."
    )
    assert "unreachable" not in done.stderr and done.stdout == ""
    names = {b["Name"] for b in backend.s3.list_buckets()["Buckets"]}
    assert bucket not in names


def test_storage_setup_says_unreachable_when_nothing_answers(backend: Backend, tmp_path):
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    done = storage_setup(backend, tmp_path, "ih-nowhere", "auto", endpoint=closed)
    assert done.returncode == 1
    first = done.stderr.strip().splitlines()[0]
    assert first.startswith("imagehost: storage-setup (s3): storage unreachable: head_bucket: "), done.stderr
    assert closed in first and "answered" not in first
