"""What SIP over TCP lets a stranger hold: source check at accept, caps, timeouts, fd reserve."""

from __future__ import annotations

import asyncio
import ipaddress
import time

import pytest

from agent_studio.media.embedded.sip import SipUserAgent, TcpLimits
from tests.media.sip.conftest import MakeUa
from tests.media.sip.raw import request
from tests.media.sip.support import HOST

pytestmark = pytest.mark.timeout(60)
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)
OPTIONS = request("OPTIONS", 5060).replace(b"SIP/2.0/UDP", b"SIP/2.0/TCP")

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def connect(ua: SipUserAgent, source: str = HOST) -> Connection:
    return await asyncio.open_connection(HOST, ua.port, local_addr=(source, 0))


async def closed_by_server(connection: Connection, within: float = 2.0) -> bool:
    """True once the server has closed the connection (EOF or reset) within `within` seconds."""
    reader, _ = connection
    try:
        return await asyncio.wait_for(reader.read(), within) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


async def answers_options(connection: Connection) -> bool:
    """True when an OPTIONS on this connection gets its 200 (the connection is served)."""
    reader, writer = connection
    try:
        writer.write(OPTIONS)
        await writer.drain()
        reply = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
    except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
        return False
    return reply.startswith(b"SIP/2.0 200 OK")


def close(*connections: Connection) -> None:
    for _, writer in connections:
        writer.close()


async def test_a_connection_from_outside_the_allowed_sources_is_closed_at_accept(
    make_ua: MakeUa,
) -> None:
    elsewhere, _ = await make_ua(allowed_sources=(ipaddress.ip_network("10.0.0.0/8"),))
    refused = await connect(elsewhere)
    assert await closed_by_server(refused, within=1.0)
    assert elsewhere.transport.refused["source"] == 1
    assert elsewhere.transport.accepted_connections == 0

    listed, _ = await make_ua(allowed_sources=LOOPBACK)
    served = await connect(listed)
    assert await answers_options(served)
    close(refused, served)


async def test_a_silent_connection_is_closed_after_the_first_request_timeout(
    make_ua: MakeUa,
) -> None:
    ua, _ = await make_ua(tcp=TcpLimits(first_request_timeout=0.3, idle_timeout=1.0))
    started = time.monotonic()
    silent = await connect(ua)
    keepalive_only = await connect(ua)
    keepalive_only[1].write(b"\r\n\r\n")  # keep-alives are not a request
    talking = await connect(ua)
    assert await answers_options(talking)
    assert await closed_by_server(silent)
    assert await closed_by_server(keepalive_only)
    assert 0.25 <= time.monotonic() - started < 1.0
    # A connection that sent a request stays until it has been silent for idle_timeout.
    assert not await closed_by_server(talking, within=0.5)
    assert await answers_options(talking)
    assert await closed_by_server(talking, within=2.0)
    assert ua.transport.accepted_connections == 0
    close(silent, keepalive_only, talking)


async def test_caps_close_the_newest_connections_beyond_them(make_ua: MakeUa) -> None:
    ua, _ = await make_ua(tcp=TcpLimits(max_per_source=3, max_connections=5))
    first = [await connect(ua, "127.0.0.1") for _ in range(3)]
    over_source_cap = await connect(ua, "127.0.0.1")
    assert await closed_by_server(over_source_cap)
    second = [await connect(ua, "127.0.0.2") for _ in range(2)]
    over_total_cap = await connect(ua, "127.0.0.3")
    assert await closed_by_server(over_total_cap)
    for connection in first + second:  # the older ones are all still served
        assert await answers_options(connection)
    assert ua.transport.refused["per_source"] == 1 and ua.transport.refused["total"] == 1

    close(first[0])  # a freed slot is taken again
    await asyncio.sleep(0.1)
    again = await connect(ua, "127.0.0.1")
    assert await answers_options(again)
    close(*first[1:], *second, over_source_cap, over_total_cap, again)


async def test_connections_are_refused_inside_the_fd_reserve(make_ua: MakeUa) -> None:
    ua, _ = await make_ua(tcp=TcpLimits(fd_reserve=10**9))  # more than any limit leaves
    refused = await connect(ua)
    assert await closed_by_server(refused, within=1.0)
    assert ua.transport.refused["fds"] == 1
    close(refused)
