"""The API contract, checked on every test: each response the suite receives from `/api`
is validated against the OpenAPI document (`imagehost/openapi.py`) with openapi-core.

A pytest plugin: conftest imports its fixture and hook (importing the module there and
naming it in `pytest_plugins` too would trip assertion rewriting). The `app` fixture
calls `install_contract_check(app)`, which puts a middleware at the front of the app's
middleware list (outermost: it sees exactly what the client gets). For each `/api`
request it checks that the status is documented for the operation, the content type is
one the document lists for that status, the JSON (or text) body matches its schema and
the documented required headers are there. A request no operation matches (an unknown
path, a method the route does not have) must get an error envelope. Each problem is
recorded; the test that produced it fails, naming the operation and the problem.

Only JSON and text bodies are validated: a streamed response (not a `web.Response`) is
checked for its status and content type only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from jsonschema import Draft202012Validator
from multidict import CIMultiDict, CIMultiDictProxy
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound
from openapi_core.validation.schemas.exceptions import InvalidSchemaValue

from imagehost.openapi import build_document

VIOLATIONS: list[str] = []
_VALIDATORS: dict[str, OpenAPI] = {}
_MESSAGE_LIMIT = 300


def is_api(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


# --------------------------------------------------------------------------- openapi-core adapters


@dataclass
class CheckedRequest:
    """What openapi-core needs of a request to find its operation (HEAD is checked as the
    GET it answers like)."""

    path: str
    method: str
    host_url: str = "http://testserver"
    body: bytes | None = None
    content_type: str = ""
    parameters: RequestParameters = field(default_factory=RequestParameters)


@dataclass
class CheckedResponse:
    status_code: int
    content_type: str
    data: bytes | None
    headers: CIMultiDictProxy[str]


def _adapt(request: web.Request, response: web.StreamResponse) -> tuple[CheckedRequest, CheckedResponse]:
    method = "get" if request.method == "HEAD" else request.method.lower()
    body = response.body if isinstance(response, web.Response) else None
    data = body if isinstance(body, bytes) else None
    headers = CIMultiDictProxy(CIMultiDict(response.headers))
    return CheckedRequest(request.path, method), CheckedResponse(response.status, response.content_type, data, headers)


# --------------------------------------------------------------------------- checking


class ContractChecker:
    def __init__(self, doc: dict[str, Any]) -> None:
        # Relative server: the test client talks to 127.0.0.1 on a random port.
        self.doc = {**doc, "servers": [{"url": "/"}]}
        key = json.dumps(self.doc, sort_keys=True)
        if key not in _VALIDATORS:
            _VALIDATORS[key] = OpenAPI.from_dict(self.doc)
        self.openapi = _VALIDATORS[key]
        error_schema = {**doc["components"]["schemas"]["Error"], "$defs": {}}
        self.envelope = Draft202012Validator(error_schema)

    def operation(self, request: web.Request) -> str:
        resource = request.match_info.route.resource
        method = "get" if request.method == "HEAD" else request.method.lower()
        if resource is not None:
            op = self.doc["paths"].get(resource.canonical, {}).get(method)
            if op is not None:
                return f"{op['operationId']} ({request.method} {resource.canonical})"
        return f"{request.method} {request.path}"

    def problems(self, request: web.Request, response: web.StreamResponse) -> Iterator[str]:
        req, resp = _adapt(request, response)
        streamed = not isinstance(response, web.Response)
        if streamed or not _validated_type(resp.content_type):
            resp.data = None
        for error in self.openapi.iter_response_errors(req, resp):  # type: ignore[arg-type]
            if isinstance(error, (PathNotFound, OperationNotFound)):
                yield from self.unrouted(resp)
                return
            if resp.data is None and "Missing response data" in str(error):
                continue  # a streamed or binary body: status and type only
            yield f"{resp.status_code} {resp.content_type}: {_describe(error)}"

    def unrouted(self, resp: CheckedResponse) -> Iterator[str]:
        """No documented operation: the answer must be an error envelope."""
        if resp.status_code < 400:
            yield f"{resp.status_code} from an undocumented operation"
            return
        if resp.content_type != "application/json" or resp.data is None:
            yield f"{resp.status_code} {resp.content_type}: an error outside the JSON envelope"
            return
        for error in self.envelope.iter_errors(json.loads(resp.data)):
            yield f"{resp.status_code}: not an error envelope: {_clip(error.message)}"


def _validated_type(content_type: str) -> bool:
    return content_type == "application/json" or content_type.startswith("text/")


def _clip(text: str) -> str:
    return text if len(text) <= _MESSAGE_LIMIT else text[:_MESSAGE_LIMIT] + "…"


def _describe(error: BaseException) -> str:
    cause = error.__cause__
    if isinstance(cause, InvalidSchemaValue):
        details = [
            f"at /{'/'.join(str(p) for p in e.absolute_path)}: {_clip(e.message)}"  # type: ignore[attr-defined]
            for e in cause.schema_errors
        ]
        return "the body does not match the schema: " + "; ".join(details)
    if cause is not None:
        return f"{error}: {_clip(str(cause))}"
    return _clip(str(error) or type(error).__name__)


def install_contract_check(app: web.Application) -> web.Application:
    """Validate every /api response of this app against its own OpenAPI document; returns
    the app. Call before the app starts (its middleware list is frozen then)."""
    checker = ContractChecker(build_document(app))

    @web.middleware
    async def contract_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            if is_api(request.path):
                VIOLATIONS.append(f"{checker.operation(request)}: {exc.status} raised past the error middleware")
            raise
        if is_api(request.path):
            for problem in checker.problems(request, response):
                VIOLATIONS.append(f"{checker.operation(request)} → {problem}")
        return response

    app.middlewares.insert(0, contract_middleware)
    return app


# --------------------------------------------------------------------------- pytest


def _fail_on_violations(when: str) -> None:
    if VIOLATIONS:
        found = list(dict.fromkeys(VIOLATIONS))
        VIOLATIONS.clear()
        pytest.fail(
            f"{len(found)} response(s) {when} break the API contract (imagehost/openapi.py):\n  " + "\n  ".join(found),
            pytrace=False,
        )


@pytest.fixture(autouse=True)
def api_contract() -> Iterator[list[str]]:
    """Fails the test if any /api response it received broke the contract."""
    VIOLATIONS.clear()
    yield VIOLATIONS
    _fail_on_violations("during set-up or tear-down")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    # The same check right after the test body, so the test itself fails (not its tear-down).
    result = yield
    _fail_on_violations("during the test")
    return result
