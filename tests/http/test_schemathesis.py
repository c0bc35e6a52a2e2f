"""schemathesis against the real app: every operation of the OpenAPI document, fuzzed
from its own schemas, must never answer a server error and must answer what the document
says (status, content type, body schema).

The app runs on a live server in a thread, on a loopback socket the test binds itself;
every request goes to that socket (checked on each response). Deterministic
(`derandomize`) and bounded: a fixed number of examples per operation, no shrinking, no
example database. One tier: the contract does not depend on the backend, and the local
tier has every operation (the signed PUT exists only with local storage).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from imagehost.accounts.identity import SESSION_COOKIE
from imagehost.app import create_app
from tests.contract import install_contract_check
from tests.support.uploads import image_bytes

pytestmark = pytest.mark.tiers("sqlite-local")

EXAMPLES_PER_OPERATION = 40
EXAMPLES_FROM_DOCUMENT = 5
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@contextmanager
def live_server(app) -> Iterator[str]:
    """Serve `app` on 127.0.0.1 (a port the OS picks) from a thread with its own loop."""
    from aiohttp import web

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="live-server", daemon=True)
    thread.start()
    runner = web.AppRunner(app, access_log=None)

    async def start() -> None:
        await runner.setup()
        await web.SockSite(runner, sock).start()

    try:
        asyncio.run_coroutine_threadsafe(start(), loop).result(60)
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        sock.close()


def credentials(base_url: str) -> tuple[str, str]:
    """An account, its JWT and an API key, made through the API itself."""
    account = {"username": "fuzzer", "email": "fuzzer@example.com", "password": "correct horse battery"}
    with requests.Session() as http:
        assert http.post(f"{base_url}/api/auth/register", json=account, timeout=30).status_code == 201
        login = {"username": account["username"], "password": account["password"]}
        jwt = http.post(f"{base_url}/api/auth/login", json=login, timeout=30).json()["access_token"]
        key = http.post(
            f"{base_url}/api/keys", json={"name": "fuzz"}, headers={"Authorization": f"Bearer {jwt}"}, timeout=30
        )
        assert key.status_code == 201
        return jwt, key.json()["secret"]


def fuzz(strategy, examples: int, base_url: str, auth: dict[str, str], seen: Counter[int]) -> None:
    """Run `examples` cases drawn from `strategy`; raises on the first failing one."""

    @given(case=strategy)
    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case) -> None:
        # Call like a script: a bearer credential and no cookie (the session + CSRF
        # alternative is the browser's, covered by the suite under the contract check).
        if case.cookies:
            case.cookies.pop(SESSION_COOKIE, None)
        if case.headers:
            case.headers.pop("X-CSRF-Token", None)
        response = case.call_and_validate(
            base_url=base_url, headers=auth, checks=CHECKS, allow_redirects=False, timeout=30
        )
        assert response.request.url.startswith(base_url + "/"), response.request.url  # loopback only
        seen[response.status_code] += 1

    run()


def test_schemathesis_finds_nothing_wrong(backend, record_property):
    app = install_contract_check(create_app(backend.settings))
    with live_server(app) as base_url:
        jwt, api_key = credentials(base_url)
        doc = requests.get(f"{base_url}/api/openapi.json", timeout=30).json()
        schema = schemathesis.openapi.from_dict(doc)
        failures: list[str] = []
        statuses: dict[str, Counter[int]] = {}
        started = time.monotonic()
        operations = [result.ok() for result in schema.get_all_operations()]
        # Registration first, so the document's login example finds its account.
        operations.sort(key=lambda op: op.label != "POST /api/auth/register")
        for operation in operations:
            # A login where the operation allows it: API keys cannot create API keys.
            security = operation.definition.raw.get("security", [])
            if not security:
                auth = {}
            elif {"apiKey": []} in security:
                auth = {"Authorization": f"Bearer {api_key}"}
            else:
                auth = {"Authorization": f"Bearer {jwt}"}
            seen = statuses.setdefault(operation.label, Counter())

            try:
                examples = operation.get_strategies_from_examples()  # the document's own examples first
                if examples:
                    fuzz(st.one_of(examples), EXAMPLES_FROM_DOCUMENT, base_url, auth, seen)
                fuzz(operation.as_strategy(), EXAMPLES_PER_OPERATION, base_url, auth, seen)
            except Exception as exc:  # one failing operation must not hide the others
                failures.append(f"{operation.label}: {exc}")
        elapsed = time.monotonic() - started

    examples = sum(sum(c.values()) for c in statuses.values())
    summary = {label: dict(sorted(c.items())) for label, c in statuses.items()}
    record_property("schemathesis_examples", examples)
    record_property("schemathesis_seconds", round(elapsed, 1))
    record_property("schemathesis_statuses", summary)
    print(f"schemathesis: {examples} examples over {len(statuses)} operations in {elapsed:.1f}s")
    for label, counts in summary.items():
        print(f"  {label}: {counts}")
    assert len(statuses) == sum(len(item) for item in doc["paths"].values())  # every operation ran
    assert not failures, "\n\n".join(failures)
    assert all(statuses.values()), summary  # and each one sent requests


# --------------------------------------------------------------------------- what it found


async def test_signed_put_with_a_non_ascii_signature_is_refused_not_a_500(client, backend, make_user):
    """schemathesis's first find: `hmac.compare_digest` raises TypeError on a non-ASCII str."""
    user = await make_user()
    data = image_bytes("PNG")
    ticket = await client.post(
        "/api/images/upload-url", json={"content_type": "image/png", "size_bytes": len(data)}, headers=user.auth
    )
    assert ticket.status == 201
    parts = urlsplit((await ticket.json())["upload_url"])
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    resp = await client.put(
        parts.path, params={**query, "sig": "é" + query["sig"][1:]}, data=data, headers={"Content-Type": "image/png"}
    )
    assert resp.status == 403
    assert (await resp.json())["code"] == "upload_url_invalid"
    assert backend.objects() == set()  # nothing written
