"""`/i/` below aiohttp (images/hotwire.py): the connection protocol `imagehost serve`
listens with answers hot images itself and gives everything else to aiohttp. Each test
talks raw HTTP/1.1 over real sockets to a listener built like `HotSite`'s, in front of
the test app's own aiohttp server, and compares with what aiohttp alone answers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiohttp import web
from loguru import logger
from sqlalchemy import delete

from imagehost.app import create_app
from imagehost.images import hotwire
from imagehost.tables import images
from imagehost.typedefs import ENGINE, STORAGE
from tests.http.test_metrics import samples, value
from tests.support.uploads import image_bytes, upload, uploaded

pytestmark = pytest.mark.tiers("sqlite-local", "pg-local")
DEADLINE = 10.0  # seconds to wait for what must happen (never a measure of speed)


@dataclass
class Answer:
    head: bytes  # the status line and header lines, Date and X-Request-ID values blanked
    status: int
    headers: dict[str, str]
    body: bytes


async def read_answer(reader: asyncio.StreamReader, head_only: bool = False) -> Answer:
    raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), DEADLINE)
    lines = raw[:-4].decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, val = line.partition(":")
        assert name.lower() not in headers, line
        headers[name.lower()] = val.strip()
    status = int(lines[0].split()[1])
    length = 0 if head_only or status in (204, 304) else int(headers.get("content-length", "0"))
    body = await asyncio.wait_for(reader.readexactly(length), DEADLINE)
    head = re.sub(rb"(?m)^(Date|X-Request-ID): [^\r]*", rb"\1: -", raw)
    return Answer(head, status, headers, body)


Pair = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@dataclass
class Wire:
    port: int  # the hot listener
    plain: int  # the same app behind aiohttp alone (the test server)
    live: set[hotwire.HotProtocol]
    answered: list[int]  # statuses the hot path wrote itself

    @contextlib.asynccontextmanager
    async def connect(self, port: int | None = None) -> AsyncIterator[Pair]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port or self.port)
        try:
            yield reader, writer
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def protocol_of(self, writer: asyncio.StreamWriter) -> hotwire.HotProtocol:
        """The server side of the client connection `writer` writes to."""
        ours = writer.get_extra_info("sockname")
        (protocol,) = [p for p in self.live if p.transport and p.transport.get_extra_info("peername") == ours]
        return protocol

    async def ask(self, raw: bytes, port: int | None = None, head_only: bool = False) -> Answer:
        async with self.connect(port) as (reader, writer):
            writer.write(raw)
            return await read_answer(reader, head_only)


@pytest.fixture
async def wire(client, monkeypatch) -> AsyncIterator[Wire]:
    answered: list[int] = []
    real = hotwire.hot_wire

    def counting(*args, **kwargs):
        status, data, length = real(*args, **kwargs)
        answered.append(status)
        return status, data, length

    monkeypatch.setattr(hotwire, "hot_wire", counting)
    live: set[hotwire.HotProtocol] = set()
    listener = await hotwire.listen(client.server.runner.server, client.server.app, live, "127.0.0.1", 0)
    try:
        yield Wire(listener.sockets[0].getsockname()[1], client.server.port, live, answered)
    finally:
        listener.close()
        for protocol in list(live):
            if protocol.transport is not None:
                protocol.transport.close()


def get(path: str, method: str = "GET", **headers: str) -> bytes:
    fields = (f"{k.replace('_', '-')}: {v}" for k, v in headers.items())
    lines = [f"{method} {path} HTTP/1.1", "Host: localhost", *fields]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def hot_image(client, make_user, wire: Wire, **params: str) -> tuple[str, bytes]:
    """An uploaded image's path, hot after one answer (the first may be the ordinary path's)."""
    user = await make_user()
    data = image_bytes("JPEG", (64, 48), noise=True)
    resp = await upload(client, user, data, "photo.jpg", "image/jpeg", params=params)
    assert resp.status == 201
    path = "/i/" + (await resp.json())["public_url"].rsplit("/", 1)[-1]
    first = await wire.ask(get(path))
    assert first.status == 200 and first.body == data
    wire.answered.clear()
    return path, data


async def test_answers_are_the_hot_middlewares_bytes_and_the_ordinary_paths_headers(client, make_user, wire):
    """Byte for byte what aiohttp with the hot middleware writes (but the Date and the
    request id), and the same headers as the ordinary FileResponse path, for GET, HEAD
    and both conditional forms, and an expiring image's Cache-Control."""
    for params in ({}, {"expires_in": "10m"}):
        path, data = await hot_image(client, make_user, wire, **params)
        etag = (await wire.ask(get(path))).headers["etag"]
        last_modified = (await wire.ask(get(path))).headers["last-modified"]
        for method, extra, status in (
            ("GET", {}, 200),
            ("HEAD", {}, 200),
            ("GET", {"If-None-Match": etag}, 304),
            ("GET", {"If-None-Match": f'"other", W/{etag}'}, 304),
            ("GET", {"If-None-Match": '"other"'}, 200),
            ("GET", {"If-Modified-Since": last_modified}, 304),
            ("GET", {"If-Modified-Since": "Thu, 01 Jan 2015 00:00:00 GMT"}, 200),
            ("GET", {"X-Request-ID": "trace-me.42"}, 200),
        ):
            wire.answered.clear()
            head_only = method == "HEAD"
            fast = await wire.ask(get(path, method, **extra), head_only=head_only)
            assert wire.answered == [status], (method, extra)
            middleware = await wire.ask(get(path, method, **extra), port=wire.plain, head_only=head_only)
            ordinary = await wire.ask(get(path, method, Cookie="unrelated=1", **extra), head_only=head_only)
            assert wire.answered == [status]  # neither of those was ours
            assert fast.head == middleware.head, (method, extra)
            expected = (status, data if status == 200 and not head_only else b"")
            assert (fast.status, fast.body) == (ordinary.status, ordinary.body) == expected
            assert {k: v for k, v in fast.headers.items() if k not in ("date", "x-request-id")} == {
                k: v for k, v in ordinary.headers.items() if k not in ("date", "x-request-id")
            }
            if "X-Request-ID" in extra:
                assert fast.headers["x-request-id"] == "trace-me.42"
            if params:
                assert 590 <= int(fast.headers["cache-control"].removeprefix("public, max-age=")) <= 600


