"""The client address: the peer, or X-Forwarded-For only when the peer is a trusted proxy."""

from __future__ import annotations

import ipaddress

from aiohttp import web

from ..typedefs import CLIENT_ADDR, Handler, Middleware


def client_address_middleware(trusted: tuple[str, ...]) -> Middleware:
    networks = [ipaddress.ip_network(t, strict=False) for t in trusted]

    def is_trusted(addr: str) -> bool:
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return False
        return any(ip in n for n in networks)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        peer = request.remote or ""
        addr = peer
        if networks and is_trusted(peer):
            # Walk X-Forwarded-For from the right, skipping our own proxies.
            hops = [h.strip() for h in ",".join(request.headers.getall("X-Forwarded-For", [])).split(",") if h.strip()]
            for hop in reversed(hops):
                addr = hop
                if not is_trusted(hop):
                    break
            try:
                addr = str(ipaddress.ip_address(addr))
            except ValueError:
                addr = peer
        request[CLIENT_ADDR] = addr
        return await handler(request)

    return middleware
