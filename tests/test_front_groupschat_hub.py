"""The groups-chat hub without sockets: one encoding per room delivery, the sender's 21 (messages
are kept in the logs by the router, not here), receipts to the message's sender only and its log,
router refusals as ERROR events, de-duplication between the live path and a log replay, the
cursor saved as events are delivered, and slow consumers."""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

import pytest
from aiohttp import web

from gateway.fronts.groupschat import hub as hub_module
from gateway.fronts.groupschat.cursor import Cursor, SaveSchedule
from gateway.fronts.groupschat.groups import Groups
from gateway.fronts.groupschat.hub import Connection, Hub
from shared.features.ratelimit import SlidingWindow
from shared.protocol import frames
from shared.protocol.envelope import ConnectionNotice, DeliveryItem, Kind, RoomDelivery
from tests.front_helpers import FakeSubscription, FakeTransport, FakeWs

ROOM = "GROUPROOM001"


class FakeLog:
    def __init__(self) -> None:
        self.appended: list[tuple[list[str], str, bytes, str]] = []
        self.kept: list[tuple[str, str, bytes]] = []
        self.saved: list[Cursor] = []

    async def append(self, users: list[str], event_id: str, raw: bytes, group_id: str) -> None:
        self.appended.append((users, event_id, raw, group_id))

    async def read(self, user_id: str) -> list[tuple[str, str, bytes]]:
        return self.kept

    async def advance(self, user_id: str, cursor: Cursor) -> bool:
        self.saved.append(cursor)
        return True


class FakeGroups:
    def __init__(self, members: list[str]) -> None:
        self.log = FakeLog()
        self._members = members

    async def members(self, group_id: str) -> list[str]:
        return self._members


def connection(user: str, buffered: int = 0) -> tuple[Connection, FakeTransport]:
    transport = FakeTransport(buffered)
    ws = cast("web.WebSocketResponse", FakeWs())
    return Connection(f"c-{user}", user, ws, transport, SlidingWindow(10), floor=0), transport


def payload(raw: bytes) -> dict[str, Any]:
    header = 4 if raw[1] & 0x7F == 126 else 2
    body: dict[str, Any] = json.loads(raw[header:])
    return body


def message(request_id: str | None, frame_id: str = "MSG000000001", send_ms: int = 1000) -> bytes:
    return frames.message_frame(
        frame_id=frame_id,
        request_id=request_id,
        content="hi",
        attributes=None,
        send_ms=send_ms,
        sender_user_id="alice",
        sender_attributes=None,
    )


def deliver(hub: Hub, frame: bytes, kind: str = Kind.SEND_MESSAGE, only: list[str] | None = None) -> None:
    hub.on_room(ROOM, RoomDelivery(ROOM, [DeliveryItem(kind, frame, only_users=only)]).encode())


async def started(
    members: list[str], users: list[str]
) -> tuple[Hub, FakeGroups, list[tuple[Connection, FakeTransport]]]:
    groups = FakeGroups(members)
    hub = Hub(cast("Groups", groups), max_buffer=1000)
    hub.subscription = FakeSubscription()
    conns = [connection(user) for user in users]
    for conn, _ in conns:
        hub.register(conn)
        await hub.add_room(conn, ROOM)
    return hub, groups, conns


async def test_one_encoding_per_room_delivery_and_the_senders_21(monkeypatch: pytest.MonkeyPatch) -> None:
    hub, groups, conns = await started(["alice", "bob", "carol", "dan"], ["alice", "bob", "carol"])
    encoded: list[bytes] = []
    real = hub_module.text_frame

    def counting(raw: bytes) -> bytes:
        encoded.append(raw)
        return real(raw)

    monkeypatch.setattr(hub_module, "text_frame", counting)
    sender = conns[0][0]
    hub.expect("req-1", sender, 40, {"group_id": ROOM})
    deliver(hub, message("req-1"))
    assert len(encoded) == 2  # the 21 for the sender, and ONE 20 for the room
    bob, carol = conns[1][1].writes, conns[2][1].writes
    assert len(bob) == 1 and bob[0] is carol[0]  # the very same bytes
    assert payload(bob[0]) == {
        "type": 20,
        "timestamp": 1000,
        "body": {"message_id": "MSG000000001", "data": "hi", "group_id": ROOM, "user_id": "alice"},
    }
    [sent] = conns[0][1].writes
    assert payload(sent) == {"type": 21, "timestamp": 1000, "body": {"message_id": "MSG000000001"}}
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert groups.log.appended == []  # the router kept the message for every other member
    deliver(hub, message(None, "MSG000000002"))
    # the same event again (a replay) is not sent twice, live or from the log
    deliver(hub, message(None, "MSG000000002"))
    assert len(conns[1][1].writes) == 2
    groups.log.kept = [("MSG000000002", ROOM, message(None, "MSG000000002"))]
    await hub.pull(conns[1][0])
    assert len(conns[1][1].writes) == 2
    # what the router kept while bob was away comes from the log as a 20 event
    groups.log.kept.append(("MSG000000003", ROOM, message(None, "MSG000000003", send_ms=2000)))
    await hub.pull(conns[1][0])
    assert payload(conns[1][1].writes[2])["body"]["message_id"] == "MSG000000003"
    for conn, _ in conns:
        await hub.leave(conn)
    assert cast("FakeSubscription", hub.subscription).rooms == set()


