"""Prometheus metrics: `GET /metrics` in the text format, from a registry of the app's own.

What is counted, and where:
- every request, by route NAME (never the raw path: unknown paths all count as
  `unmatched`), method and status, with a latency histogram — in `metrics_middleware`,
  which sits outside the error middleware and so sees the final status;
- uploads by path (`streamed` = /api/upload, `presigned` = upload-url + confirm) and
  outcome (`accepted`, or the error code that refused it) — from the route name and the
  answer's error envelope, so no service code knows about metrics;
- 503 answers by error code (`storage_unavailable`, `database_unavailable`, …);
- the sweep's results, when the sweep loop calls `Metrics.record_sweep(result)`;
- the bytes stored (and reserved by uploads in flight): one `SUM` over
  `users.storage_used_bytes`, run when the metrics are scraped.

Who may read them: with `METRICS_TOKEN` set, only a request with
`Authorization: Bearer <METRICS_TOKEN>` (from any address; loopback gets no exception).
Without it, only a direct request from a loopback address or from one of
`TRUSTED_PROXIES` — "direct" meaning no `Forwarded`/`X-Forwarded-For`/`X-Real-IP`
header, so a request relayed by a reverse proxy on the same host is never let in.
Everyone else gets the same 404 as an unknown path.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import math
import time

from aiohttp import web
from loguru import logger
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from sqlalchemy import func, select

from .errors import CODES, NotFound
from .tables import users
from .typedefs import ENGINE, METRICS, METRICS_ALLOWED, SETTINGS, Handler

ROUTE = "metrics"  # the route's name in the table
UNMATCHED = "unmatched"  # the route label of every request no route matched
UNNAMED = "unnamed"
METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
UPLOAD_PATHS = {"api.upload": "streamed", "api.upload_url": "presigned", "api.confirm": "presigned"}
ACCEPTED = {"api.upload", "api.confirm"}  # a 201 from these is a stored image
FORWARDING_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
QUERY_TIMEOUT = 5.0

# No `_created` twin for every counter series: it doubles the output and Prometheus
# does not need it. (A process-wide switch; imagehost is the library's only user.)
disable_created_metrics()  # type: ignore[no-untyped-call]  # (unannotated in prometheus-client)


class Metrics:
    """The app's metrics, in a registry of its own (never the global default one: one
    process may build many apps, as the tests do)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "imagehost_http_requests",
            "HTTP requests answered, by route name.",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "imagehost_http_request_duration_seconds",
            "Time to answer, by route name (to the handler's response; a streamed body may take longer).",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.uploads = Counter(
            "imagehost_uploads",
            "Uploads by path (streamed, presigned) and outcome (accepted, or the error code that refused them).",
            ["path", "outcome"],
            registry=r,
        )
        self.unavailable = Counter(
            "imagehost_unavailable_responses", "503 answers by error code (a dependency is down).", ["code"], registry=r
        )
        self.sweep_runs = Counter("imagehost_sweep_runs", "Sweeps run by the server.", registry=r)
        self.sweep_items = Counter(
            "imagehost_sweep_items",
            "What the sweeps did: pending_removed, orphans_removed, orphans_failed.",
            ["result"],
            registry=r,
        )
        self.stored_bytes = Gauge(
            "imagehost_stored_bytes",
            "Bytes stored and reserved by uploads in flight (sum of users.storage_used_bytes), read at scrape "
            "time; NaN when the database could not be read.",
            registry=r,
        )
        ProcessCollector(registry=r)
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def record_sweep(self, result: dict[str, int]) -> None:
        """Count one sweep's result (`imagehost.images.sweep.sweep`'s dict)."""
        self.sweep_runs.inc()
        for name, count in result.items():
            if count:
                self.sweep_items.labels(name).inc(count)

    def observe(self, route: str, method: str, status: int, seconds: float, code: str | None) -> None:
        method = method if method in METHODS else "other"
        children = self._children.get((route, method, status))
        if children is None:  # the label lookups, once per route, method and status
            children = (self.requests.labels(route, method, str(status)), self.latency.labels(route, method))
            self._children[(route, method, status)] = children
        children[0].inc()
        children[1].observe(seconds)
        path = UPLOAD_PATHS.get(route)
        if path is not None:
            if status == 201 and route in ACCEPTED:
                self.uploads.labels(path, "accepted").inc()
            elif status >= 400:
                self.uploads.labels(path, code or f"http_{status}").inc()
        if status == 503:
            self.unavailable.labels(code or "unknown").inc()


def route_label(request: web.Request) -> str:
    """The route's name; one label for everything unmatched, so clients cannot grow the
    label set by asking for new paths."""
    resource = request.match_info.route.resource
    if resource is None:
        return UNMATCHED
    return resource.name or UNNAMED


def _error_code(response: web.StreamResponse) -> str | None:
    """The `code` of an error envelope (JSON answers only); only known codes."""
    if not isinstance(response, web.Response) or response.content_type != "application/json":
        return None
    body = response.body
    if not isinstance(body, bytes) or len(body) > 64 * 1024:
        return None
    try:
        code = json.loads(body).get("code")
    except (ValueError, AttributeError):
        return None
    return code if isinstance(code, str) and code in CODES else None


def may_read(request: web.Request) -> bool:
    settings = request.app[SETTINGS]
    token = settings.metrics_token
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())
    if any(h in request.headers for h in FORWARDING_HEADERS):
        return False
    try:
        peer = ipaddress.ip_address(request.remote or "")
    except ValueError:
        return False
    if peer.is_loopback:
        return True
    return any(peer in ipaddress.ip_network(net, strict=False) for net in settings.trusted_proxies)


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    route = route_label(request)
    if route == ROUTE:
        # The metrics token is not a user credential: the identify middleware must not see
        # it. The decision is taken here, on the original request.
        allowed = may_read(request)
        headers = request.headers.copy()
        headers.popall("Authorization", None)
        request = request.clone(headers=headers)
        request[METRICS_ALLOWED] = allowed
    start = time.perf_counter()
    status, code = 500, None
    try:
        response = await handler(request)
        status, code = response.status, (_error_code(response) if response.status >= 400 else None)
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except asyncio.CancelledError:
        status = 499  # the client went away
        raise
    finally:
        request.app[METRICS].observe(route, request.method, status, time.perf_counter() - start, code)


async def stored_bytes(request: web.Request) -> float:
    try:
        async with request.app[ENGINE].connect() as conn:
            total = await asyncio.wait_for(
                conn.scalar(select(func.coalesce(func.sum(users.c.storage_used_bytes), 0))), QUERY_TIMEOUT
            )
        return float(total or 0)
    except Exception as exc:  # the metrics must stay readable while the database is down
        logger.warning("metrics: could not read the stored bytes: {}", type(exc).__name__)
        return math.nan


async def metrics_handler(request: web.Request) -> web.Response:
    """GET /metrics: the text format, for Prometheus; 404 to whoever may not read it."""
    if not request.get(METRICS_ALLOWED):
        raise NotFound()
    metrics = request.app[METRICS]
    metrics.stored_bytes.set(await stored_bytes(request))
    return web.Response(
        body=generate_latest(metrics.registry),
        headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4, "Cache-Control": "no-store"},
    )
