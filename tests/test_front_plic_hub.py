"""The plic hub without sockets: one encoding per room delivery, the sender's confirmation,
router refusals in the seed's shape, and the send path's policy for a client that stopped reading."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
from aiohttp import web

from gateway.fronts.plic import hub as hub_module
from gateway.fronts.plic.connection import PlicConnection
from gateway.fronts.plic.hub import Hub, HubStore
from shared.features.ratelimit import SlidingWindow
from shared.protocol import frames
from shared.protocol.envelope import ConnectionNotice, DeliveryItem, Kind, RoomDelivery
from tests.front_helpers import FakeSubscription, FakeTransport, FakeWs


def connection(user: str, buffered: int = 0) -> tuple[PlicConnection, FakeTransport]:
    transport = FakeTransport(buffered)
    ws = cast("web.WebSocketResponse", FakeWs())
    return PlicConnection(f"c-{user}", user, ws, cast("Any", transport), SlidingWindow(10)), transport


def payload(raw: bytes) -> dict[str, Any]:
    header = 4 if raw[1] & 0x7F == 126 else 2  # an unmasked text frame under 64 KiB
    body: dict[str, Any] = json.loads(raw[header:])
    return body


async def test_one_encoding_per_room_delivery_and_the_senders_confirmation(monkeypatch: pytest.MonkeyPatch) -> None:
    hub = Hub(cast("HubStore", None), max_buffer=1000)
    subscription = hub.subscription = FakeSubscription()
    encoded: list[bytes] = []
    real = hub_module.text_frame

    def counting(payload: bytes) -> bytes:
        encoded.append(payload)
        return real(payload)

    monkeypatch.setattr(hub_module, "text_frame", counting)
    conns = [connection(user) for user in ("alice", "bob", "carol", "bob")]
    for conn, _ in conns:
        hub.register(conn)
        await hub.receive(conn, "PARLEYROOM01", 7)
    assert subscription.rooms == {"PARLEYROOM01"}
    sender = conns[0][0]
    hub.expect("req-1", sender, "temp-1")
    frame = frames.message_frame(
        frame_id="abcdefghijkl",
        request_id="req-1",
        content="hi",
        attributes=None,
        send_ms=0,
        sender_user_id="alice",
        sender_attributes=None,
    )
    hub.on_room("PARLEYROOM01", RoomDelivery("PARLEYROOM01", [DeliveryItem(Kind.SEND_MESSAGE, frame)]).encode())
    assert len(encoded) == 1  # once for the room, whatever the number of connections
    received = [transport.writes for _, transport in conns[1:]]
    assert all(writes == received[0] for writes in received) and all(len(w) == 1 for w in received)
    assert all(writes[0] is received[0][0] for writes in received)  # the very same bytes
    assert payload(received[0][0]) == {
        "type": "MessageReceived",
        "data": {"room_id": 7, "sender_id": "alice", "message": "hi"},
    }
    [confirmation] = conns[0][1].writes
    assert payload(confirmation)["data"] == {
        "confirmed": True,
        "reason": "",
        "message_id": "abcdefghijkl",
        "message_temp_id": "temp-1",
    }
    for conn, _ in conns:
        await hub.leave(conn)
    assert subscription.rooms == set()


async def test_router_refusals_and_slow_consumers() -> None:
    hub = Hub(cast("HubStore", None), max_buffer=1000)
    hub.subscription = FakeSubscription()
    alice, alice_transport = connection("alice")
    slow, slow_transport = connection("slow", buffered=5000)
    for conn in (alice, slow):
        hub.register(conn)
        await hub.receive(conn, "PARLEYROOM01", 7)
    hub.expect("req-2", alice, "temp-2")
    error = frames.error_frame(frame_id="abcdefghijkl", request_id="req-2", code=406, message="Message rejected")
    hub.on_gateway(ConnectionNotice(alice.connection_id, error).encode())
    confirmation, disconnection = (payload(raw) for raw in alice_transport.writes)
    assert confirmation["data"]["confirmed"] is False and confirmation["data"]["message_temp_id"] == "temp-2"
    assert disconnection == {"type": "Disconnection", "data": {"code": 4011, "reason": "Message rejected"}}
    frame = frames.message_frame(
        frame_id="abcdefghijkm",
        request_id=None,
        content="x",
        attributes=None,
        send_ms=0,
        sender_user_id="ivs",
        sender_attributes=None,
    )
    hub.on_room("PARLEYROOM01", RoomDelivery("PARLEYROOM01", [DeliveryItem(Kind.SEND_MESSAGE, frame)]).encode())
    assert slow_transport.aborted and slow_transport.writes == []
    for task in list(hub._tasks):
        await task
    assert cast("FakeWs", alice.ws).closes == [4011]
