"""Fan-out gap fill: after a lost pub/sub subscription a gateway delivers what it missed from the
room's history, in order and once (gateway.gaptrail, gateway.fanout's pause, gateway.gapfill)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from gateway.fanout import RoomFanout
from gateway.gapfill import GapFill
from gateway.gaptrail import SLACK_MS, RoomTrail, Unrecovered, plan_fill
from parley.embedded import Node
from parley.testing.chatclient import ChatClient
from parley.testing.cluster import suite_settings
from shared import metrics
from shared.clock import now_ms
from shared.config import Settings
from shared.engine.memory import MemoryStore
from shared.engine.records import RecordKind
from shared.protocol import frames
from shared.protocol.envelope import DeliveryItem, Kind, RoomDelivery
from shared.protocol.ids import room_arn
from shared.protocol.models import Room
from tests.engine_helpers import kill_subscriber
from tests.nodes import make_room, mint_token
from tests.test_wire import _FakeSubscription, _FakeWs, _parse


def _entry(message_id: str, send_ms: int = 1_000_000) -> tuple[str, bytes]:
    frame = frames.message_frame(
        frame_id=message_id,
        request_id=None,
        content=message_id,
        attributes=None,
        send_ms=send_ms,
        sender_user_id="u",
        sender_attributes=None,
    )
    return message_id, frame


def _trail(*delivered: str, since_ms: int = 0, last_ms: int = 0) -> RoomTrail:
    trail = RoomTrail(since_ms=since_ms)
    for message_id in delivered:
        trail.delivered(message_id, last_ms)
    return trail


# --- the pure part: which history entries were missed --------------------------------------------
def test_fill_is_what_follows_the_last_delivered_message() -> None:
    rows = [_entry(i) for i in ("m1", "m2", "m3", "m4")]
    fill = plan_fill(_trail("m1", "m2"), rows, limit=10)
    assert [i for i, _ in fill.entries] == ["m3", "m4"] and fill.unrecovered is None


def test_fill_never_repeats_a_delivered_message_even_out_of_history_order() -> None:
    rows = [_entry(i) for i in ("m1", "m2", "m3", "m4")]
    fill = plan_fill(_trail("m4", "m2"), rows, limit=10)  # m4 arrived before the cut, m2 last
    assert [i for i, _ in fill.entries] == ["m3"]


def test_fill_without_a_delivered_message_starts_at_the_subscription() -> None:
    rows = [_entry("old", send_ms=900), _entry("new", send_ms=1_100)]
    fill = plan_fill(_trail(since_ms=1_000), rows, limit=10)
    assert [i for i, _ in fill.entries] == ["new"] and fill.unrecovered is None


def test_fill_when_the_last_delivered_message_left_the_history_is_counted_as_trimmed() -> None:
    # m1 was deleted (or trimmed): entries accepted since about its delivery are taken, minus the seen
    delivered_at = 1_000_000
    rows = [_entry("older", delivered_at - SLACK_MS - 1), _entry("m2", delivered_at), _entry("m3", delivered_at + 5)]
    trail = _trail("m1", "m2", last_ms=delivered_at)
    trail.last_id = "m1"
    fill = plan_fill(trail, rows, limit=10)
    assert [i for i, _ in fill.entries] == ["m3"] and fill.unrecovered is Unrecovered.TRIMMED


def test_fill_is_bounded_by_count_and_keeps_the_newest() -> None:
    rows = [_entry(f"m{n}") for n in range(6)]  # the newest limit + 1, the cursor not among them
    fill = plan_fill(_trail(since_ms=0), rows, limit=5)
    assert [i for i, _ in fill.entries] == [f"m{n}" for n in range(1, 6)] and fill.unrecovered is Unrecovered.LIMIT
    fill = plan_fill(_trail("m0", since_ms=0), rows, limit=5)  # the cursor is the oldest read
    assert len(fill.entries) == 5 and fill.unrecovered is None


def test_trail_forgets_the_oldest_ids_beyond_its_bound() -> None:
    from gateway import gaptrail

    trail = _trail(*(f"m{n}" for n in range(gaptrail.RECENT_IDS + 1)))
    assert not trail.seen("m0") and trail.seen("m1") and trail.seen(f"m{gaptrail.RECENT_IDS}")


# --- the fan-out's pause: live frames wait behind the gap's messages ------------------------------
async def _room_fanout() -> tuple[RoomFanout, _FakeWs]:
    fanout = RoomFanout()
    fanout.subscription = _FakeSubscription()  # type: ignore[assignment]
    ws = _FakeWs()
    await fanout.join(SimpleNamespace(connection_id="c", room_id="room", user_id="u", websocket=ws))
    return fanout, ws


def _live(fanout: RoomFanout, *items: DeliveryItem) -> None:
    fanout.on_room("room", RoomDelivery("room", list(items)).encode())


def _message(message_id: str) -> DeliveryItem:
    return DeliveryItem(Kind.SEND_MESSAGE, message_id.encode(), frame_id=message_id)


def _got(ws: _FakeWs) -> list[bytes]:
    return [bytes(_parse(raw).data) for raw in ws.transport.written]


async def test_paused_room_gets_the_gap_then_the_live_frames_once_each() -> None:
    fanout, ws = await _room_fanout()
    _live(fanout, _message("m1"))
    pause, trails = fanout.pause_rooms()
    _live(fanout, _message("m3"), DeliveryItem(Kind.SEND_EVENT, b"e1", frame_id="e1"))  # waits
    _live(fanout, _message("m4"))
    assert _got(ws) == [b"m1"]
    # the read saw m2 and m3 (m3's publish had already arrived, m4's not yet)
    filled = fanout.resume("room", pause, trails["room"], [(i, i.encode()) for i in ("m2", "m3")])
    assert filled == 2
    _live(fanout, _message("m3"))  # a live frame trailing its history entry: not repeated
    _live(fanout, _message("m5"))
    assert _got(ws) == [b"m1", b"m2", b"m3", b"e1", b"m4", b"m5"]


async def test_messages_of_one_coalesced_write_are_on_the_trail_too() -> None:
    fanout, ws = await _room_fanout()
    _live(fanout, _message("m1"), _message("m2"))  # a router batch: one write per socket
    pause, trails = fanout.pause_rooms()
    assert fanout.resume("room", pause, trails["room"], [(i, i.encode()) for i in ("m1", "m2", "m3")]) == 1
    assert len(ws.transport.written) == 2 and _got(ws)[-1] == b"m3"  # the batch's one write, then m3


async def test_a_later_pause_keeps_the_room_waiting_until_its_own_fill() -> None:
    fanout, ws = await _room_fanout()
    first, trails = fanout.pause_rooms()
    _live(fanout, _message("m2"))
    second, _ = fanout.pause_rooms()  # the subscription was lost again meanwhile
    _live(fanout, _message("m4"))
    fanout.resume("room", first, trails["room"], [("m1", b"m1")])
    assert _got(ws) == [b"m1"]  # the first fill's messages; the live ones still wait
    fanout.resume("room", second, trails["room"], [("m2", b"m2"), ("m3", b"m3")])
    assert _got(ws) == [b"m1", b"m2", b"m3", b"m4"]


async def test_a_room_left_and_joined_anew_during_the_fill_gets_no_stale_messages() -> None:
    fanout, ws = await _room_fanout()
    pause, trails = fanout.pause_rooms()
    member = SimpleNamespace(connection_id="c", room_id="room", user_id="u", websocket=ws)
    await fanout.leave(member)
    await fanout.join(member)
    _live(fanout, _message("m9"))  # the new room is not paused
    assert fanout.resume("room", pause, trails["room"], [("m1", b"m1")]) == 0
    assert _got(ws) == [b"m9"]


# --- the catch-up itself, on the memory store ---------------------------------------------------
async def _confirmed() -> None:
    pass


async def _gap_fill(history_max_messages: int) -> tuple[GapFill, RoomFanout, _FakeWs, MemoryStore]:
    store = MemoryStore()
    room = Room(id="room", arn=room_arn("us-east-1", "123456789012", "room"), history_max_messages=history_max_messages)
    await store.records.create(RecordKind.ROOM, "room", room.to_record(), now_ms(), 100)
    fanout, ws = await _room_fanout()
    return GapFill(fanout, store, Settings()), fanout, ws, store


async def test_gap_fill_delivers_the_missed_history_then_the_waiting_live_frames() -> None:
    gap_fill, fanout, ws, store = await _gap_fill(history_max_messages=50)
    recovered = metrics.FANOUT_GAP_RECOVERED._value.get()
    _live(fanout, _message("m1"))
    at = now_ms()
    await store.history.append("room", [_entry(i, at) for i in ("m1", "m2", "m3")], 50, 60_000)
    gap_fill.on_resubscribed(_confirmed())
    _live(fanout, _message("m3"), _message("m4"))  # published after the history read started
    await gap_fill.wait()
    # live frames here are their ids; filled ones the history's MESSAGE frames
    got = [orjson.loads(raw)["Content"] if raw.startswith(b"{") else raw.decode() for raw in _got(ws)]
    assert got == ["m1", "m2", "m3", "m4"]
    assert metrics.FANOUT_GAP_RECOVERED._value.get() == recovered + 2


async def test_gap_fill_counts_a_room_without_history_and_still_resumes_it() -> None:
    gap_fill, fanout, ws, _ = await _gap_fill(history_max_messages=0)
    unrecovered = metrics.FANOUT_GAP_UNRECOVERED.labels("no_history")._value.get()
    gap_fill.on_resubscribed(_confirmed())
    _live(fanout, _message("m1"))
    await gap_fill.wait()
    assert _got(ws) == [b"m1"]
    assert metrics.FANOUT_GAP_UNRECOVERED.labels("no_history")._value.get() == unrecovered + 1


# --- on real Redis: the gateway's subscriber connection killed while messages flow ----------------
@pytest.fixture
def settings(namespace: str) -> Settings:
    return suite_settings(namespace).with_(connection_rate_per_second=1000)


@contextlib.asynccontextmanager
async def _clients(node: Node, room: Any, users: tuple[str, ...]) -> AsyncIterator[list[ChatClient]]:
    assert node.gateway is not None
    url = f"ws://127.0.0.1:{node.gateway.port}"
    clients = [await ChatClient.open(url, mint_token(node, room, user)) for user in users]
    try:
        yield clients
    finally:
        for client in clients:
            await client.close()


async def _contents(client: ChatClient, count: int, timeout: float = 20.0) -> list[str]:
    got: list[str] = []
    deadline = asyncio.get_running_loop().time() + timeout
    while len(got) < count and asyncio.get_running_loop().time() < deadline:
        with contextlib.suppress(TimeoutError):
            frame = await client.recv(0.5)
            if frame.get("Type") == "MESSAGE":
                got.append(frame["Content"])
    got += [frame["Content"] for frame in await client.drain(0.5) if frame.get("Type") == "MESSAGE"]
    return got


@pytest.mark.parametrize("node", [pytest.param("real", marks=pytest.mark.integration)], indirect=True)
async def test_receivers_miss_nothing_when_the_subscriber_connection_is_killed(
    node: Node, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    room = await make_room(node, maximum_message_rate_per_second=100)
    fanout: Any = node.bus.fanout
    (link,) = fanout._hub._links.values()  # one server: one subscriber link
    reconnect = link.connect

    async def slow_reconnect() -> None:  # a cut that lasts: messages are published meanwhile
        await asyncio.sleep(0.4)
        await reconnect()

    monkeypatch.setattr(link, "connect", slow_reconnect)
    recovered = metrics.FANOUT_GAP_RECOVERED._value.get()
    sent = [f"m{n}" for n in range(40)]
    async with _clients(node, room, ("sender", "alice", "bob")) as (sender, alice, bob):

        async def send_all() -> None:
            for n, content in enumerate(sent):
                await sender.send_message(content)
                if n in (10, 25):
                    assert await kill_subscriber(redis_url, fanout.subscriber_name) == 1
                await asyncio.sleep(0.05)

        sending = asyncio.create_task(send_all())
        alice_got, bob_got = await asyncio.gather(_contents(alice, len(sent)), _contents(bob, len(sent)))
        await sending
        errors = [frame for frame in await sender.drain(0.3) if frame.get("Type") == "ERROR"]
    assert fanout.reconnects == 2
    assert errors == []  # every message accepted
    assert alice_got == sent and bob_got == sent  # every accepted message, once, in order
    assert metrics.FANOUT_GAP_RECOVERED._value.get() > recovered  # the cuts did lose publishes
