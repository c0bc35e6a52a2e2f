"""The client address (imagehost/http/forwarded.py) on a bare app whose only handler
answers with the address the middleware settled on: X-Forwarded-For counts only when the
peer is a configured proxy."""

from __future__ import annotations

import pytest
from aiohttp import web

from imagehost.http.forwarded import client_address_middleware
from imagehost.typedefs import CLIENT_ADDR


async def _addr_app(aiohttp_client, trusted):
    async def handler(request):
        return web.Response(text=request[CLIENT_ADDR])

    app = web.Application(middlewares=[client_address_middleware(trusted)])
    app.router.add_get("/", handler)
    return await aiohttp_client(app)


@pytest.mark.tiers("sqlite-local")
async def test_forwarded_for_is_ignored_without_trusted_proxies(aiohttp_client, backend):
    client = await _addr_app(aiohttp_client, ())
    resp = await client.get("/", headers={"X-Forwarded-For": "203.0.113.9"})
    assert await resp.text() == "127.0.0.1"


@pytest.mark.tiers("sqlite-local")
async def test_forwarded_for_is_used_from_a_trusted_proxy(aiohttp_client, backend):
    client = await _addr_app(aiohttp_client, ("127.0.0.0/8",))
    resp = await client.get("/", headers={"X-Forwarded-For": "198.51.100.7, 203.0.113.9, 127.0.0.5"})
    assert await resp.text() == "203.0.113.9"  # the right-most hop that is not our proxy
    resp = await client.get("/", headers={"X-Forwarded-For": "garbage"})
    assert await resp.text() == "127.0.0.1"


async def test_a_peer_outside_the_trusted_networks_cannot_forge_its_address(aiohttp_client):
    client = await _addr_app(aiohttp_client, ("10.0.0.0/8",))  # the test client is 127.0.0.1
    resp = await client.get("/", headers={"X-Forwarded-For": "203.0.113.9"})
    assert await resp.text() == "127.0.0.1"


async def test_a_trusted_proxy_without_the_header_is_the_client(aiohttp_client):
    client = await _addr_app(aiohttp_client, ("127.0.0.1/32",))
    resp = await client.get("/")
    assert await resp.text() == "127.0.0.1"


async def test_several_forwarded_headers_are_read_as_one_list(aiohttp_client):
    client = await _addr_app(aiohttp_client, ("127.0.0.0/8", "10.0.0.0/8"))
    resp = await client.get("/", headers=[("X-Forwarded-For", "203.0.113.9"), ("X-Forwarded-For", "10.1.2.3")])
    assert await resp.text() == "203.0.113.9"


async def test_when_every_hop_is_a_proxy_the_left_most_is_the_client(aiohttp_client):
    client = await _addr_app(aiohttp_client, ("127.0.0.0/8", "10.0.0.0/8"))
    resp = await client.get("/", headers={"X-Forwarded-For": "10.9.9.9, 10.1.2.3"})
    assert await resp.text() == "10.9.9.9"


async def test_the_address_is_normalised(aiohttp_client):
    client = await _addr_app(aiohttp_client, ("127.0.0.0/8",))
    resp = await client.get("/", headers={"X-Forwarded-For": "2001:DB8:0:0::1"})
    assert await resp.text() == "2001:db8::1"