async def test_pipelined_requests_are_answered_in_order_and_the_connection_comes_back(client, make_user, wire):
    """Hot and ordinary requests in one write: every answer in the order asked, whoever
    writes it; once aiohttp has answered its part, hot requests are ours again."""
    path, data = await hot_image(client, make_user, wire)
    asked = [
        (get(path), 200, data),
        (get("/api/health"), 200, None),
        (get(path, "HEAD"), 200, b""),
        (get("/i/nothing-here.png"), 404, None),
        (get(path), 200, data),
        (get(path, Cookie="a=b"), 200, data),
        (get(path), 200, data),
    ]
    async with wire.connect() as (reader, writer):
        writer.write(b"".join(raw for raw, _, _ in asked))
        for raw, status, body in asked:
            answer = await read_answer(reader, head_only=raw.startswith(b"HEAD"))
            assert answer.status == status, raw
            if body is not None:
                assert answer.body == body
        assert wire.answered[:1] == [200]  # the first one at least, before aiohttp had any
        protocol = wire.protocol_of(writer)
        assert protocol.handler is not None and not protocol.given
        before = len(wire.answered)
        for _ in range(3):
            writer.write(get(path))
            assert (await read_answer(reader)).body == data
        assert len(wire.answered) == before + 3


async def test_a_request_with_a_body_gives_aiohttp_the_rest_of_the_connection(client, make_user, wire):
    path, data = await hot_image(client, make_user, wire)
    body = b'{"username": "x"}'
    post = (
        b"POST /api/auth/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    async with wire.connect() as (reader, writer):
        writer.write(get(path) + post + get(path))
        assert (await read_answer(reader)).body == data
        refused = await read_answer(reader)  # aiohttp read the body: no password
        assert refused.status == 422 and refused.body == (await wire.ask(post, port=wire.plain)).body
        assert (await read_answer(reader)).body == data
        writer.write(get(path))
        assert (await read_answer(reader)).body == data
        assert wire.protocol_of(writer).given
    assert wire.answered == [200]  # only the first: after the body, every answer is aiohttp's


async def test_a_head_in_pieces_is_answered_once_whole(client, make_user, wire):
    path, data = await hot_image(client, make_user, wire)
    raw = get(path, If_None_Match='"nope"')
    async with wire.connect() as (reader, writer):
        for piece in (raw[:5], raw[5:23], raw[23:-1], raw[-1:]):
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.05)
        assert (await read_answer(reader)).body == data
    assert wire.answered == [200]


