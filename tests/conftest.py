"""Test harness: the real app, built by the real factory, on four backend tiers.

    sqlite-local   SQLite file + local folder
    sqlite-s3      SQLite file + S3 (a moto server on a free loopback port)
    pg-local       PostgreSQL (TEST_DATABASE_URL) + local folder
    pg-s3          PostgreSQL + S3
    s3-strict      SQLite + S3 on LocalStack, a strict peer (opt-in, see below)

A test that takes the `backend` fixture runs on the first four unless marked
`@pytest.mark.tiers(...)`. PostgreSQL tests get a database of their own for the run
(created from TEST_DATABASE_URL, migrated once, dropped at the end) and empty tables
per test. With CI=true a skipped test fails the run.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import boto3
import psycopg
import pytest
from botocore.config import Config as BotoConfig
from sqlalchemy import func, select
from yarl import URL

from imagehost.accounts import store as apikeys
from imagehost.accounts.service import register_user
from imagehost.app import create_app
from imagehost.config import Settings, load_settings
from imagehost.db import apply_migrations, transaction
from imagehost.images import hotwire
from imagehost.images.hotwire import HotProtocol
from imagehost.tables import metadata
from imagehost.typedefs import ENGINE, ENV, STORAGE

# The contract check (its autouse fixture and hook come with it): every /api response is
# validated against the OpenAPI document.
from .contract import api_contract, install_contract_check, pytest_runtest_call  # noqa: F401

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SECRET = "test-secret-key-" + "x" * 40
S3_KEY_ID, S3_SECRET = "test", "test"  # moto takes any; LocalStack checks signatures with "test"


# --------------------------------------------------------------------------- tiers
# Everything about tiers is here: what each one is made of, which tests run on which, how
# a test is classified, the run order, and the per-tier report (with CI's rules). A new
# tier is a row in TIERS, plus its peer in `make_settings` if it needs a new one.


@dataclass(frozen=True)
class Tier:
    name: str
    db: str  # "sqlite" | "pg"
    storage: str  # "local" | "s3"


TIERS = {
    t.name: t
    for t in (
        Tier("sqlite-local", "sqlite", "local"),
        Tier("sqlite-s3", "sqlite", "s3"),
        Tier("pg-local", "pg", "local"),
        Tier("pg-s3", "pg", "s3"),
        Tier("s3-strict", "sqlite", "s3"),  # S3 on LocalStack, a strict peer: only where a test names it
    )
}
STRICT_TIER = "s3-strict"
# A test that takes `backend` and has no `tiers` marker runs on these (not on the strict
# peer: it would double the S3 tests for nothing).
ALL_TIERS = tuple(t for t in TIERS if t != STRICT_TIER)
BROWSER_DIR = Path(__file__).resolve().parent / "browser"
REPORT_ROWS = ("unit", *TIERS, "browser")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("tiers")
        tiers = marker.args if marker else ALL_TIERS
        unknown = [t for t in tiers if t not in TIERS]
        if unknown:
            raise pytest.UsageError(f"{metafunc.definition.nodeid}: unknown tier(s) {unknown}; known: {list(TIERS)}")
        metafunc.parametrize("tier", tiers, indirect=True)


@pytest.fixture
def tier(request: pytest.FixtureRequest) -> str:
    return request.param


def is_browser(item: pytest.Item) -> bool:
    return Path(item.path).resolve().is_relative_to(BROWSER_DIR)


def tier_of(item: pytest.Item) -> str:
    """The report row of a test: browser, the tier it runs on, or unit (no backend)."""
    if is_browser(item):
        return "browser"
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("tier", "unit") if callspec is not None else "unit"


_tier_by_nodeid: dict[str, str] = {}
_tier_counts: dict[str, Counter] = {}
_skips: list[str] = []


def pytest_collection_modifyitems(config, items) -> None:
    """Browser journeys run last: Playwright's sync API keeps an event loop running in
    the main thread for the rest of the session, where pytest-asyncio cannot start one."""
    items.sort(key=is_browser)
    _tier_by_nodeid.update((item.nodeid, tier_of(item)) for item in items)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        outcome = report.outcome
        _tier_counts.setdefault(_tier_by_nodeid.get(report.nodeid, "unit"), Counter())[outcome] += 1
        if outcome == "skipped":
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            _skips.append(f"{report.nodeid}: {reason}")


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    tr = terminalreporter
    tr.section("tests per tier")
    for t in REPORT_ROWS:
        c = _tier_counts.get(t, Counter())
        tr.write_line(f"{t:<13} passed={c['passed']:<4} failed={c['failed']:<4} skipped={c['skipped']}")
    if CI and _skips:
        tr.write_line(f"CI: {len(_skips)} test(s) skipped, which fails the run in CI:", red=True)
        for s in _skips[:20]:
            tr.write_line(f"  {s}", red=True)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if CI and exitstatus == 0:
        ran = {t for t, c in _tier_counts.items() if c["passed"]}
        missing = [t for t in TIERS if t not in ran]
        if _skips or missing:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


# --------------------------------------------------------------------------- peers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def moto_endpoint() -> Any:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def s3_admin(moto_endpoint: str):
    """A plain boto3 client, for the tests to look inside the bucket."""
    return s3_client(moto_endpoint)


# The strict S3 peer (imagehost issue 9): LocalStack's S3, which enforces a presigned
# URL's signature, expiry and signed headers, and the bucket's CORS rule. Installed by
# tests/peers/install-localstack.sh (`make test` runs it); tests opt in with the tier.


def s3_peer_fixtures(tier: str) -> tuple[str, str]:
    """The fixtures giving a tier's S3 endpoint and its admin client."""
    return ("strict_endpoint", "strict_admin") if tier == STRICT_TIER else ("moto_endpoint", "s3_admin")


