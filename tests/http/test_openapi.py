"""The OpenAPI document (`/api/openapi.json`), the contract check that validates the
suite's /api responses against it, and the reference page `/api/docs`."""

from __future__ import annotations

import json
import re

import pytest
from aiohttp import web
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from imagehost.app import create_app
from imagehost.errors import CODES
from imagehost.images import service as images_service
from imagehost.openapi import api_routes, build_document, documented_route_names, undocumented
from imagehost.routes import STORAGE_HANDLERS
from imagehost.typedefs import SETTINGS
from tests.contract import install_contract_check
from tests.support.accounts import logged_in_token
from tests.support.uploads import image_bytes, upload, uploaded

pytestmark = pytest.mark.tiers("sqlite-local", "sqlite-s3")


async def _document(client) -> dict:
    resp = await client.get("/api/openapi.json")
    assert resp.status == 200
    assert resp.content_type == "application/json"
    return await resp.json()


def _operations(doc: dict):
    for path, item in doc["paths"].items():
        for method, op in item.items():
            yield path, method, op


# --------------------------------------------------------------------------- the document


async def test_document_is_valid_openapi_3_1(client, backend):
    doc = await _document(client)
    validate(doc)  # openapi-spec-validator: raises on any error
    assert doc["openapi"].startswith("3.1.")
    assert doc["servers"] == [{"url": backend.settings.public_base_url, "description": "This server"}]


async def test_every_api_route_is_documented(app, backend):
    assert undocumented(app) == []
    doc = build_document(app)
    served = {(path, method.lower()) for _name, method, path in api_routes(app)}
    documented = {(path, method) for path, method, _op in _operations(doc)}
    assert served == documented
    assert ("/api/images/{id}", "delete") in documented and ("/api/upload", "post") in documented


async def test_a_route_added_without_documentation_is_named(backend):
    app = create_app(backend.settings)

    async def handler(request: web.Request) -> web.Response:
        return web.json_response({})

    app.router.add_get("/api/albums", handler, name="api.albums")
    app.router.add_post("/api/images/{id}/rotate", handler)
    assert sorted(undocumented(app)) == ["GET /api/albums (api.albums)", "POST /api/images/{id}/rotate (unnamed)"]
    assert "/api/albums" not in build_document(app)["paths"]


async def test_no_stale_entries_in_the_operations_table(backend):
    """Every documented route name is in the route table (or is a storage backend's route)."""
    routed = {r.name for r in create_app(backend.settings).router.resources() if r.name}
    assert documented_route_names(backend.settings) <= routed | set(STORAGE_HANDLERS)


async def test_signed_put_is_documented_only_when_it_is_routed(client, backend):
    doc = await _document(client)
    put = doc["paths"].get("/api/uploads/pending/{name}", {}).get("put")
    if backend.storage_kind == "local":
        assert put is not None and put["security"] == []
        assert {p["name"] for p in put["parameters"]} == {"name", "ct", "len", "exp", "sig"}
    else:
        assert put is None


async def test_error_codes_are_the_codes_table(client, backend):
    doc = await _document(client)
    error = doc["components"]["schemas"]["Error"]
    assert error["required"] == ["error", "code", "detail"]
    assert error["properties"]["code"]["enum"] == list(CODES)
    for path, method, op in _operations(doc):
        for status, resp in op["responses"].items():
            if status.startswith("2"):
                continue
            codes = resp["x-error-codes"]
            assert codes and set(codes) <= set(CODES), (path, method, status)
            schema = resp["content"]["application/json"]["schema"]
            if "allOf" in schema:
                assert schema["allOf"][0] == {"$ref": "#/components/schemas/Error"}
                assert schema["allOf"][1]["properties"]["code"]["enum"] == codes
            else:
                assert schema == {"$ref": "#/components/schemas/HealthDown"}