@pytest.mark.parametrize(
    "raw",
    [
        b"GET {path} HTTP/1.1\r\nHost : localhost\r\n\r\n",  # a space before the colon
        b"GET {path} HTTP/1.1\r\nHost localhost\r\n\r\n",  # no colon
        b"GET {path} HTTP/1.1\r\nX-Request-ID: a\r\nX-Request-ID: b\r\n\r\n",  # repeated
        b"GET {path} HTTP/1.1\r\nHost: localhost\r\n folded\r\n\r\n",  # obsolete line folding
        b"GET {path} HTTP/1.1\nHost: localhost\n\n",  # bare line ends
        b"GET {path} HTTP/1.1\r\nHost: caf\xc3\xa9\r\n\r\n",  # not ASCII
        b"GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n",
        b"GET {path}?v=1 HTTP/1.1\r\nHost: localhost\r\n\r\n",
        b"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        b"GET {path} HTTP/1.1\r\nHost: localhost\r\nRange: bytes=0-9\r\n\r\n",
        b"GET {path} HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"get {path} HTTP/1.1\r\nHost: localhost\r\n\r\n",
        b"GET http://localhost{path} HTTP/1.1\r\nHost: localhost\r\n\r\n",
        b"GET {path} HTTP/1.1\r\n" + b"X-Long: " + b"a" * 9000 + b"\r\n\r\n",
    ],
)
async def test_what_is_not_parsed_strictly_gets_aiohttps_own_answer(client, make_user, wire, raw):
    path, _data = await hot_image(client, make_user, wire)
    raw = raw.replace(b"{path}", path.encode())
    ours = await wire.ask(raw)
    theirs = await wire.ask(raw, port=wire.plain)
    assert (ours.status, ours.body) == (theirs.status, theirs.body)
    assert wire.answered == []


async def test_an_image_deleted_elsewhere_is_gone_on_the_next_request_of_an_open_connection(client, make_user, wire):
    path, data = await hot_image(client, make_user, wire)
    async with wire.connect() as (reader, writer):
        writer.write(get(path))
        assert (await read_answer(reader)).body == data
        key = path.removeprefix("/i/")
        async with client.server.app[ENGINE].begin() as conn:  # another process: the row, then the file
            await conn.execute(delete(images).where(images.c.storage_key == key))
        os.remove(client.server.app[STORAGE].path(key))  # type: ignore[attr-defined]
        writer.write(get(path))
        gone = await read_answer(reader)
    assert (gone.status, gone.body) == (404, (await wire.ask(get(path), port=wire.plain)).body)
    assert wire.answered == [200]


async def test_hot_answers_are_counted_and_logged(client, make_user, wire):
    path, _data = await hot_image(client, make_user, wire)
    lines: list[dict] = []
    sink = logger.add(lambda m: lines.append(m.record["extra"] | {"message": m.record["message"]}), level="INFO")
    try:
        before = samples(await (await client.get("/metrics")).text())
        for raw in (get(path), get(path, "HEAD"), get(path, X_Request_ID="abc-1")):
            await wire.ask(raw, head_only=raw.startswith(b"HEAD"))
        after = samples(await (await client.get("/metrics")).text())
    finally:
        logger.remove(sink)
    assert wire.answered == [200, 200, 200]
    for method, n in (("GET", 2), ("HEAD", 1)):
        labels = {"route": "image_file", "method": method, "status": "200"}
        assert (
            value(after, "imagehost_http_requests_total", **labels)
            - value(before, "imagehost_http_requests_total", **labels)
            == n
        )
    ours = [line for line in lines if line.get("path") == path]
    assert [(line["method"], line["status"]) for line in ours] == [("GET", 200), ("HEAD", 200), ("GET", 200)]
    assert ours[2]["request_id"] == "abc-1" and ours[2]["user_id"] is None


