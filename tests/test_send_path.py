"""One send path, one back-pressure policy.

Every frame the gateway writes (fan-out, HISTORY, PRESENCE, PONG, ERROR, session expiry, shutdown)
goes through ``gateway.wire``: written at once to an open transport that is not closing; a
transport already holding more than ``max_send_buffer`` bytes is aborted, and counted, once.

Before: fan-out counted an abort per batch item (under uvloop an aborted transport still reports
its buffer: one slow reader gave 7 aborts for a 10-item batch), HISTORY and PRESENCE replies to an
over-buffer socket vanished silently, and PONG/ERROR (``ws.send``) waited on the socket instead.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Coroutine
from types import SimpleNamespace
from typing import Any, cast

import pytest
import uvloop
from prometheus_client import REGISTRY
from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

from gateway.fanout import RoomFanout
from gateway.wire import send_frame, text_frame, write_frame
from parley.embedded import Node
from parley.testing.chatclient import ChatClient
from shared.clock import now_ms
from shared.config import Settings
from shared.engine.memory import MemoryBus, MemoryStore
from shared.protocol import frames, tokens
from shared.protocol.envelope import DeliveryItem, Kind, RoomDelivery
from shared.protocol.ids import new_id
from shared.protocol.models import Room
from tests.nodes import make_room, mint_token, ws_url

MAX_BUFFER = 8 * 1024
LOOPS: dict[str, Callable[[Coroutine[Any, Any, None]], None]] = {"asyncio": asyncio.run, "uvloop": uvloop.run}


def _aborts() -> float:
    return REGISTRY.get_sample_value("parley_slow_consumer_disconnects_total") or 0.0


# --- the policy, on a transport that behaves like uvloop's ----------------------------------------


class UvloopLikeTransport:
    """After ``abort()`` it is closing but still reports its buffer, as uvloop's transports do."""

    def __init__(self, buffered: int = 0) -> None:
        self.buffered = buffered
        self.written: list[bytes] = []
        self.aborted = 0

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return self.aborted > 0

    def write(self, data: bytes) -> None:
        assert not self.aborted, "written after abort"
        self.written.append(data)
        self.buffered += len(data)

    def abort(self) -> None:
        self.aborted += 1


class FakeWs:
    def __init__(self, buffered: int = 0, state: State = State.OPEN) -> None:
        self.protocol = SimpleNamespace(state=state)
        self.transport = UvloopLikeTransport(buffered)


def test_write_frame_writes_to_open_transports_and_aborts_the_slow_one_once() -> None:
    fast, slow, closed = FakeWs(), FakeWs(buffered=MAX_BUFFER + 1), FakeWs(state=State.CLOSED)
    raw = text_frame(b'{"Type":"MESSAGE"}')
    before = _aborts()
    conns = cast("list[ServerConnection]", [fast, slow, closed])  # fakes of what write_frame touches
    assert write_frame(conns, raw, MAX_BUFFER) == 1
    assert write_frame(conns, raw, MAX_BUFFER) == 1  # the aborted one is skipped, not counted again
    assert fast.transport.written == [raw, raw] and not slow.transport.written and not closed.transport.written
    assert (slow.transport.aborted, closed.transport.aborted, _aborts() - before) == (1, 0, 1)
    assert not send_frame(slow, b"{}", MAX_BUFFER) and send_frame(fast, b"{}", MAX_BUFFER)  # type: ignore[arg-type]
    assert slow.transport.aborted == 1


class _Subscription:
    async def add_room(self, room_id: str) -> None:
        pass

    async def remove_room(self, room_id: str) -> None:
        pass


async def test_a_multi_item_batch_counts_one_abort_per_slow_reader() -> None:
    fanout = RoomFanout(MAX_BUFFER)
    fanout.subscription = _Subscription()  # type: ignore[assignment]
    fast, *slow = FakeWs(), FakeWs(MAX_BUFFER + 1), FakeWs(MAX_BUFFER + 1), FakeWs(MAX_BUFFER + 1)
    for n, ws in enumerate([fast, *slow]):
        await fanout.join(SimpleNamespace(connection_id=f"c{n}", room_id="room", user_id=f"u{n}", websocket=ws))
    items = [DeliveryItem(Kind.SEND_MESSAGE, b"{}", frame_id=str(n)) for n in range(5)]
    before = _aborts()
    fanout.on_room("room", RoomDelivery("room", items).encode())
    assert _aborts() - before == 3  # before: 15, one per item per slow reader
    assert [ws.transport.aborted for ws in slow] == [1, 1, 1]
    assert fast.transport.written == [b"".join(text_frame(item.frame) for item in items)]  # one write


