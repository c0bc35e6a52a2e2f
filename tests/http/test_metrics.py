"""GET /metrics: what is counted, by which labels, and who may read it."""

from __future__ import annotations

import secrets
from dataclasses import replace
from unittest import mock

import pytest
from aiohttp.test_utils import make_mocked_request
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from imagehost.app import create_app
from imagehost.metrics import may_read
from imagehost.storage import StorageError
from imagehost.typedefs import ENV, METRICS
from tests.support.uploads import image_bytes, upload, uploaded

pytestmark = pytest.mark.tiers("sqlite-local")

TOKEN = "metrics-" + "t" * 32


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the text format: (name, labels) → value."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(found: dict, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


async def scrape(client, **headers: str) -> dict:
    resp = await client.get("/metrics", headers=headers)
    assert resp.status == 200, resp.status
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return samples(await resp.text())


# --------------------------------------------------------------------------- what is counted


async def test_requests_are_counted_by_route_name_with_latency(client, backend, make_user):
    user = await make_user()
    for _ in range(3):
        assert (await client.get("/api/images/", headers=user.auth)).status == 200
    assert (await client.get("/api/images/nope", headers=user.auth)).status == 404
    found = await scrape(client)
    assert value(found, "imagehost_http_requests_total", route="api.images", method="GET", status="200") == 3
    assert value(found, "imagehost_http_requests_total", route="api.image", method="GET", status="404") == 1
    assert value(found, "imagehost_http_request_duration_seconds_count", route="api.images", method="GET") == 3
    assert (
        value(found, "imagehost_http_request_duration_seconds_bucket", route="api.images", method="GET", le="+Inf") == 3
    )


async def test_unknown_paths_all_count_under_one_label(client, backend):
    for _ in range(25):
        await client.get(f"/api/{secrets.token_hex(8)}")
        await client.get(f"/{secrets.token_hex(8)}/x", headers={"Accept": "text/html"})
    await client.request("PROPFIND", "/api/health")
    found = await scrape(client)
    assert value(found, "imagehost_http_requests_total", route="unmatched", method="GET", status="404") == 50
    routes = {dict(labels)["route"] for name, labels in found if name == "imagehost_http_requests_total"}
    names = {r.name for r in client.server.app.router.resources() if r.name}
    assert routes <= names | {"unmatched"}, routes
    methods = {dict(labels)["method"] for name, labels in found if name == "imagehost_http_requests_total"}
    assert methods == {"GET", "other"}  # an invented method is not a new label value either


async def test_uploads_are_counted_by_path_and_outcome(client, backend, make_user):
    user = await make_user()
    await uploaded(client, user, image_bytes("PNG"))
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    assert (await upload(client, user, svg, "x.svg", "image/svg+xml")).status == 415
    assert (await upload(client, user, image_bytes("PNG")[:40])).status in (415, 422)
    resp = await client.post(
        "/api/images/upload-url", json={"content_type": "image/png", "size_bytes": 10**12}, headers=user.auth
    )
    assert resp.status == 413
    found = await scrape(client)
    assert value(found, "imagehost_uploads_total", path="streamed", outcome="accepted") == 1
    assert value(found, "imagehost_uploads_total", path="streamed", outcome="unsupported_type") == 1
    refused = sum(
        value(found, "imagehost_uploads_total", path="streamed", outcome=code)
        for code in ("invalid_image", "unsupported_type")
    )
    assert refused == 2
    assert value(found, "imagehost_uploads_total", path="presigned", outcome="file_too_large") == 1


async def test_presigned_upload_is_counted_once_accepted(client, backend, make_user):
    user = await make_user()
    data = image_bytes("PNG")
    resp = await client.post(
        "/api/images/upload-url", json={"content_type": "image/png", "size_bytes": len(data)}, headers=user.auth
    )
    assert resp.status == 201
    slot = await resp.json()
    put = await client.put(
        slot["upload_url"].removeprefix(backend.settings.public_base_url), data=data, headers=slot["headers"]
    )
    assert put.status == 200
    for expected in (201, 200):  # confirm is idempotent: the second one is not another upload
        resp = await client.post("/api/images/confirm", json={"r2_key": slot["r2_key"]}, headers=user.auth)
        assert resp.status == expected
    found = await scrape(client)
    assert value(found, "imagehost_uploads_total", path="presigned", outcome="accepted") == 1


async def test_stored_bytes_is_read_from_the_database_at_scrape_time(client, backend, make_user):
    assert value(await scrape(client), "imagehost_stored_bytes") == 0
    a, b = await make_user(), await make_user()
    one = await uploaded(client, a, image_bytes("PNG", (50, 50)))
    two = await uploaded(client, b, image_bytes("PNG", (70, 20)))
    assert value(await scrape(client), "imagehost_stored_bytes") == one["size_bytes"] + two["size_bytes"]
    assert (await client.delete(f"/api/images/{one['id']}", headers=a.auth)).status == 204
    assert value(await scrape(client), "imagehost_stored_bytes") == two["size_bytes"]