async def test_an_idle_connection_is_closed_after_the_keepalive_time(client, make_user, wire, monkeypatch):
    path, data = await hot_image(client, make_user, wire)
    monkeypatch.setattr(hotwire, "KEEPALIVE", 0.3)
    async with wire.connect() as (reader, writer):  # no request at all
        assert await asyncio.wait_for(reader.read(), DEADLINE) == b""
    async with wire.connect() as (reader, writer):  # after hot answers
        for _ in range(2):
            writer.write(get(path))
            assert (await read_answer(reader)).body == data
        assert await asyncio.wait_for(reader.read(), DEADLINE) == b""


async def test_a_client_that_does_not_read_is_not_read_from(client, make_user, wire):
    """Flow control: while answers pile up unread, the connection stops reading
    requests; once the client reads, every answer arrives, whole and in order."""
    user = await make_user()
    data = image_bytes("PNG", (256, 256), noise=True)  # ≈ 200 KB: answered from memory
    img = await uploaded(client, user, data, "big.png")
    path = "/i/" + img["public_url"].rsplit("/", 1)[-1]
    await wire.ask(get(path))
    count = 300  # ≈ 60 MB of answers: more than the kernel's socket buffers hold
    async with wire.connect() as (reader, writer):
        writer.write(get(path) * count)
        protocol = wire.protocol_of(writer)
        for _ in range(int(DEADLINE / 0.05)):
            if protocol.stopped_reading:
                break
            await asyncio.sleep(0.05)
        assert protocol.stopped_reading and protocol.handler is None
        assert protocol.transport is not None and protocol.transport.get_write_buffer_size() < 4 * 1024 * 1024
        for _ in range(count):
            assert (await read_answer(reader)).body == data
    assert len(wire.answered) == count


async def test_the_site_serves_with_it_and_closes_idle_connections_when_stopped(client, backend, make_user):
    """HotSite, as `imagehost serve` runs it: hot answers from the listener, and on
    shutdown the idle connections, ours and aiohttp's, are closed."""
    user = await make_user()  # in the shared database: the second app sees it
    runner = web.AppRunner(create_app(backend.settings), access_log=None)
    await runner.setup()
    try:
        site = hotwire.HotSite(runner, "127.0.0.1", 0, reuse_port=None)
        await site.start()
        wire = Wire(site.port, site.port, site._live, [])
        data = image_bytes("JPEG", (32, 32), noise=True)
        async with wire.connect() as (reader, writer):
            raw_form = (
                b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n'
                b"Content-Type: image/jpeg\r\n\r\n" + data + b"\r\n--b--\r\n"
            )
            writer.write(
                f"POST /api/upload HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {user.api_key}\r\n"
                f"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {len(raw_form)}\r\n\r\n".encode()
                + raw_form
            )
            created = await read_answer(reader)
            assert created.status == 201
        path = "/i/" + json.loads(created.body)["public_url"].rsplit("/", 1)[-1]
        connections = []
        for _ in range(2):
            reader, writer = await asyncio.open_connection("127.0.0.1", site.port)
            writer.write(get(path))
            assert (await read_answer(reader)).body == data
            connections.append((reader, writer))
        hot_only = [p for p in site._live if p.handler is None]
        assert len(hot_only) == 1  # the second connection: the first one's answer came from aiohttp
    finally:
        await runner.cleanup()
    for reader, writer in connections:
        assert await asyncio.wait_for(reader.read(), DEADLINE) == b""
        writer.close()


async def test_a_failing_hot_answer_is_given_by_aiohttp_instead(client, make_user, wire, monkeypatch):
    path, data = await hot_image(client, make_user, wire)
    errors: list[str] = []
    sink = logger.add(lambda m: errors.append(m.record["message"]), level="ERROR")

    def broken(*_args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(hotwire, "hot_lookup", broken)
    try:
        async with wire.connect() as (reader, writer):
            writer.write(get(path) + get(path))
            for _ in range(2):
                answer = await read_answer(reader)
                assert (answer.status, answer.body) == (200, data)
    finally:
        logger.remove(sink)
    assert wire.answered == []
    assert errors.count("hot /i/ answer failed; aiohttp answers instead") >= 1
