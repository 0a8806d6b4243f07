"""The gateway's generic error path: an unexpected exception while answering a
frame gets ERROR 500 (RequestId echoed), the connection stays open, and the log gets one traceback
per kind of failure per minute, not one per frame at a rate the client chooses.

Before: a traceback per frame (10 frames/s per connection, times every connection), the request's
RequestId dropped from local answers' ERROR 500, and an error path that raised itself (an
unencodable RequestId) ended the connection with 1011.
"""

from __future__ import annotations

import asyncio
from typing import Any

from structlog.testing import capture_logs

from gateway import server as gateway_server
from gateway.server import ErrorLogThrottle
from parley.embedded import Node
from parley.testing.chatclient import ChatClient
from shared.config import Settings
from shared.engine.memory import MemoryBus, MemoryStore
from shared.engine.memory.actions import MemoryActions
from shared.engine.memory.presence import MemoryPresence
from shared.protocol.envelope import ActionEnvelope
from tests.nodes import make_room, mint_token, ws_url


class _BrokenPresence(MemoryPresence):
    """A presence read that fails: the gateway's injected dependency, failing for real."""

    async def list(self, room_id: str) -> Any:
        raise RuntimeError("presence read failed")


def _broken_presence_store() -> MemoryStore:
    store = MemoryStore()
    store.presence = _BrokenPresence()
    return store


class _BrokenPublishActions(MemoryActions):
    """Actions that cannot be taken (as when RabbitMQ is unreachable)."""

    async def publish(self, action: ActionEnvelope) -> None:
        raise ConnectionError("bus unreachable")


def _broken_publish_bus(shards: int) -> MemoryBus:
    bus = MemoryBus(shards)
    bus.actions = _BrokenPublishActions(shards)
    return bus


async def _started(settings: Settings, store: MemoryStore, bus: MemoryBus) -> Node:
    # rates raised: the tests repeat a failing request faster than a client may
    settings = settings.with_(connection_rate_per_second=1000, event_rate_per_second=1000)
    node = Node(settings, store, bus, api=False, router_all_shards=True)
    await node.start(gateway_port=0)
    return node


async def test_an_unexpected_failure_is_error_500_and_logged_once_not_per_frame(settings: Settings) -> None:
    node = await _started(settings, _broken_presence_store(), MemoryBus(settings.shards))
    gateway_server.UNEXPECTED_ERRORS.forget()
    try:
        room = await make_room(node)
        client = await ChatClient.open(ws_url(node), mint_token(node, room, "alice"))
        with capture_logs() as logs:
            for n in range(20):
                await client.send("GET_PRESENCE", RequestId=f"p{n}")
                error = await client.expect(Type="ERROR")
                assert (error["ErrorCode"], error["RequestId"]) == (500, f"p{n}")
        tracebacks = [entry for entry in logs if entry.get("exc_info")]
        assert len(tracebacks) == 1, tracebacks  # before: 20
        assert tracebacks[0]["held_back"] == 0
        await client.send("PING", RequestId="still-open")
        assert (await client.expect(Type="PONG"))["RequestId"] == "still-open"
        await client.close()
    finally:
        await node.stop()


async def test_a_failing_publish_is_error_500_with_the_request_id_and_the_connection_stays(settings: Settings) -> None:
    node = await _started(settings, MemoryStore(), _broken_publish_bus(settings.shards))
    gateway_server.UNEXPECTED_ERRORS.forget()
    try:
        room = await make_room(node)
        client = await ChatClient.open(ws_url(node), mint_token(node, room, "alice"))
        with capture_logs() as logs:
            for n in range(5):
                rid = await client.send_message(f"m{n}")
                error = await client.expect(Type="ERROR")
                assert (error["ErrorCode"], error["RequestId"]) == (500, rid)
        assert len([entry for entry in logs if entry.get("exc_info")]) == 1
        await client.send("PING", RequestId="still-open")
        assert (await client.expect(Type="PONG"))["RequestId"] == "still-open"
        await client.close()
    finally:
        await node.stop()


async def test_an_error_frame_drops_a_request_id_it_cannot_encode_instead_of_closing_1011(settings: Settings) -> None:
    # parse_client_frame refuses such RequestIds; this is the error path's own guard behind it.
    node = await _started(settings, MemoryStore(), MemoryBus(settings.shards))
    try:
        room = await make_room(node)
        client = await ChatClient.open(ws_url(node), mint_token(node, room, "alice"))
        assert node.gateway is not None
        (server_ws,) = node.gateway.fanout.connections()
        node.gateway._send_error(server_ws, 400, "bad \ud800 text", "\ud800")
        error = await client.expect(Type="ERROR")
        assert error["ErrorCode"] == 400 and "RequestId" not in error and error["ErrorMessage"] == "Invalid request"
        await client.send("PING", RequestId="still-open")
        assert (await client.expect(Type="PONG"))["RequestId"] == "still-open"
        await client.close()
    finally:
        await node.stop()
        await asyncio.sleep(0)


def test_the_error_log_keeps_one_traceback_per_interval_and_counts_the_rest() -> None:
    now = [0.0]
    throttle = ErrorLogThrottle(interval=60.0, clock=lambda: now[0])
    assert throttle.admit("answering failed", RuntimeError) == 0  # first: log it, none held back
    assert [throttle.admit("answering failed", RuntimeError) for _ in range(5)] == [None] * 5
    assert throttle.admit("answering failed", KeyError) == 0  # another kind of failure: its own traceback
    assert throttle.admit("publishing failed", RuntimeError) == 0  # another place: its own traceback
    now[0] = 61.0
    assert throttle.admit("answering failed", RuntimeError) == 5  # logged again, with the count held back
    assert throttle.admit("answering failed", RuntimeError) is None


def test_the_error_log_remembers_a_bounded_number_of_kinds() -> None:
    throttle = ErrorLogThrottle(interval=60.0, clock=lambda: 0.0, max_kinds=3)
    kinds = [type(f"E{n}", (Exception,), {}) for n in range(10)]
    assert [throttle.admit("x", kind) for kind in kinds] == [0] * 10
    assert len(throttle) <= 3