def s3_client(endpoint: str, region: str = "us-east-1") -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=S3_KEY_ID,
        aws_secret_access_key=S3_SECRET,
        config=BotoConfig(s3={"addressing_style": "path"}),
    )


@pytest.fixture(scope="session")
def strict_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from .peers.localstack import LocalStack, PeerUnavailable

    try:
        peer = LocalStack.start(tmp_path_factory.mktemp("localstack"))
    except PeerUnavailable as exc:
        message = f"s3-strict tier: {exc}"
        if CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    yield peer.endpoint
    peer.stop()


@pytest.fixture(scope="session")
def strict_admin(strict_endpoint: str) -> Any:
    return s3_client(strict_endpoint)


@pytest.fixture(scope="session")
def pg_database() -> Any:
    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        pytest.skip("PostgreSQL tier: TEST_DATABASE_URL is not set")
    name = f"imagehost_test_{os.getpid()}_{secrets.token_hex(3)}"
    plain = base.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(plain)
    url = urlunsplit(parts._replace(path="/" + name))
    apply_migrations(load_settings(_env_file=None, database_url=url, secret_key=SECRET))
    yield url
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _truncate_pg(url: str) -> None:
    tables = ", ".join(t.name for t in metadata.sorted_tables)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {tables} CASCADE")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    apply_migrations(load_settings(_env_file=None, database_url=f"sqlite:///{path}", secret_key=SECRET))
    return path


# --------------------------------------------------------------------------- backend


@dataclass
class Backend:
    tier: str
    settings: Settings
    s3: Any = None
    extra: dict = field(default_factory=dict)

    @property
    def db(self) -> str:
        return TIERS[self.tier].db

    @property
    def storage_kind(self) -> str:
        return TIERS[self.tier].storage

    def objects(self) -> set[str]:
        """Every object in storage (temp files of the local backend included)."""
        if self.storage_kind == "s3":
            keys: set[str] = set()
            for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.settings.r2_bucket_name):
                keys.update(o["Key"] for o in page.get("Contents", []))
            return keys
        root = self.settings.local_storage_path
        return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} if root.exists() else set()

    def incomplete_multipart_uploads(self) -> int:
        if self.storage_kind != "s3":
            return 0
        resp = self.s3.list_multipart_uploads(Bucket=self.settings.r2_bucket_name)
        return len(resp.get("Uploads", []))

    def read_object(self, key: str) -> bytes:
        if self.storage_kind == "s3":
            return self.s3.get_object(Bucket=self.settings.r2_bucket_name, Key=key)["Body"].read()
        return (self.settings.local_storage_path / key).read_bytes()


