from __future__ import annotations

from dataclasses import replace

from imagehost.app import create_app
from imagehost.storage import StorageError
from imagehost.typedefs import ENGINE, ENV, STORAGE


async def test_health_reports_database_and_storage_ok(client, backend):
    resp = await client.get("/api/health")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok", "database": "ok", "storage": "ok"}
    assert "Set-Cookie" not in resp.headers


async def test_health_names_the_database_when_it_is_down(client, backend):
    await client.server.app[ENGINE].dispose()
    engine = client.server.app[ENGINE]
    # Point the pool at a port where nothing listens.
    from imagehost.db import create_engine

    bad = create_engine(
        backend.settings.model_copy(update={"database_url": "postgresql+psycopg://nobody@127.0.0.1:1/none"})
    )
    client.server.app._state[ENV] = replace(client.server.app[ENV], engine=bad)
    try:
        resp = await client.get("/api/health")
        body = await resp.json()
        assert resp.status == 503
        assert body["database"] == "unavailable" and body["storage"] == "ok"
        assert body["error"] == "database unavailable"
    finally:
        client.server.app._state[ENV] = replace(client.server.app[ENV], engine=engine)
        await bad.dispose()


class _DownStorage:
    name = "down"

    async def check(self) -> None:
        raise StorageError("connection refused")


async def test_health_names_storage_when_it_is_down(client, backend):
    real = client.server.app[STORAGE]
    client.server.app._state[ENV] = replace(client.server.app[ENV], storage=_DownStorage())
    try:
        resp = await client.get("/api/health")
        body = await resp.json()
        assert resp.status == 503
        assert body["storage"] == "unavailable" and body["database"] == "ok"
        assert "connection refused" not in await resp.text()  # the reason stays in the log
    finally:
        client.server.app._state[ENV] = replace(client.server.app[ENV], storage=real)


async def test_factory_builds_the_same_app_for_every_tier(backend):
    app = create_app(backend.settings)
    assert app.router.resources()  # routes are wired


async def test_requests_get_a_503_envelope_while_the_database_is_down(client, backend, make_user):
    from imagehost.db import create_engine

    account = await make_user()
    engine = client.server.app[ENGINE]
    bad = create_engine(
        backend.settings.model_copy(update={"database_url": "postgresql+psycopg://nobody@127.0.0.1:1/none"})
    )
    client.server.app._state[ENV] = replace(client.server.app[ENV], engine=bad)
    try:
        resp = await client.get("/api/images/", headers=account.auth)
        assert resp.status == 503
        assert await resp.json() == {"error": "database unavailable", "code": "database_unavailable", "detail": None}
        page = await client.get("/login", headers={"Accept": "text/html"})
        assert page.status in (200, 503)  # the login page itself needs no database
        assert "Traceback" not in await page.text()
    finally:
        client.server.app._state[ENV] = replace(client.server.app[ENV], engine=engine)
        await bad.dispose()
    resp = await client.get("/api/images/", headers=account.auth)
    assert resp.status == 200  # and it recovers once the database is back