class _DownStorage:
    def __init__(self, real):
        self.real = real

    def __getattr__(self, name):
        return getattr(self.real, name)

    async def put_stream(self, key, chunks, content_type):
        raise StorageError("connection refused")


async def test_storage_and_database_outages_count_503s_by_code(client, backend, make_user):
    user = await make_user()
    app = client.server.app
    env = app[ENV]
    app._state[ENV] = replace(env, storage=_DownStorage(env.storage))
    try:
        resp = await upload(client, user, image_bytes("PNG"))
        assert resp.status == 503 and (await resp.json())["code"] == "storage_unavailable"
    finally:
        app._state[ENV] = env
    found = await scrape(client)
    assert value(found, "imagehost_unavailable_responses_total", code="storage_unavailable") == 1
    assert value(found, "imagehost_uploads_total", path="streamed", outcome="storage_unavailable") == 1
    assert value(found, "imagehost_unavailable_responses_total", code="database_unavailable") == 0


async def test_sweep_results_are_counted(client, backend):
    metrics = client.server.app[METRICS]
    metrics.record_sweep({"pending_removed": 2, "orphans_removed": 1, "orphans_failed": 0})
    metrics.record_sweep({"pending_removed": 1, "orphans_removed": 0, "orphans_failed": 3})
    found = await scrape(client)
    assert value(found, "imagehost_sweep_runs_total") == 2
    assert value(found, "imagehost_sweep_items_total", result="pending_removed") == 3
    assert value(found, "imagehost_sweep_items_total", result="orphans_removed") == 1
    assert value(found, "imagehost_sweep_items_total", result="orphans_failed") == 3


async def test_every_app_has_its_own_registry(client, backend, make_user, aiohttp_client):
    other = await aiohttp_client(create_app(backend.settings))
    await client.get("/api/health")
    await client.get("/api/health")
    found = await scrape(other)
    assert value(found, "imagehost_http_requests_total", route="health", method="GET", status="200") == 0
    assert not [m for m in REGISTRY.collect() if m.name.startswith("imagehost_")]  # never the global one


# --------------------------------------------------------------------------- who may read them


async def test_loopback_may_read_when_no_token_is_set(client, backend):
    assert backend.settings.metrics_token == ""
    await scrape(client)


@pytest.mark.parametrize(
    "header", ["X-Forwarded-For", "Forwarded", "X-Real-IP"], ids=["x-forwarded-for", "forwarded", "x-real-ip"]
)
async def test_a_request_relayed_by_a_proxy_is_refused_without_a_token(client, backend, header):
    resp = await client.get("/metrics", headers={header: "203.0.113.9"})
    assert resp.status == 404
    assert "imagehost_" not in await resp.text()


class TestWithATokenSet:
    @pytest.fixture
    def settings_overrides(self) -> dict:
        return {"metrics_token": TOKEN}

    @pytest.mark.parametrize(
        "headers",
        [
            {},
            {"Authorization": "Bearer wrong-token"},
            {"Authorization": f"Basic {TOKEN}"},
            {"Authorization": "Bearer "},
        ],
        ids=["none", "wrong", "not-bearer", "empty"],
    )
    async def test_anything_but_the_token_gets_a_404(self, client, backend, headers):
        assert backend.settings.metrics_token == TOKEN
        resp = await client.get("/metrics", headers={**headers, "Accept": "application/json"})
        unknown = await client.get("/no-such-page", headers={"Accept": "application/json"})
        assert resp.status == unknown.status == 404  # loopback gets no exception once a token is set
        assert await resp.json() == await unknown.json()  # the same 404 as an unknown path

    async def test_the_token_may_read(self, client, backend):
        found = await scrape(client, Authorization=f"Bearer {TOKEN}")
        assert ("imagehost_stored_bytes", frozenset()) in found
        # The token is not a user credential: it is no login anywhere else.
        resp = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {TOKEN}"})
        assert resp.status == 401


def _request(app, peer: str, headers: dict[str, str] | None = None):
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (peer, 50000) if name == "peername" else default
    return make_mocked_request("GET", "/metrics", headers=headers or {}, app=app, transport=transport)


async def test_trusted_proxies_may_read_directly_and_no_one_else(backend):
    plain = create_app(backend.settings)
    assert may_read(_request(plain, "127.0.0.1")) and may_read(_request(plain, "::1"))
    assert not may_read(_request(plain, "10.0.0.5"))
    trusted = create_app(backend.settings.model_copy(update={"trusted_proxies": ("10.0.0.0/8",)}))
    assert may_read(_request(trusted, "10.0.0.5"))
    assert not may_read(_request(trusted, "10.0.0.5", {"X-Forwarded-For": "198.51.100.1"}))
    assert not may_read(_request(trusted, "192.0.2.1"))