async def test_receipts_go_to_the_messages_sender_and_its_log() -> None:
    hub, groups, conns = await started(["alice", "bob", "carol"], ["alice", "bob", "carol"])
    reader = conns[1][0]
    hub.expect("req-2", reader, 42, {"message_id": "MSG000000001"})
    event = frames.event_frame(
        frame_id="EVT000000001",
        event_name="parley:READ",
        attributes={"MessageId": "MSG000000001"},
        send_ms=5,
        request_id="req-2",
        sender_user_id="bob",
        recipient="alice",
    )
    deliver(hub, event, Kind.SEND_EVENT, only=["bob", "alice"])
    [read] = conns[0][1].writes
    assert payload(read)["type"] == 23 and payload(read)["body"]["message_id"] == "MSG000000001"
    assert conns[1][1].writes == [] and conns[2][1].writes == []
    await asyncio.sleep(0)
    assert [(users, event_id, group) for users, event_id, _, group in groups.log.appended] == [
        (["alice"], "EVT000000001", ROOM)
    ]


async def test_router_refusals_and_slow_consumers() -> None:
    hub, _, conns = await started(["alice", "slow"], ["alice"])
    alice, alice_transport = conns[0]
    hub.expect("req-3", alice, 40, {"group_id": ROOM})
    error = frames.error_frame(frame_id="ERR000000001", request_id="req-3", code=406, message="Message rejected")
    hub.on_gateway(ConnectionNotice(alice.connection_id, error).encode())
    [refused] = alice_transport.writes
    assert payload(refused)["type"] == 10
    assert payload(refused)["body"] == {"code": 406, "message": "Message rejected", "method": 40, "group_id": ROOM}
    slow, slow_transport = connection("slow", buffered=5000)
    hub.register(slow)
    await hub.add_room(slow, ROOM)
    typing = frames.event_frame(
        frame_id="EVT000000002", event_name="parley:TYPING_START", attributes={}, send_ms=5, sender_user_id="alice"
    )
    deliver(hub, typing, Kind.SEND_EVENT)
    assert slow_transport.aborted and slow_transport.writes == []
    assert len(alice_transport.writes) == 1  # typing is for the others


async def test_the_cursor_is_saved_every_n_events_and_after_t_ms() -> None:
    hub, groups, conns = await started(["alice", "bob"], ["bob"])
    bob = conns[0][0]
    bob.saves = SaveSchedule(every_events=3, every_ms=60_000)
    base = 1_700_000_000_000

    async def settle() -> None:
        for _ in range(5):
            await asyncio.sleep(0)

    for n in (1, 2):
        deliver(hub, message(None, f"MSG00000000{n}", send_ms=base + n))
    await settle()
    assert groups.log.saved == []  # 2 unsaved events: not yet
    deliver(hub, message(None, "MSG000000003", send_ms=base + 3))
    await settle()
    [first] = groups.log.saved  # the third makes a save due: one write for the three
    assert first.ms == base + 3 and set(first.ids) == {"MSG000000001", "MSG000000002", "MSG000000003"}
    bob.saves = SaveSchedule(every_events=100, every_ms=50)
    deliver(hub, message(None, "MSG000000004", send_ms=base + 4))
    await settle()
    assert len(groups.log.saved) == 1
    await asyncio.sleep(0.2)  # ... or T ms after the first unsaved one
    assert [cursor.ms - base for cursor in groups.log.saved] == [3, 4]
    await hub.finish(bob)  # the close path saves too
    assert groups.log.saved[-1].ms == base + 4 and bob.saver is None