def make_settings(tier: str, tmp_path: Path, request: pytest.FixtureRequest, **overrides: Any) -> Settings:
    db, storage = TIERS[tier].db, TIERS[tier].storage
    values: dict[str, Any] = {
        "_env_file": None,
        "secret_key": SECRET,
        "data_dir": tmp_path / "data",
        "public_base_url": "http://localhost:8000",
        "bcrypt_rounds": 4,
        "gc_interval_seconds": 0,
        "log_level": "WARNING",
        # Tests register several accounts through the API and pages: open registration,
        # as before REGISTRATION_MODE (whose default, after the first account, is invite).
        # Through the older name, so a test's `registration_open=False` still closes it.
        "registration_open": True,
    }
    if db == "sqlite":
        path = tmp_path / "imagehost.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        values["database_url"] = f"sqlite:///{path}"
    else:
        url = request.getfixturevalue("pg_database")
        _truncate_pg(url)
        values["database_url"] = url
    if storage == "local":
        values.update(storage_backend="local", local_storage_path=tmp_path / "images")
    else:
        endpoint_fixture, admin_fixture = s3_peer_fixtures(tier)
        endpoint = request.getfixturevalue(endpoint_fixture)
        bucket = "ih-" + secrets.token_hex(6)
        request.getfixturevalue(admin_fixture).create_bucket(Bucket=bucket)
        values.update(
            storage_backend="s3",
            s3_endpoint_url=endpoint,
            r2_access_key_id=S3_KEY_ID,
            r2_secret_access_key=S3_SECRET,
            r2_bucket_name=bucket,
            r2_public_url=f"{endpoint}/{bucket}",
            s3_region="us-east-1",  # the peers want a real region to create buckets; R2 uses "auto"
        )
    values.update(overrides)
    return load_settings(**values)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Override in a test module (or with indirect parametrisation) to change settings."""
    return {}


@pytest.fixture
def backend(tier: str, tmp_path: Path, request: pytest.FixtureRequest, settings_overrides: dict) -> Backend:
    settings = make_settings(tier, tmp_path, request, **settings_overrides)
    s3 = request.getfixturevalue(s3_peer_fixtures(tier)[1]) if settings.storage_backend == "s3" else None
    return Backend(tier=tier, settings=settings, s3=s3)


@pytest.fixture
async def app(backend: Backend):
    return install_contract_check(create_app(backend.settings))


@pytest.fixture
async def client(aiohttp_client, app, request: pytest.FixtureRequest):
    """The test client, talking to the app as `imagehost serve` listens: through
    `HotProtocol` (images/hotwire.py), which answers hot `/i/` requests itself and hands
    everything else to aiohttp — so every test also checks that hand-over. A test marked
    `aiohttp_only` talks to aiohttp directly (`client.server.port` always does)."""
    test_client = await aiohttp_client(app)
    if request.node.get_closest_marker("aiohttp_only") is not None:
        yield test_client
        return
    server, live = test_client.server, set[HotProtocol]()
    listener = await hotwire.listen(server.runner.server, app, live, server.host, 0)
    server._root = URL(f"http://{server.host}:{listener.sockets[0].getsockname()[1]}")
    try:
        yield test_client
    finally:
        listener.close()
        for protocol in list(live):
            protocol.close_idle()  # aiohttp closes the others when the test server stops


@dataclass
class Account:
    id: str
    username: str
    email: str
    password: str
    api_key: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


@pytest.fixture
def make_user(client):
    """Create a user with an API key, through the same code the API uses."""
    counter = iter(range(1, 10_000))

    async def make(username: str | None = None, password: str = "correct horse battery") -> Account:
        n = next(counter)
        username = username or f"user{n}_{secrets.token_hex(2)}"
        app = client.server.app
        user = await register_user(app[ENV], username, f"{username}@example.com", password)
        async with transaction(app[ENGINE]) as conn:
            _key, secret = await apikeys.create_key(conn, user.id, "tests")
        return Account(user.id, user.username, user.email, password, secret)

    return make


@pytest.fixture
def db_count(client):
    """Rows in a table (optionally filtered), read through the app's own engine."""

    async def count(table: str, **where: Any) -> int:
        t = metadata.tables[table]
        q = select(func.count()).select_from(t)
        for k, v in where.items():
            q = q.where(t.c[k] == v)
        async with client.server.app[ENGINE].connect() as conn:
            return (await conn.execute(q)).scalar_one()

    return count


@pytest.fixture
def storage(client):
    return client.server.app[STORAGE]
