"""Encode-once fan-out: one serialized frame, written to every open socket; slow ones dropped."""

from __future__ import annotations

import asyncio
import json
import socket
from types import SimpleNamespace
from typing import Any, cast

from websockets.asyncio.server import ServerConnection
from websockets.frames import Frame
from websockets.protocol import State
from websockets.streams import StreamReader

from gateway.wire import text_frame, write_frame
from parley.embedded import Node
from parley.testing.chatclient import ChatClient
from shared.clock import now_ms
from shared.config import Settings
from shared.engine.memory import MemoryBus, MemoryStore
from shared.engine.records import RecordKind
from shared.protocol.ids import new_id, room_arn
from shared.protocol.models import Room
from shared.protocol.tokens import mint


class FakeTransport:
    def __init__(self, buffered: int = 0) -> None:
        self.written: list[bytes] = []
        self.buffered = buffered
        self.aborted = False

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return self.aborted

    def abort(self) -> None:
        self.aborted = True


def _conn(state: State = State.OPEN, buffered: int = 0) -> Any:
    return SimpleNamespace(protocol=SimpleNamespace(state=state), transport=FakeTransport(buffered))


def _parse(raw: bytes) -> Frame:
    reader = StreamReader()
    reader.feed_data(raw)
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        return done.value
    raise AssertionError("incomplete frame")


def test_text_frame_round_trips_through_websockets_parser() -> None:
    for payload in (b"x", "é".encode() * 100, b"y" * 70_000):  # 7-bit, 16-bit and 64-bit lengths
        frame = _parse(text_frame(payload))
        assert frame.opcode.name == "TEXT" and frame.fin and frame.data == payload


def test_write_frame_skips_closed_and_drops_slow_connections() -> None:
    open_a, open_b = _conn(), _conn()
    closing = _conn(State.CLOSING)
    slow = _conn(buffered=2_000_000)
    raw = text_frame(b'{"Type":"MESSAGE"}')
    sent = write_frame([open_a, closing, slow, open_b], raw, max_buffer=1_000_000)
    assert sent == 2 and slow.transport.aborted and not closing.transport.aborted
    assert open_a.transport.written == [raw] == open_b.transport.written
    assert closing.transport.written == [] and slow.transport.written == []


async def test_a_reader_that_stops_reading_is_dropped_and_others_keep_up(settings: Settings) -> None:
    settings = settings.with_(max_send_buffer=64 * 1024, connection_rate_per_second=1_000_000)
    node = Node(settings, MemoryStore(), MemoryBus(settings.shards), api=False, router_all_shards=True)
    await node.start(gateway_port=0)
    try:
        room_id = new_id()
        room = Room(id=room_id, arn=room_arn("us-east-1", "1", room_id), maximum_message_rate_per_second=10**6)
        await node.store.records.create(RecordKind.ROOM, room_id, room.to_record(), now_ms(), 10)

        def token(user: str) -> str:
            return mint(
                settings.token_secret_bytes,
                room_id=room_id,
                user_id=user,
                capabilities=["SEND_MESSAGE"],
                attributes=None,
                now_ms=now_ms(),
                session_minutes=60,
            )[0]

        assert node.gateway is not None
        url = f"ws://127.0.0.1:{node.gateway.port}/"
        sender = await ChatClient.open(url, token("sender"))
        stalled = await ChatClient.open(url, token("stalled"))
        stalled.ws.transport.pause_reading()  # a client that stops reading its socket
        # Small kernel buffers on both ends, so the backlog lands in the gateway's own buffer.
        stalled.ws.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        for ws in node.gateway.fanout.connections():
            if ws.remote_address[1] == stalled.ws.local_address[1]:
                ws.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        body = "z" * 500
        total = 1000  # ~0.5 MB: far past the kernel buffers and the 64 KiB send buffer
        for n in range(total):
            await sender.ws.send(json.dumps({"Action": "SEND_MESSAGE", "Content": body, "RequestId": str(n)}))
        received = 0
        while received < total:
            frame = await sender.recv(timeout=10)
            received += frame["Type"] == "MESSAGE"
        await asyncio.sleep(0.1)  # let the aborted connection's handler finish
        assert len(node.gateway.fanout) == 1  # the stalled reader was aborted, the sender kept up
        await sender.close()
        stalled.ws.transport.abort()
    finally:
        await node.stop()
        await asyncio.sleep(0)


class _FakeWs:
    """Hashable stand-in for a ServerConnection: what RoomFanout and write_frame touch."""

    def __init__(self) -> None:
        self.protocol = SimpleNamespace(state=State.OPEN)
        self.transport = FakeTransport()


class _FakeSubscription:
    async def add_room(self, room_id: str) -> None:
        pass

    async def remove_room(self, room_id: str) -> None:
        pass


async def test_catch_up_skips_live_frames_that_trail_their_history_entry(monkeypatch: Any) -> None:
    """A message's history entry is written before its publish, so its live frame can arrive after
    the catch-up read released the connection: it must be skipped, not shown twice."""
    from gateway import fanout as fanout_module
    from gateway.fanout import RoomFanout
    from shared.protocol.envelope import DeliveryItem, Kind, RoomDelivery

    monkeypatch.setattr(fanout_module, "CAUGHT_UP_SECONDS", 0.05)
    fanout = RoomFanout()
    fanout.subscription = _FakeSubscription()  # type: ignore[assignment]
    reader, other = _FakeWs(), _FakeWs()
    for n, ws in enumerate((reader, other)):
        await fanout.join(SimpleNamespace(connection_id=f"c{n}", room_id="room", user_id=f"u{n}", websocket=ws))

    def live(frame_id: str, kind: Kind = Kind.SEND_MESSAGE) -> None:
        item = DeliveryItem(kind, frame_id.encode(), "MESSAGE", frame_id=frame_id)
        fanout.on_room("room", RoomDelivery("room", [item]).encode())

    held = cast(ServerConnection, reader)  # a fake of what RoomFanout touches
    fanout.hold(held)
    live("m1")  # arrives during the read: held
    fanout.release(held, {"m1", "m2"})  # the HISTORY frame carried m1 and m2
    live("m2")  # trails its history entry: skipped for the reader only
    live("m3")
    assert [_parse(raw).data for raw in reader.transport.written] == [b"m3"]
    assert [_parse(raw).data for raw in other.transport.written] == [b"m1", b"m2", b"m3"]
    await asyncio.sleep(0.1)  # the check lapses: nothing is filtered for good
    live("m2", Kind.SEND_EVENT)  # (a message id the room delivered stays skipped: gateway.gaptrail)
    assert _parse(reader.transport.written[-1]).data == b"m2"
