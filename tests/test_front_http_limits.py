"""The aiohttp fronts' (groupschat, plic) read deadlines and per-client cap, on real sockets.

Each test starts one front of an embedded node (memory backend) with ~0.5 s bounds from the
``PARLEY_FRONT_*`` settings, then plays a silent, slow or greedy client and checks what the front
sent and that it closed the socket; the raw-socket helpers are the control plane's
(``tests/test_api_limits.py``), whose bounds these are. An established WebSocket must outlive
the head deadline, which is aiohttp's keep-alive timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from prometheus_client import REGISTRY

from parley.embedded import Node
from shared.config import Settings
from shared.engine.memory import MemoryBus, MemoryStore
from shared.http_limits import ServerLimits
from tests import test_front_groupschat as groupschat
from tests import test_front_plic as plic
from tests.test_api_limits import Trickle, connect, healthz, read_until_closed

DEADLINE = 0.5  # the head and the body deadline
CAP = 3
SLACK = 2.0  # scheduling leeway on a loaded test machine: only how long a failing test waits
FRONTS = ["groupschat", "plic"]
REASON = f"The request body did not arrive within {DEADLINE:g} s"


@contextlib.asynccontextmanager
async def running_front(name: str, settings: Settings) -> AsyncIterator[Node]:
    """A node holding only the front ``name``, on a free port."""
    settings = settings.with_(groupschat_jwt_secret=groupschat.SECRET, plic_jwt_secret=plic.SECRET)
    store, bus = MemoryStore(), MemoryBus(settings.shards)
    node = Node(settings, store, bus, api=False, gateway=False, router=False, reviewer=False, fronts=(name,))
    await node.start(front_ports={name: 0})
    try:
        yield node
    finally:
        await node.stop()


@pytest.fixture(params=FRONTS)
async def limited(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[Node]:
    """Deadlines of 0.5 s, cap of 3."""
    bounds = settings.with_(
        front_header_timeout=DEADLINE, front_body_timeout=DEADLINE, front_max_connections_per_client=CAP
    )
    async with running_front(request.param, bounds) as node:
        yield node


@pytest.fixture(params=FRONTS)
async def capped(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[Node]:
    """Cap of 3, deadlines far away: a connection closed within seconds was refused, not timed out."""
    bounds = settings.with_(front_header_timeout=60, front_body_timeout=60, front_max_connections_per_client=CAP)
    async with running_front(request.param, bounds) as node:
        yield node


def front_of(node: Node) -> tuple[str, int]:
    [(name, front)] = node.fronts.items()
    return name, front.port


# --- read deadlines ----------------------------------------------------------------------------
async def test_a_silent_connection_is_closed_at_the_head_deadline(limited: Node) -> None:
    _, port = front_of(limited)
    reader, writer = await connect(port)
    assert await read_until_closed(reader, DEADLINE + SLACK) == b""
    writer.close()


async def test_a_slowloris_trickling_its_head_is_closed_at_the_head_deadline(limited: Node) -> None:
    _, port = front_of(limited)
    reader, writer = await connect(port)
    head = b"GET /healthz HTTP/1.1\r\nHost: parley\r\nX-Padding: " + b"a" * 40 + b"\r\n\r\n"
    trickle = Trickle(writer, head, every=0.1)  # never idle for 0.5 s; ~6 s to finish
    try:
        assert await read_until_closed(reader, DEADLINE + SLACK) == b""
        assert 2 <= trickle.sent < len(head)
    finally:
        trickle.stop()
        writer.close()


def body_request_head(name: str) -> bytes:
    """A request whose handler reads a 100-byte body (plic's needs a valid token first)."""
    if name == "groupschat":
        return b"POST /users HTTP/1.1\r\nHost: parley\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    bearer = f"Authorization: Bearer {plic.token('alice')}\r\n".encode()
    return b"POST /rooms HTTP/1.1\r\nHost: parley\r\n" + bearer + b"Content-Length: 100\r\n\r\n"


def refusal_in_front_shape(name: str, reason: str) -> dict[str, Any]:
    return {"error": reason} if name == "groupschat" else {"error_message": reason, "data": None}


async def test_a_trickled_body_is_answered_408_in_the_front_shape_and_closed(limited: Node) -> None:
    name, port = front_of(limited)
    reader, writer = await connect(port)
    writer.write(body_request_head(name))
    trickle = Trickle(writer, b" " * 100, every=0.1)  # never idle for 0.5 s; 10 s to finish
    try:
        # closed at the deadline, not after aiohttp's 10 s of draining the rest of the body
        sent = await read_until_closed(reader, DEADLINE + SLACK)
        assert 2 <= trickle.sent < 100
    finally:
        trickle.stop()
        writer.close()
    head, _, body = sent.partition(b"\r\n\r\n")
    status, *headers = head.decode().split("\r\n")
    assert status.startswith("HTTP/1.1 408 "), sent
    assert "connection: close" in (line.lower() for line in headers)
    assert json.loads(body) == refusal_in_front_shape(name, REASON)


def valid_body(name: str) -> bytes:
    if name == "groupschat":
        return json.dumps({"username": "pieces", "password": "0000"}).encode()
    return json.dumps({"users": ["bob"], "apartment_id": None}).encode()


async def test_a_body_sent_in_pieces_within_the_deadline_is_read_whole(limited: Node) -> None:
    name, port = front_of(limited)
    body = valid_body(name)
    reader, writer = await connect(port)
    writer.write(body_request_head(name).replace(b"Content-Length: 100", f"Content-Length: {len(body)}".encode()))
    for piece in (body[:5], body[5:]):  # the handler must wait for the second piece, not parse the first
        await asyncio.sleep(0.1)
        writer.write(piece)
    status = await asyncio.wait_for(reader.readline(), DEADLINE + SLACK)
    writer.close()
    assert status.startswith(b"HTTP/1.1 200 "), status


async def open_websocket(node: Node, http: aiohttp.ClientSession) -> aiohttp.ClientWebSocketResponse:
    """A logged-in WebSocket on the node's front (groupschat: after register, login and session)."""
    name, _ = front_of(node)
    if name == "groupschat":
        client = groupschat.GroupsChat(node, http)
        await client.user("ws")
        return await client.connect("ws", events=False)
    return await plic.Plic(node, http).ws("alice")


async def assert_websocket_answers(name: str, ws: aiohttp.ClientWebSocketResponse) -> None:
    """A frame the front answers without closing: groupschat's ERROR event for a malformed frame,
    plic's refused confirmation for an unknown room."""
    if name == "groupschat":
        await ws.send_str("not json")
        event = await groupschat.recv(ws)
        assert event["type"] == 10 and event["body"]["code"] == 400, event
    else:
        await ws.send_str(plic.send(999_999, "hello", "t1"))
        frame = await plic.recv(ws)
        assert frame["type"] == "MessageSentConfirmation" and frame["data"]["confirmed"] is False, frame
    assert not ws.closed


def one_request_per_connection() -> aiohttp.ClientSession:
    """A client session that pools nothing: only its WebSockets stay open."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))


async def test_a_websocket_outlives_the_head_deadline(limited: Node) -> None:
    name, _ = front_of(limited)
    async with one_request_per_connection() as http:
        ws = await open_websocket(limited, http)
        await asyncio.sleep(3 * DEADLINE)  # aiohttp's keep-alive timer (the head deadline) fired meanwhile
        assert not ws.closed
        await assert_websocket_answers(name, ws)
        await ws.close()


# --- per-client connection cap -----------------------------------------------------------------
def refused_total(name: str) -> float:
    return REGISTRY.get_sample_value("parley_front_connections_refused_total", {"Protocol": name}) or 0.0


async def test_the_connection_over_the_per_client_cap_is_closed_and_the_others_stay(capped: Node) -> None:
    name, port = front_of(capped)
    async with one_request_per_connection() as http:
        ws = await open_websocket(capped, http)  # a WebSocket counts like any connection
        held = [await connect(port) for _ in range(CAP - 1)]
        for reader, writer in held:
            assert b" 200 " in await healthz(reader, writer)
        refused_before = refused_total(name)
        reader, writer = await connect(port)
        assert await read_until_closed(reader, SLACK) == b""  # on accept, long before the 60 s deadline
        writer.close()
        assert refused_total(name) == refused_before + 1
        await assert_websocket_answers(name, ws)  # the CAP admitted ones are untouched
        for reader, writer in held:
            assert b" 200 " in await healthz(reader, writer)
        await ws.close()
        await asyncio.sleep(0.1)  # the server sees the close
        reader, writer = await connect(port)  # the WebSocket's slot admits a new connection
        assert b" 200 " in await healthz(reader, writer)
        for _, w in [*held, (reader, writer)]:
            w.close()


def test_unbounded_front_settings_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="PARLEY_FRONT_HEADER_TIMEOUT"):
        ServerLimits.from_settings(Settings(front_header_timeout=0), "front")
    with pytest.raises(ValueError, match="PARLEY_FRONT_BODY_TIMEOUT"):
        ServerLimits.from_settings(Settings(front_body_timeout=-1), "front")
    with pytest.raises(ValueError, match="PARLEY_FRONT_MAX_CONNECTIONS_PER_CLIENT"):
        ServerLimits.from_settings(Settings(front_max_connections_per_client=-1), "front")
    fronts = ServerLimits.from_settings(Settings(front_max_connections_per_client=0, api_header_timeout=99), "front")
    assert (fronts.header_timeout, fronts.max_connections_per_client) == (10.0, 0)  # not the api's values