async def test_every_operation_says_how_it_authenticates_and_fails(client, backend):
    doc = await _document(client)
    schemes = doc["components"]["securitySchemes"]
    assert schemes["apiKey"]["scheme"] == schemes["jwt"]["scheme"] == "bearer"
    assert schemes["session"] == {**schemes["session"], "type": "apiKey", "in": "cookie", "name": "imagehost_session"}
    assert schemes["csrf"] == {**schemes["csrf"], "type": "apiKey", "in": "header", "name": "X-CSRF-Token"}
    ops = {op["operationId"]: op for _p, _m, op in _operations(doc)}
    assert ops["health"]["security"] == [] and ops["register"]["security"] == []
    assert {"apiKey": []} not in ops["createKey"]["security"]  # an API key cannot create keys
    assert {"session": [], "csrf": []} in ops["deleteImage"]["security"]
    assert {"session": []} in ops["listImages"]["security"]
    for op in ops.values():
        assert "500" in op["responses"]
        if op["security"]:
            assert set(op["responses"]["401"]["x-error-codes"]) == {
                "authentication_required",
                "invalid_credentials",
                "account_disabled",
            }
    assert "429" in ops["login"]["responses"] and "Retry-After" in ops["login"]["responses"]["429"]["headers"]
    upload = ops["upload"]
    assert set(upload["responses"]["201"]["content"]) == {"application/json", "text/plain"}
    multipart = upload["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert multipart["required"] == ["file"] and multipart["properties"]["file"]["format"] == "binary"


async def test_examples_match_their_schemas(client, backend):
    doc = await _document(client)
    registry = Registry().with_resource("urn:doc", DRAFT202012.create_resource(doc))
    schemas = doc["components"]["schemas"]
    checked = 0
    for name, schema in schemas.items():
        for example in schema.get("examples", []):
            validator = Draft202012Validator({"$ref": f"urn:doc#/components/schemas/{name}"}, registry=registry)
            assert list(validator.iter_errors(example)) == [], name
            checked += 1
    for path, method, op in _operations(doc):
        for where, media in [
            *((f"request {t}", m) for t, m in op.get("requestBody", {}).get("content", {}).items()),
            *((f"{s} {t}", m) for s, r in op["responses"].items() for t, m in r.get("content", {}).items()),
        ]:
            if "example" in media and "schema" in media:
                schema = json.loads(json.dumps(media["schema"]).replace('"#/', '"urn:doc#/'))
                validator = Draft202012Validator(schema, registry=registry)
                assert list(validator.iter_errors(media["example"])) == [], (path, method, where)
                checked += 1
    assert checked > 20


async def test_image_schema_lists_every_field_of_the_image_json(client, backend, make_user):
    doc = await _document(client)
    image = doc["components"]["schemas"]["Image"]
    body = await uploaded(client, await make_user(), image_bytes("PNG"))
    assert set(body) == set(image["required"]) == set(image["properties"])


# --------------------------------------------------------------------------- the contract check


async def test_contract_check_reports_an_undocumented_field(client, backend, make_user, monkeypatch, api_contract):
    user = await make_user()
    await uploaded(client, user)
    real = images_service.image_json
    monkeypatch.setattr(images_service, "image_json", lambda env, row: {**real(env, row), "secret_path": "/x"})
    resp = await client.get("/api/images/", headers=user.auth)
    assert resp.status == 200
    found = list(api_contract)
    api_contract.clear()  # seen: this test must not fail because of it
    assert len(found) == 1
    assert found[0].startswith("listImages (GET /api/images/) → 200 application/json")
    assert "secret_path" in found[0]


async def test_contract_check_reports_an_undocumented_status(client, backend, make_user, monkeypatch, api_contract):
    from imagehost.accounts import service as accounts_service
    from imagehost.errors import Conflict

    async def refuse(env, user_id):
        raise Conflict("not now")

    user = await make_user()
    monkeypatch.setattr(accounts_service, "list_api_keys", refuse)
    resp = await client.get("/api/keys", headers=user.auth)
    assert resp.status == 409
    found = list(api_contract)
    api_contract.clear()
    assert len(found) == 1 and found[0].startswith("listKeys (GET /api/keys) → 409")


async def test_contract_check_reports_an_undocumented_code(client, backend, make_user, monkeypatch, api_contract):
    from imagehost.errors import NotFound

    async def gone(env, owner_id, image_id):
        raise NotFound("expired", code="upload_expired")  # a real code, but not one getImage answers

    user = await make_user()
    monkeypatch.setattr(images_service, "owned_image", gone)
    resp = await client.get("/api/images/abc", headers=user.auth)
    assert resp.status == 404
    found = list(api_contract)
    api_contract.clear()
    assert len(found) == 1 and "upload_expired" in found[0] and found[0].startswith("getImage")


async def test_contract_check_wants_an_envelope_where_no_operation_matches(backend, aiohttp_client, api_contract):
    app = install_contract_check(create_app(backend.settings))

    async def plain(request: web.Request) -> web.Response:
        return web.Response(text="teapot", status=418)

    app.router.add_get("/api/teapot", plain)
    client = await aiohttp_client(app)
    assert (await client.get("/api/no-such-thing")).status == 404  # the envelope: fine
    assert (await client.delete("/api/health")).status == 405  # the envelope: fine
    assert api_contract == []
    assert (await client.get("/api/teapot")).status == 418
    found = list(api_contract)
    api_contract.clear()
    assert found == ["GET /api/teapot → 418 text/plain: an error outside the JSON envelope"]


async def test_text_answer_of_upload_is_documented(client, backend, make_user, api_contract):
    user = await make_user()
    resp = await upload(client, user, image_bytes("PNG"), params={"format": "text"})
    assert resp.status == 201 and resp.content_type == "text/plain"
    resp = await upload(client, user, image_bytes("PNG"), headers={"Accept": "text/plain"})
    assert resp.status == 201 and re.fullmatch(r"https?://\S+\n", await resp.text())
    assert api_contract == []


# --------------------------------------------------------------------------- the reference page


async def test_reference_page_lists_every_operation_and_error_code(client, backend):
    doc = await _document(client)
    resp = await client.get("/api/docs")
    assert resp.status == 200 and resp.content_type == "text/html"
    html = await resp.text()
    for path, _method, op in _operations(doc):
        assert f'data-operation="{op["operationId"]}"' in html
        assert f"<code>{path}</code>" in html
    for code in CODES:
        assert f'id="code-{code}"' in html
    assert "Bearer" in html and "X-CSRF-Token" in html and "multipart/form-data" in html
    csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    # Nothing inline and nothing from another host: the only <script> without src is the
    # route table's JSON data block, which base.html carries on every page.
    scripts = re.findall(r"<script\b([^>]*)>", html)
    assert all('type="application/json"' in s or 'src="/static/' in s for s in scripts), scripts
    assert " style=" not in html and "http://" not in re.sub(r"<code>.*?</code>|<pre>.*?</pre>", "", html, flags=re.S)


async def test_reference_page_documents_error_codes_by_status(client, backend):
    html = await (await client.get("/api/docs")).text()
    row = re.search(r'<tr id="code-invalid_cursor">(.*?)</tr>', html, re.S)
    assert row is not None and "<td>400</td>" in row.group(1)
    row = re.search(r'<tr id="code-rate_limited">(.*?)</tr>', html, re.S)
    assert row is not None and "<td>429</td>" in row.group(1)


async def test_integrations_page_links_to_the_reference(client, backend, make_user):
    await logged_in_token(client, await make_user())
    resp = await client.get("/integrations")
    assert resp.status == 200
    assert 'href="/api/docs"' in await resp.text()


async def test_documents_follow_the_settings(backend):
    """Limits and types in the document are the server's own, not copies."""
    settings = backend.settings.model_copy(update={"max_upload_mb": 3, "allowed_image_types": ("image/png",)})
    app = create_app(settings)
    assert app[SETTINGS].max_upload_bytes == 3 * 1024 * 1024
    doc = build_document(app)
    body = doc["paths"]["/api/images/upload-url"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["size_bytes"]["maximum"] == 3 * 1024 * 1024
    assert body["properties"]["content_type"]["enum"] == ["image/png"]
