"""Seed 001 (relay) front end to end, on the memory and the real backends, with a client written
only from the seed document (``tests/relay_client.py``): every frame of the seed, errors,
limits, review and logs, approval, and an IVS client in the same room."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client import REGISTRY
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from logger_sink.records import records_from_delivery
from parley.embedded import Node
from parley.testing.chatclient import ChatClient
from shared.config import Settings
from shared.engine.records import RecordKind
from tests.nodes import BACKENDS, make_room, mint_token, started_node, ws_url
from tests.relay_client import RelayClient

ADMIN_KEY = "hfB2ZCr8PtlRPrv4i8fVOp0Zr9ChEWoPaCYjGFHr"


@pytest.fixture(params=BACKENDS)
async def node(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[Node]:
    settings = settings.with_(relay_admin_key=ADMIN_KEY, relay_create_rooms=True)
    async with started_node(request, settings, fronts=("relay",)) as started:
        yield started


@pytest.fixture(params=BACKENDS)
async def quick_node(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[Node]:
    """Approval timeout of 0.6 s."""
    settings = settings.with_(relay_admin_key=ADMIN_KEY, relay_create_rooms=True, approval_timeout=0.6)
    async with started_node(request, settings, fronts=("relay",)) as started:
        yield started


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def port(node: Node) -> int:
    return node.fronts["relay"].port


async def clients(node: Node, app: str, count: int) -> list[RelayClient]:
    return [await RelayClient.open(port(node), app) for _ in range(count)]


async def test_connect_gives_a_uuid_and_ping_gets_pong(node: Node) -> None:
    (a,) = await clients(node, "app1", 1)
    assert str(uuid.UUID(a.id)) == a.id
    await a.send("ping")
    assert await a.recv() == {"system": "pong"}
    await a.close()


async def test_to_all_reaches_the_others_not_the_sender(node: Node) -> None:
    a, b, c = await clients(node, "app1", 3)
    await a.send({"to": "all", "data": "pesan percobaan"})
    for other in (b, c):
        assert await other.expect(from_=a.id) == {"from": a.id, "data": "pesan percobaan"}
    await b.send({"to": "all", "data": {"event": "join", "n": [1, None]}})
    assert await a.expect(from_=b.id) == {"from": b.id, "data": {"event": "join", "n": [1, None]}}
    assert await c.expect(from_=b.id) == {"from": b.id, "data": {"event": "join", "n": [1, None]}}
    assert [f for f in await a.drain() if f.get("from") == a.id] == []
    assert [f for f in await b.drain() if f.get("from") == b.id] == []
    other_app = (await clients(node, "app2", 1))[0]
    assert await other_app.drain() == []  # another app is another room
    for client in (a, b, c, other_app):
        await client.close()


async def test_connections_racing_to_a_new_app_share_one_room(node: Node) -> None:
    """Dev mode creates an unknown app on first use: once, however many first connections race."""
    racers = await asyncio.gather(*(RelayClient.open(port(node), "raced-app") for _ in range(6)))
    await racers[0].send({"to": "all", "data": "one room"})
    for other in racers[1:]:
        assert await other.expect(from_=racers[0].id) == {"from": racers[0].id, "data": "one room"}
    assert await node.store.records.count(RecordKind.RELAY_APP) == 1
    for client in racers:
        await client.close()


async def test_to_an_id_reaches_that_connection_only(node: Node) -> None:
    a, b, c = await clients(node, "app1", 3)
    await a.send({"to": b.id, "data": {"event": "join"}})
    assert await b.expect(from_=a.id) == {"from": a.id, "data": {"event": "join"}}
    assert await a.drain() == [] and await c.drain() == []
    await a.send({"to": str(uuid.uuid4()), "data": "nobody"})  # an unknown id: delivered to nobody
    assert await b.drain() == [] and await c.drain() == []
    for client in (a, b, c):
        await client.close()


async def test_admin_key_new_ids_and_approval(node: Node) -> None:
    admin, user = await clients(node, "app1", 2)
    await admin.send({"to": "system", "event": "admin", "key": "wrong"})
    assert await admin.recv() == {"from": "system", "event": "admin", "status": "failed"}
    await admin.send({"to": "system", "event": "approved", "id": user.id})  # not admin yet
    refused = await admin.recv()
    assert refused["event"] == "approved" and refused["status"] == "failed"
    await admin.send({"to": "system", "event": "admin", "key": ADMIN_KEY})
    assert await admin.recv() == {"from": "system", "event": "admin", "status": "success"}
    (newcomer,) = await clients(node, "app1", 1)
    assert await admin.expect(new_id=newcomer.id) == {"from": "system", "new_id": newcomer.id}
    await admin.send({"to": "system", "event": "approved", "id": newcomer.id})
    assert await admin.expect(event="approved") == {
        "from": "system",
        "event": "approved",
        "id": newcomer.id,
        "status": "success",
    }
    await admin.send({"to": "system", "event": "approved", "id": str(uuid.uuid4())})
    unknown = await admin.expect(event="approved")
    assert unknown["status"] == "failed" and unknown["error"]
    for client in (admin, user, newcomer):
        await client.close()


async def test_neither_approved_nor_admin_is_closed_after_the_timeout(quick_node: Node) -> None:
    admin, approved, waiting = await clients(quick_node, "app1", 3)
    await admin.send({"to": "system", "event": "admin", "key": ADMIN_KEY})
    await admin.expect(event="admin", status="success")
    await admin.send({"to": "system", "event": "approved", "id": approved.id})
    await admin.expect(event="approved", status="success")
    await asyncio.sleep(1.0)
    with pytest.raises(ConnectionClosed):
        while True:
            await waiting.recv(2)
    assert waiting.ws.close_code == 4004
    assert waiting.frames and "error" in waiting.frames[-1]
    for alive in (admin, approved):  # still open and served
        await alive.send("ping")
        assert await alive.expect(system="pong")
        await alive.close()


async def test_malformed_frames_get_an_error_and_the_connection_stays(node: Node) -> None:
    (a,) = await clients(node, "app1", 1)
    for bad in ("pong", "{", "[]", '{"to":"all"}', '{"to":"system","event":"x"}', b"\xff"):
        await a.send(bad)
        frame = await a.recv()
        assert set(frame) == {"from", "error"} and frame["from"] == "system" and frame["error"]
        await asyncio.sleep(0.11)  # under the rate limit
    await a.send("ping")
    assert await a.recv() == {"system": "pong"}
    await a.close()


async def test_limits_frame_size_data_length_and_rates(node: Node) -> None:
    a, b = await clients(node, "app1", 2)
    await a.send({"to": "all", "data": "x" * 9000})  # over PARLEY_MAX_FRAME_BYTES (8192)
    assert "8192 bytes" in (await a.recv())["error"]
    await a.send({"to": "all", "data": "x" * 501})  # over the room's maximumMessageLength
    assert "500 characters" in (await a.recv())["error"]
    await a.send({"to": "all", "data": ["y" * 499]})  # JSON text counts: 505 characters
    assert "500 characters" in (await a.recv())["error"]
    await asyncio.sleep(1.1)
    for n in range(11):
        await a.send({"to": "all", "data": f"m{n}"})
    assert "too many requests" in (await a.expect(from_="system"))["error"]
    assert len([f for f in await b.drain() if f.get("from") == a.id]) == 10
    for _ in range(10):
        await a.send({"to": "system", "event": "admin", "key": "guess"})
        assert (await a.recv())["status"] == "failed"
    await a.send({"to": "system", "event": "admin", "key": ADMIN_KEY})  # too many attempts: not even compared
    limited = await a.recv()
    assert limited["status"] == "failed" and "too many" in limited["error"]
    await a.close()
    await b.close()


async def test_a_message_through_the_front_is_reviewed(node: Node) -> None:
    room = await make_room(node, review_uri="parley:deny?reason=nope")
    a, b = await clients(node, room.id, 2)
    await a.send({"to": "all", "data": "hi"})
    error = await a.expect(from_="system")
    assert "rejected by review" in error["error"] and "nope" in error["error"]
    assert await b.drain() == []
    masked = await make_room(node, review_uri="parley:blocklist?words=darn&action=mask&mask=*")
    c, d = await clients(node, masked.id, 2)
    await c.send({"to": d.id, "data": "oh darn"})
    assert await d.expect(from_=c.id) == {"from": c.id, "data": "oh ****"}
    for client in (a, b, c, d):
        await client.close()


async def test_messages_through_the_front_are_logged_like_ivs(node: Node) -> None:
    room = await make_room(node, logging_configuration_identifiers=["cfg"])
    logged: list[dict[str, Any]] = []

    async def collect(room_id: str, data: bytes, ack: Any) -> None:
        _, records = records_from_delivery(data)
        logged.extend(json.loads(record.line) for record in records)
        await ack()

    consumer = await node.bus.logs.consume(collect)
    try:
        a, b = await clients(node, room.id, 2)
        requests_before = _sample("Requests_total", Action="SendMessage", Protocol="relay")
        deliveries_before = _sample("Deliveries_total", Action="SendMessage", Protocol="relay")
        await a.send({"to": "all", "data": {"k": "v"}})
        await b.expect(from_=a.id)
        assert (
            _sample("Requests_total", Action="SendMessage", Protocol="relay") - requests_before == 1
        )  # counted like IVS
        assert (
            _sample("Deliveries_total", Action="SendMessage", Protocol="relay") - deliveries_before == 1
        )  # b, not the sender
        for _ in range(100):
            if logged:
                break
            await asyncio.sleep(0.05)
        assert len(logged) == 1 and logged[0]["type"] == "MESSAGE"
        payload = logged[0]["payload"]
        assert payload["Sender"]["UserId"] == a.id and json.loads(payload["Content"]) == {"k": "v"}
        await a.close()
        await b.close()
    finally:
        await consumer.stop()


async def test_an_ivs_client_and_a_relay_client_share_the_room(node: Node) -> None:
    room = await make_room(node)
    ivs = await ChatClient.open(ws_url(node), mint_token(node, room, "alice"))
    (relay,) = await clients(node, room.id, 1)
    await ivs.send_message("hello relay")
    assert await relay.expect(from_="alice") == {"from": "alice", "data": "hello relay"}
    await relay.send({"to": "all", "data": "hello ivs"})
    got = await ivs.expect(Type="MESSAGE", Content="hello ivs")
    assert got["Sender"]["UserId"] == relay.id
    await relay.send({"to": "alice", "data": {"event": "join"}})  # a direct message to an IVS user
    direct = await ivs.expect(Type="MESSAGE", Recipient="alice")
    assert json.loads(direct["Content"]) == {"event": "join"} and direct["Attributes"] == {"relay:data": "json"}
    rid = await ivs.send("GET_PRESENCE")
    presence = await ivs.expect(Type="PRESENCE", RequestId=rid)
    assert relay.id in {user["UserId"] for user in presence["Users"]}
    await ivs.close()
    await relay.close()


async def test_unknown_apps_are_refused_unless_rooms_may_be_created(node: Node) -> None:
    front: Any = node.fronts["relay"]
    front.settings = front.settings.with_(relay_create_rooms=False)
    with pytest.raises(InvalidStatus) as caught:
        await connect(f"ws://127.0.0.1:{port(node)}/never-made", open_timeout=5)
    assert caught.value.response.status_code == 404
    with pytest.raises(InvalidStatus) as caught:
        await connect(f"ws://127.0.0.1:{port(node)}/bad/path", open_timeout=5)
    assert caught.value.response.status_code == 400
    room = await make_room(node)
    (by_id,) = await clients(node, room.id, 1)  # an existing room by its id
    await by_id.close()


async def test_stopping_the_front_tells_clients(node: Node) -> None:
    a, b = await clients(node, "app1", 2)
    await node.fronts["relay"].stop()
    for client in (a, b):
        with pytest.raises(ConnectionClosed):
            while True:
                await client.recv(5)
        assert client.frames[-1]["from"] == "system" and "shutting down" in client.frames[-1]["error"]
        assert client.ws.close_code == 1001
    with pytest.raises(OSError):
        await connect(f"ws://127.0.0.1:{port(node)}/app1", open_timeout=2)


async def test_an_ivs_moderator_approves_a_relay_connection(quick_node: Node) -> None:
    room = await make_room(quick_node)
    moderator = await ChatClient.open(
        ws_url(quick_node), mint_token(quick_node, room, "mod", ("SEND_MESSAGE", "DISCONNECT_USER"))
    )
    relay, other = await clients(quick_node, room.id, 2)
    pending = await moderator.expect(Type="EVENT", EventName="parley:CONNECTION_PENDING", timeout=5)
    assert pending["Attributes"]["ConnectionId"] == relay.id
    await moderator.send("APPROVE_CONNECTION", ConnectionId=relay.id)
    await asyncio.sleep(1.0)  # past the approval timeout
    await relay.send("ping")
    assert await relay.expect(system="pong")
    with pytest.raises(ConnectionClosed):
        while True:
            await other.recv(2)
    assert other.ws.close_code == 4004
    await relay.close()
    await moderator.close()


async def test_an_approval_timeout_of_zero_keeps_everyone(node: Node) -> None:
    front: Any = node.fronts["relay"]
    front.settings = front.settings.with_(approval_timeout=0.0)
    (a,) = await clients(node, "app1", 1)
    await asyncio.sleep(0.3)
    await a.send("ping")
    assert await a.recv() == {"system": "pong"}
    await a.close()