async def test_a_batch_for_the_whole_room_is_one_write_per_socket_in_order() -> None:
    """Write coalescing: a router batch of k frames costs each socket one write, not k."""
    fanout = RoomFanout(MAX_BUFFER)
    fanout.subscription = _Subscription()  # type: ignore[assignment]
    sockets = [FakeWs() for _ in range(3)]
    for n, ws in enumerate(sockets):
        await fanout.join(SimpleNamespace(connection_id=f"c{n}", room_id="room", user_id=f"u{n}", websocket=ws))
    items = [DeliveryItem(Kind.SEND_MESSAGE, f'{{"n":{n}}}'.encode(), frame_id=str(n)) for n in range(4)]
    fanout.on_room("room", RoomDelivery("room", items).encode())
    expected = b"".join(text_frame(item.frame) for item in items)
    assert [ws.transport.written for ws in sockets] == [[expected]] * 3
    # a batch holding a targeted item (a direct message) keeps the per-frame path: its audience differs
    direct = DeliveryItem(Kind.SEND_MESSAGE, b'{"dm":1}', frame_id="d", only_users=["u1"])
    fresh = DeliveryItem(Kind.SEND_MESSAGE, b'{"n":4}', frame_id="4")  # (a delivered id would be skipped)
    fanout.on_room("room", RoomDelivery("room", [fresh, direct]).encode())
    assert [len(ws.transport.written) for ws in sockets] == [2, 3, 2]


# --- over real sockets, on asyncio and on uvloop ---------------------------------------------------


def _server_side(node: Node, client: ChatClient) -> ServerConnection:
    assert node.gateway is not None
    port = client.ws.local_address[1]
    return next(ws for ws in node.gateway.fanout.connections() if ws.remote_address[1] == port)


def _stall(node: Node, client: ChatClient) -> ServerConnection:
    """The client stops reading; small kernel buffers on both ends keep the backlog in the gateway."""
    client.ws.transport.pause_reading()
    client.ws.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    server_ws = _server_side(node, client)
    server_ws.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    return server_ws


def _big_item(size: int) -> DeliveryItem:
    frame_id = new_id()
    frame = frames.message_frame(
        frame_id=frame_id,
        request_id=None,
        content="x" * size,
        attributes=None,
        send_ms=now_ms(),
        sender_user_id="u",
        sender_attributes=None,
    )
    return DeliveryItem(Kind.SEND_MESSAGE, frame, frame_id=frame_id)


async def _until(condition: Callable[[], bool], timeout: float = 3.0) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


class Clients(list[ChatClient]):
    """The scenario's clients; aborted before the node stops, so a failing test cannot hang."""

    async def open(self, node: Node, token: str) -> ChatClient:
        client = await ChatClient.open(ws_url(node), token)
        self.append(client)
        return client


def _run(loop: str, settings: Settings, scenario: Callable[[Node, Clients], Awaitable[None]]) -> None:
    async def main() -> None:
        clients = Clients()
        node = Node(
            settings.with_(max_send_buffer=MAX_BUFFER),
            MemoryStore(),
            MemoryBus(settings.shards),
            api=False,
            router_all_shards=True,
        )
        await node.start(gateway_port=0)
        try:
            await scenario(node, clients)
        finally:
            for client in clients:
                client.ws.transport.abort()
            await node.stop()

    LOOPS[loop](main())


@pytest.mark.parametrize("loop", LOOPS)
def test_slow_readers_of_a_multi_item_batch_are_each_aborted_and_counted_once(loop: str, settings: Settings) -> None:
    async def scenario(node: Node, clients: Clients) -> None:
        room = await make_room(node)
        reader = await clients.open(node, mint_token(node, room, "reader"))
        stalled = [await clients.open(node, mint_token(node, room, f"s{n}")) for n in range(3)]
        server_side = [_stall(node, client) for client in stalled]
        items = [_big_item(16_000) for _ in range(10)]
        before = _aborts()
        await node.bus.fanout.publish_rooms([(room.id, RoomDelivery(room.id, items).encode())])
        got = [await reader.expect(Type="MESSAGE") for _ in items]
        assert [frame["Id"] for frame in got] == [item.frame_id for item in items]
        assert await _until(lambda: all(ws.transport.is_closing() for ws in server_side))
        await asyncio.sleep(0.05)
        assert _aborts() - before == 3  # before, under uvloop: 21

    _run(loop, settings, scenario)


