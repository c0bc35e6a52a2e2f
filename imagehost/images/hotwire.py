"""`/i/` below aiohttp's request machinery: the connection protocol `imagehost serve`
listens with.

A connection starts here. Each request that arrives whole and is an anonymous,
cookie-less HTTP/1.1 keep-alive GET or HEAD of a hot image (`files.hot_lookup`) is
answered at once from the bytes `files.hot_wire` lays out — the same bytes the
`hot_image_middleware` would write, counted in the metrics and the access log the same
way — without a request object, a task, the router or the middleware chain. Everything
else goes to aiohttp's own `RequestHandler`, made for the connection on its first such
request:

- a request without a body that is not ours (another path, a miss, a cookie, a range…)
  is handed over alone, whole; once aiohttp has answered it and waits for the next one,
  the connection is ours again (answers never overtake each other);
- anything else — a head we do not parse strictly (aiohttp gives its 400), a request
  with a body, an upgrade, a head longer than `MAX_HEAD` — hands the rest of the
  connection over for good.

So the fast path answers only what it understands completely, and what it does not
understand is parsed by aiohttp exactly as before. Idle connections close after the same
keep-alive time as aiohttp's; a connection the client stops reading from stops being
read (the transport's flow control); stopping the server closes the idle ones.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any, cast

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from loguru import logger

from ..http.access import chosen_id, log_line
from ..typedefs import METRICS
from .files import hot_fresh, hot_lookup, hot_wire

KEEPALIVE = 75.0  # seconds, as web.run_app gives aiohttp's RequestHandler
MAX_HEAD = 8190  # a longer head goes to aiohttp, whose limits and errors apply

_REQUEST_LINE = re.compile(rb"(GET|HEAD) /i/([A-Za-z0-9._-]{1,128}) HTTP/1\.1")
_FIELD = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*([\x21-\x7e](?:[ \t\x21-\x7e]*[\x21-\x7e])?)?[ \t]*")
# Fields that send a request to aiohttp: a body, an upgrade, or an answer the hot path
# does not give (a cookie's session, ranges, the rarer preconditions).
_NOT_OURS = frozenset(
    {
        b"content-length",
        b"transfer-encoding",
        b"expect",
        b"upgrade",
        b"cookie",
        b"range",
        b"if-range",
        b"if-match",
        b"if-unmodified-since",
    }
)
_WITH_BODY = frozenset({b"content-length", b"transfer-encoding", b"expect", b"upgrade"})


def _parse(head: bytes) -> tuple[bytes, bytes, dict[bytes, bytes]] | None:
    """(request line, key or b"", lowercased fields) of a head we parse strictly, or None."""
    lines = head.split(b"\r\n")
    first = lines[0]
    if b"\n" in first or b"\r" in first:  # a bare line end: aiohttp frames it, not us
        return None
    fields: dict[bytes, bytes] = {}
    for line in lines[1:]:
        m = _FIELD.fullmatch(line)
        if m is None:
            return None
        name = m[1].lower()
        if name in fields:  # a repeated field: aiohttp decides what it means
            return None
        fields[name] = m[2] or b""
    m = _REQUEST_LINE.fullmatch(first)
    return first, (m[2] if m else b""), fields


class HotProtocol(asyncio.Protocol):
    """One connection: hot `/i/` answers here, the rest in aiohttp (see the module)."""

    def __init__(self, server: web.Server, app: web.Application, live: set[HotProtocol]) -> None:
        self.server, self.app, self.live = server, app, live
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.handler: RequestHandler | None = None
        self.given = False  # the rest of the connection is aiohttp's
        self.buffer = b""
        self.paused = False  # the transport asked us to stop writing
        self.stopped_reading = False  # and so we stopped reading
        self.idle_until = 0.0
        self.timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.live.add(self)
        self.idle_until = self.loop.time() + KEEPALIVE
        self.timer = self.loop.call_at(self.idle_until, self._idle)

    def data_received(self, data: bytes) -> None:
        if self.given:
            assert self.handler is not None
            self.handler.data_received(data)
            return
        buffer = self.buffer + data if self.buffer else data
        self.buffer = b""
        while buffer:
            if self.paused and self.handler is None:  # resume_writing goes on from here
                self.buffer = buffer
                return
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD or b"\n\n" in buffer or b"\n\r\n" in buffer:  # bare line ends
                    self._give(buffer)
                else:
                    self.buffer = buffer
                return
            parsed = _parse(buffer[:end]) if end <= MAX_HEAD else None
            if parsed is None or not _WITH_BODY.isdisjoint(parsed[2]):
                self._give(buffer)
                return
            request, buffer = buffer[: end + 4], buffer[end + 4 :]
            if not (parsed[1] and self._idle_handler() and self._try(parsed)):
                self._handler().data_received(request)

    def eof_received(self) -> bool | None:
        if self.handler is not None:
            self.handler.eof_received()  # aiohttp's returns nothing: the transport closes
        return None

    def connection_lost(self, exc: BaseException | None) -> None:
        self.live.discard(self)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.transport = None
        if self.handler is not None:
            self.handler.connection_lost(exc)

    def pause_writing(self) -> None:
        """The client is not reading its answers: read no more requests until it does
        (aiohttp's handler, once there is one, waits for the buffer itself)."""
        self.paused = True
        if self.handler is not None:
            self.handler.pause_writing()
        elif self.transport is not None and not self.stopped_reading:
            self.transport.pause_reading()
            self.stopped_reading = True

    def resume_writing(self) -> None:
        self.paused = False
        handler = self.handler
        if handler is not None:
            handler.resume_writing()
        if self.stopped_reading and self.transport is not None:
            self.stopped_reading = False
            if self.buffer:
                self.data_received(b"")  # the requests read before the pause
                handler = self.handler
            if not self.paused and (handler is None or not handler._buffer_paused):  # else aiohttp resumes it
                self.transport.resume_reading()

    # -- the rest

    def close_idle(self) -> None:
        """The server is stopping: close the connection unless aiohttp has it (aiohttp
        closes those itself, after their requests)."""
        if self.handler is None and self.transport is not None:
            self.transport.close()

    def _idle(self) -> None:
        """Keep-alive: close a connection no request came on for KEEPALIVE seconds
        (aiohttp's own timer does it once the connection has a handler)."""
        self.timer = None
        if self.handler is not None or self.transport is None:
            return
        if self.loop.time() < self.idle_until:
            self.timer = self.loop.call_at(self.idle_until, self._idle)
            return
        self.transport.close()

    def _handler(self) -> RequestHandler:
        if self.handler is None:
            assert self.transport is not None
            self.handler = handler = self.server()
            handler.connection_made(self.transport)
            if self.paused:
                handler.pause_writing()
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None
        return self.handler

    def _give(self, data: bytes) -> None:
        """Hand the rest of the connection to aiohttp."""
        handler = self._handler()
        self.given = True
        handler.data_received(data)

    def _idle_handler(self) -> bool:
        """Whether an answer written now comes after every earlier one: no handler yet,
        or one waiting for its next request with nothing queued (as aiohttp's own
        keep-alive check tells an idle handler). Never while the client is not reading."""
        if self.paused or self.transport is None or self.transport.is_closing():
            return False
        handler = self.handler
        if handler is None:
            return True
        waiter: Any = handler._waiter
        return waiter is not None and not waiter.done() and not handler._messages

    def _try(self, parsed: tuple[bytes, bytes, dict[bytes, bytes]]) -> bool:
        """Write a hot image's answer; False when aiohttp must answer instead (also if
        building it fails: nothing was written then)."""
        start = time.perf_counter()
        try:
            answer = self._answer(parsed)
        except Exception:
            logger.exception("hot /i/ answer failed; aiohttp answers instead")
            return False
        if answer is None:
            return False
        method, rid, status, data = answer
        assert self.transport is not None
        self.transport.write(data)
        now = self.loop.time()
        if self.handler is not None:  # aiohttp's keep-alive timer counts from the last answer
            self.handler._next_keepalive_close_time = now + KEEPALIVE
        else:
            self.idle_until = now + KEEPALIVE
        seconds = time.perf_counter() - start
        self.app[METRICS].observe("image_file", method, status, seconds, None)
        log_line(rid, method, "/i/" + parsed[1].decode(), status, seconds, None)
        return True

    def _answer(self, parsed: tuple[bytes, bytes, dict[bytes, bytes]]) -> tuple[str, str, int, bytes] | None:
        """(method, request id, status, bytes) of a hot image's answer, or None."""
        first, key, fields = parsed
        if not _NOT_OURS.isdisjoint(fields):
            return None
        connection = fields.get(b"connection")
        if connection is not None and connection.lower() != b"keep-alive":
            return None
        hot = hot_lookup(self.app, key.decode())
        if hot is None:
            return None
        inm, ims = fields.get(b"if-none-match"), fields.get(b"if-modified-since")
        fresh = hot_fresh(hot, inm.decode() if inm is not None else None, ims.decode() if ims is not None else None)
        rid = chosen_id(fields.get(b"x-request-id", b"").decode())
        method = "HEAD" if first.startswith(b"HEAD") else "GET"
        status, data, _length = hot_wire(hot, fresh, method == "HEAD", rid)
        return method, rid, status, data


async def listen(
    server: web.Server, app: web.Application, live: set[HotProtocol], host: str | None, port: int, **options: Any
) -> asyncio.Server:
    """Listen on host:port with `HotProtocol` in front of aiohttp's `server` for `app`;
    `live` collects the open connections (create_server's `options` pass through)."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: HotProtocol(server, app, live), host, port, **options)


class HotSite(web.TCPSite):
    """aiohttp's TCPSite listening with `HotProtocol`."""

    __slots__ = ("_live",)

    def __init__(self, runner: web.AppRunner, host: str | None, port: int, *, reuse_port: bool | None) -> None:
        super().__init__(runner, host, port, reuse_port=reuse_port)
        self._live: set[HotProtocol] = set()

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with the runner
        runner = self._runner
        assert isinstance(runner, web.AppRunner)
        assert runner.server is not None
        self._server = await listen(
            runner.server,
            runner.app,
            self._live,
            self._host,
            self._port,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port

    async def stop(self) -> None:
        await super().stop()
        for protocol in list(self._live):
            protocol.close_idle()