async def _over_buffer(node: Node, room_id: str, client: ChatClient) -> ServerConnection:
    """Stall ``client`` and leave its gateway transport over the buffer, not yet aborted: a single
    write goes through whatever is buffered, so one big frame gets it there."""
    server_ws = _stall(node, client)
    await node.bus.fanout.publish_rooms([(room_id, RoomDelivery(room_id, [_big_item(256_000)]).encode())])
    await asyncio.sleep(0.05)
    assert server_ws.transport.get_write_buffer_size() > MAX_BUFFER and not server_ws.transport.is_closing()
    return server_ws


REPLIES = {
    "HISTORY": '{"Action":"GET_HISTORY","RequestId":"r"}',
    "PRESENCE": '{"Action":"GET_PRESENCE","RequestId":"r"}',
    "PONG": '{"Action":"PING","RequestId":"r"}',
    "ERROR": '{"Action":"FLY","RequestId":"r"}',
}


@pytest.mark.parametrize("reply", REPLIES)
@pytest.mark.parametrize("loop", LOOPS)
def test_a_reply_to_an_over_buffer_socket_aborts_it_and_is_counted(loop: str, reply: str, settings: Settings) -> None:
    async def scenario(node: Node, clients: Clients) -> None:
        room = await make_room(node)
        client = await clients.open(node, mint_token(node, room, "alice"))
        server_ws = await _over_buffer(node, room.id, client)
        before = _aborts()
        await client.ws.send(REPLIES[reply])  # the client still sends; it only stopped reading
        assert await _until(server_ws.transport.is_closing), f"the {reply} reply neither arrived nor aborted"
        await asyncio.sleep(0.05)
        assert _aborts() - before == 1

    _run(loop, settings, scenario)


def _expiring_token(node: Node, room: Room, left_ms: int) -> str:
    """alice's token, minted a minute minus ``left_ms`` ago with a 1-minute session: it can still
    connect, and its session ends ``left_ms`` from now."""
    token, _ = tokens.mint(
        node.settings.token_secret_bytes,
        room_id=room.id,
        user_id="alice",
        capabilities=["SEND_MESSAGE"],
        attributes=None,
        now_ms=now_ms() - (60_000 - left_ms),
        session_minutes=1,
    )
    return token


@pytest.mark.parametrize("loop", LOOPS)
def test_session_expiry_to_an_over_buffer_socket_aborts_it(loop: str, settings: Settings) -> None:
    async def scenario(node: Node, clients: Clients) -> None:
        room = await make_room(node)
        token = _expiring_token(node, room, left_ms=1500)
        client = await clients.open(node, token)
        server_ws = await _over_buffer(node, room.id, client)
        before = _aborts()
        assert await _until(server_ws.transport.is_closing, timeout=4.0)
        await asyncio.sleep(0.05)
        assert _aborts() - before == 1

    _run(loop, settings, scenario)


async def test_session_expiry_tells_a_reading_client_to_reconnect_then_closes(settings: Settings) -> None:
    node = Node(settings, MemoryStore(), MemoryBus(settings.shards), api=False, router_all_shards=True)
    await node.start(gateway_port=0)
    try:
        room = await make_room(node)
        token = _expiring_token(node, room, left_ms=500)
        client = await ChatClient.open(ws_url(node), token)
        error = await client.expect(Type="ERROR", timeout=3)
        assert (error["ErrorCode"], error["ErrorMessage"]) == (401, "Chat session expired")
        await asyncio.wait_for(client.ws.wait_closed(), 3)
        assert client.ws.close_code == 4001
    finally:
        await node.stop()


@pytest.mark.parametrize("loop", LOOPS)
def test_shutdown_does_not_wait_on_a_client_that_stopped_reading(loop: str, settings: Settings) -> None:
    async def main() -> None:
        node = Node(
            settings.with_(max_send_buffer=MAX_BUFFER),
            MemoryStore(),
            MemoryBus(settings.shards),
            api=False,
            router_all_shards=True,
        )
        await node.start(gateway_port=0)
        room = await make_room(node)
        reader = await ChatClient.open(ws_url(node), mint_token(node, room, "reader"))
        stalled = await ChatClient.open(ws_url(node), mint_token(node, room, "stalled"))
        await _over_buffer(node, room.id, stalled)
        before = _aborts()
        stopping = asyncio.create_task(node.stop())
        done, _ = await asyncio.wait([stopping], timeout=5)
        stalled.ws.transport.abort()  # lets a stop that waits on it finish (before: its ERROR 401 awaited drain)
        await stopping
        assert done, "stop() waited on a client that stopped reading"
        assert _aborts() - before == 1
        error = await reader.expect(Type="ERROR")
        assert error["ErrorCode"] == 401
        await reader.close()

    LOOPS[loop](main())
