"""Seed 004 (PLIC-Chat) end to end: a client written from the seed document only
(``tests/plic_client.py``) against the plic front of an embedded node, on both
backends."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client import REGISTRY

from logger_sink import layout
from parley.embedded import Node
from parley.testing.chatclient import ChatClient
from shared.clock import now_ms
from shared.config import Settings
from shared.engine.records import RecordKind
from shared.features import bans
from shared.protocol.envelope import ActionEnvelope, ControlNotice, ControlTopic, Kind
from shared.protocol.ids import logging_configuration_arn, new_id
from shared.protocol.models import LoggingConfiguration, Room
from tests.nodes import BACKENDS, mint_token, started_node, ws_url
from tests.plic_client import SECRET, Plic, closed_with, recv, send, token


@pytest.fixture(params=BACKENDS)
async def plic(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[tuple[Node, Plic]]:
    async with (
        started_node(request, settings.with_(plic_jwt_secret=SECRET), fronts=("plic",)) as node,
        aiohttp.ClientSession() as http,
    ):
        yield node, Plic(node, http)


async def test_rooms_rest(plic: tuple[Node, Plic]) -> None:
    node, client = plic
    room = await client.create("alice", ["bob"], apartment_id=42)
    other = await client.create("bob", ["carol"])
    assert other > room
    status, body = await client.call("GET", "/rooms", "alice")
    assert status == 200 and body["error_message"] is None
    [listed] = body["data"]
    assert listed == {
        "room_id": room,
        "participants_id": ["alice", "bob"],
        "apartment_id": 42,
        "is_owner": True,
        "last_message": None,
    }
    _, body = await client.call("GET", "/rooms", "bob")
    assert [(r["room_id"], r["is_owner"]) for r in body["data"]] == [(room, False), (other, True)]
    # owner only
    status, body = await client.call("PUT", "/rooms", "bob", {"room_id": room, "users_to_add": ["x"]})
    assert status == 403 and body["data"] is None and body["error_message"]
    status, body = await client.call(
        "PUT", "/rooms", "alice", {"room_id": room, "users_to_add": ["dan"], "users_to_remove": ["bob"]}
    )
    assert (status, body) == (200, {"error_message": None, "data": None})
    status, body = await client.call("GET", f"/rooms/{room}", "dan")
    assert status == 200
    info = body["data"]
    assert info["owner_id"] == "alice" and info["participants_id"] == ["alice", "dan"] and info["room_id"] == room
    assert info["apartment_id"] == 42 and info["messages"] == [] and info["created_at"].endswith("Z")
    status, body = await client.call("GET", f"/rooms/{room}", "bob")  # removed
    assert status == 403 and body["error_message"]
    # a plic room IS a parley room: IVS-visible, members-only, recognisable
    alias = await node.store.records.get(RecordKind.PLIC_ROOM, str(room))
    assert alias is not None and alias["owner_id"] == "alice"
    record = await node.store.records.get(RecordKind.ROOM, alias["room_id"])
    assert record is not None
    parley_room = Room.from_record(record)
    assert (
        parley_room.name == f"plic:{room}" and parley_room.members_only and parley_room.tags == {"plic:room": str(room)}
    )
    # delete: owner only, then gone everywhere
    status, _ = await client.call("DELETE", f"/rooms/{room}", "dan")
    assert status == 403
    assert await client.call("DELETE", f"/rooms/{room}", "alice") == (200, {"error_message": None, "data": None})
    status, body = await client.call("GET", f"/rooms/{room}", "alice")
    assert status == 404 and body["data"] is None
    assert await node.store.records.get(RecordKind.ROOM, alias["room_id"]) is None
    _, body = await client.call("GET", "/rooms", "dan")
    assert body["data"] == []


async def test_rest_errors(plic: tuple[Node, Plic]) -> None:
    _, client = plic
    status, body = await client.call("GET", "/rooms", None)
    assert status == 401 and body == {"error_message": "No authentication token provided", "data": None}
    expired = {"Authorization": f"Bearer {token('alice', ttl=-60)}"}
    status, body = await client.call("GET", "/rooms", None, headers=expired)
    assert status == 401 and body["error_message"] == "Token validation failed"
    forged = {"Authorization": f"Bearer {token('alice', secret='x' * 40)}"}
    assert (await client.call("GET", "/rooms", None, headers=forged))[0] == 401
    for bad in (b"{", b"[]", b'{"users": "bob"}', b'{"users": [], "apartment_id": "x"}'):
        status, body = await client.call("POST", "/rooms", "alice", bad)
        assert status == 400 and body["data"] is None and body["error_message"], bad
    status, body = await client.call("POST", "/rooms", "alice", b" " * (70 * 1024))
    assert status in (400, 413)
    status, body = await client.call("PUT", "/rooms", "alice", {"room_id": "1"})
    assert status == 400
    assert (await client.call("GET", "/rooms/abc", "alice"))[0] == 400
    assert (await client.call("GET", "/rooms/999999", "alice"))[0] == 404
    assert (await client.call("DELETE", "/rooms/999999", "alice"))[0] == 404
    status, body = await client.call("GET", "/nowhere", "alice")
    assert status == 404 and body == {"error_message": "Not Found", "data": None}
    status, body = await client.call("PATCH", "/rooms", "alice", {})
    assert status == 405 and body["data"] is None
    too_many = {"users": [f"u{i}" for i in range(200)], "apartment_id": None}
    assert (await client.call("POST", "/rooms", "alice", too_many))[0] == 400


async def test_rest_rate_limit(plic: tuple[Node, Plic]) -> None:
    _, client = plic
    statuses = [(await client.call("GET", "/rooms", "greedy"))[0] for _ in range(25)]
    assert 429 in statuses and statuses[0] == 200


async def test_messages_confirmed_and_received_in_every_room(plic: tuple[Node, Plic]) -> None:
    _, client = plic
    one = await client.create("alice", ["bob"])
    two = await client.create("carol", ["bob"])
    bob = await client.ws("bob")
    alice = await client.ws("alice")
    carol = await client.ws("carol")
    await alice.send_str(send(one, "hello bob", "t-1"))
    confirmation = await recv(alice)
    assert confirmation["type"] == "MessageSentConfirmation"
    assert confirmation["data"]["confirmed"] is True and confirmation["data"]["message_temp_id"] == "t-1"
    assert confirmation["data"]["message_id"]
    assert await recv(bob) == {
        "type": "MessageReceived",
        "data": {"room_id": one, "sender_id": "alice", "message": "hello bob"},
    }
    await carol.send_str(send(two, "hi from two", "t-2"))
    assert (await recv(carol))["data"]["confirmed"] is True
    assert (await recv(bob))["data"] == {"room_id": two, "sender_id": "carol", "message": "hi from two"}
    # history: GET /rooms/:id messages and GET /rooms last_message
    _, body = await client.call("GET", f"/rooms/{one}", "bob")
    [message] = body["data"]["messages"]
    assert message["id"] == confirmation["data"]["message_id"]
    assert (message["room_id"], message["message"], message["sender_id"]) == (one, "hello bob", "alice")
    _, body = await client.call("GET", "/rooms", "bob")
    lasts = {room["room_id"]: room["last_message"] for room in body["data"]}
    assert lasts[one]["message"] == "hello bob" and lasts[two]["sender_id"] == "carol"
    for ws in (alice, bob, carol):
        await ws.close()


async def test_membership_changes_reach_connected_users(plic: tuple[Node, Plic]) -> None:
    _, client = plic
    room = await client.create("alice", [])
    dan = await client.ws("dan")
    alice = await client.ws("alice")
    await client.call("PUT", "/rooms", "alice", {"room_id": room, "users_to_add": ["dan"], "users_to_remove": []})
    await asyncio.sleep(0.3)  # the members_changed notice subscribes dan's connection
    await alice.send_str(send(room, "welcome", "t"))
    assert (await recv(alice))["data"]["confirmed"] is True
    assert (await recv(dan))["data"]["message"] == "welcome"
    # dan can post at once after being added, even on a connection made before
    await dan.send_str(send(room, "thanks", "d"))
    assert (await recv(dan))["data"]["confirmed"] is True
    assert (await recv(alice))["data"]["message"] == "thanks"
    await client.call("PUT", "/rooms", "alice", {"room_id": room, "users_to_add": [], "users_to_remove": ["dan"]})
    await asyncio.sleep(0.3)
    await alice.send_str(send(room, "dan is gone", "t2"))
    assert (await recv(alice))["data"]["confirmed"] is True
    with pytest.raises(asyncio.TimeoutError):
        await dan.receive(0.5)
    await alice.close()
    await dan.close()


async def test_not_a_participant_is_refused_with_4012(plic: tuple[Node, Plic]) -> None:
    _, client = plic
    room = await client.create("alice", ["bob"])
    eve = await client.ws("eve")
    await eve.send_str(send(room, "let me in", "e1"))
    confirmation = await recv(eve)
    assert confirmation["data"]["confirmed"] is False and confirmation["data"]["message_temp_id"] == "e1"
    assert confirmation["data"]["reason"]
    await closed_with(eve, 4012)
    # an unknown room: confirmed false, the connection stays usable
    bob = await client.ws("bob")
    await bob.send_str(send(987654, "anyone?", "b1"))
    missing = await recv(bob)
    assert missing["data"]["confirmed"] is False and "not found" in missing["data"]["reason"]
    await bob.send_str(send(room, "still here", "b2"))
    assert (await recv(bob))["data"]["confirmed"] is True
    await bob.close()


async def test_review_deny_confirms_false_then_closes_4011(plic: tuple[Node, Plic]) -> None:
    node, client = plic
    room = await client.create("alice", ["bob"])
    alias = await node.store.records.get(RecordKind.PLIC_ROOM, str(room))
    assert alias is not None
    record = await node.store.records.get(RecordKind.ROOM, alias["room_id"])
    assert record is not None
    record["review_uri"] = "parley:deny?reason=hateful"
    await node.store.records.put(RecordKind.ROOM, alias["room_id"], record, record["update_ms"] + 1)
    # as UpdateRoom does: routers that cached the room (its MEMBER_ADDED events) drop it
    await node.bus.fanout.publish_control(ControlNotice(ControlTopic.ROOM_CHANGED, alias["room_id"]).encode())
    await asyncio.sleep(0.2)
    bob = await client.ws("bob")
    alice = await client.ws("alice")
    await alice.send_str(send(room, "something hateful", "h1"))
    confirmation = await recv(alice)
    assert confirmation["data"]["confirmed"] is False and confirmation["data"]["message_temp_id"] == "h1"
    assert "hateful" in confirmation["data"]["reason"]
    await closed_with(alice, 4011)
    with pytest.raises(asyncio.TimeoutError):
        await bob.receive(0.5)
    _, body = await client.call("GET", f"/rooms/{room}", "bob")
    assert body["data"]["messages"] == []  # never delivered, never in history
    await bob.close()


async def test_messages_are_counted_and_logged_like_ivs(
    request: pytest.FixtureRequest, settings: Settings, tmp_path: Path
) -> None:
    request.param = "memory"  # metrics are this process's: the embedded node's router
    logged = settings.with_(plic_jwt_secret=SECRET, log_dir=str(tmp_path / "logs"), log_batch_seconds=0.2)
    async with (
        started_node(request, logged, fronts=("plic",), logger=True) as node,
        aiohttp.ClientSession() as http,
    ):
        client = Plic(node, http)
        room = await client.create("alice", ["bob"])
        alias = await node.store.records.get(RecordKind.PLIC_ROOM, str(room))
        assert alias is not None
        config_id = new_id()
        config_arn = logging_configuration_arn(settings.region, settings.account_id, config_id)
        config = LoggingConfiguration(config_id, config_arn, destination={"firehose": {"deliveryStreamName": "plic.1"}})
        await node.store.records.create(RecordKind.LOGGING_CONFIGURATION, config_id, config.to_record(), now_ms(), 10)
        record = await node.store.records.get(RecordKind.ROOM, alias["room_id"])
        assert record is not None
        record["logging_configuration_identifiers"] = [config_arn]
        await node.store.records.put(RecordKind.ROOM, alias["room_id"], record, record["update_ms"] + 1)
        await node.bus.fanout.publish_control(ControlNotice(ControlTopic.ROOM_CHANGED, alias["room_id"]).encode())
        await asyncio.sleep(0.2)
        plic_sends = {"Action": "SendMessage", "Protocol": "plic"}
        before = REGISTRY.get_sample_value("Requests_total", plic_sends) or 0.0
        alice = await client.ws("alice")
        await alice.send_str(send(room, "logged like ivs", "l1"))
        assert (await recv(alice))["data"]["confirmed"] is True
        assert (
            REGISTRY.get_sample_value("Requests_total", {"Action": "SendMessage", "Protocol": "plic"}) or 0.0
        ) == before + 1
        path = layout.firehose_path(Path(logged.log_dir), "plic.1")
        deadline = time.monotonic() + 10
        while not path.exists() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        [line] = path.read_bytes().splitlines()
        entry = json.loads(line)
        assert entry["type"] == "MESSAGE" and entry["payload"]["Content"] == "logged like ivs"
        assert entry["payload"]["Sender"]["UserId"] == "alice"
        await alice.close()


async def test_connect_close_codes(plic: tuple[Node, Plic]) -> None:
    _, client = plic
    await closed_with(await client.ws(), 4001)
    await closed_with(await client.ws(raw_token="not-a-jwt"), 4002)
    await closed_with(await client.ws(raw_token=token("alice", ttl=-60)), 4002)
    await closed_with(await client.ws(raw_token=token("alice", secret="y" * 40)), 4002)


async def test_malformed_frames_close_4010(plic: tuple[Node, Plic]) -> None:
    _, client = plic
    for bad in ("nope", '{"type":"Other","data":{}}', '{"type":"SendMessage","data":{"room_id":"1"}}', "x" * 9000):
        ws = await client.ws("alice")
        await ws.send_str(bad)
        frame = await closed_with(ws, 4010)
        assert frame["data"]["reason"]


async def test_limits_keep_the_connection(plic: tuple[Node, Plic]) -> None:
    _, client = plic
    room = await client.create("alice", ["bob"])
    alice = await client.ws("alice")
    await alice.send_str(send(room, "x" * 501, "long"))  # the room's maximum message length is 500
    too_long = await recv(alice)
    assert too_long["data"]["confirmed"] is False and "500" in too_long["data"]["reason"]
    await alice.send_str(send(room, "", "empty"))
    assert (await recv(alice))["data"]["confirmed"] is False
    for i in range(15):  # 10 per second per connection
        await alice.send_str(send(room, f"m{i}", f"r{i}"))
    answers = [(await recv(alice))["data"] for _ in range(15)]
    assert any(not a["confirmed"] and "Too many" in a["reason"] for a in answers)
    assert any(a["confirmed"] for a in answers)
    await alice.close()


async def test_ban_closes_4005_and_refuses_reconnects(plic: tuple[Node, Plic]) -> None:
    node, client = plic
    room = await client.create("alice", ["bob"])
    alias = await node.store.records.get(RecordKind.PLIC_ROOM, str(room))
    assert alias is not None
    bob = await client.ws("bob")
    await asyncio.sleep(0.1)
    # BanUser: the ban mark, then DisconnectUser through the room's shard (api/bans.py)
    await bans.ban(node.store.marks, alias["room_id"], "bob", 60_000)
    await node.bus.actions.publish(
        ActionEnvelope(
            kind=Kind.DISCONNECT_USER,
            frame_id=new_id(),
            room_id=alias["room_id"],
            received_ms=int(time.time() * 1000),
            disconnect_user_id="bob",
            reason="banned",
        )
    )
    await closed_with(bob, 4005)
    await closed_with(await client.ws("bob"), 4005)


async def test_ivs_client_and_plic_client_share_the_room(plic: tuple[Node, Plic]) -> None:
    node, client = plic
    room = await client.create("alice", ["ivs-user"])
    alias = await node.store.records.get(RecordKind.PLIC_ROOM, str(room))
    assert alias is not None
    record = await node.store.records.get(RecordKind.ROOM, alias["room_id"])
    assert record is not None
    ivs = await ChatClient.open(ws_url(node), mint_token(node, Room.from_record(record), "ivs-user"))
    alice = await client.ws("alice")
    await alice.send_str(send(room, "hi ivs", "a"))
    assert (await recv(alice))["data"]["confirmed"] is True
    seen = await ivs.expect(Type="MESSAGE")
    assert seen["Content"] == "hi ivs" and seen["Sender"]["UserId"] == "alice"
    await ivs.send_message("hi plic")
    assert (await recv(alice))["data"] == {"room_id": room, "sender_id": "ivs-user", "message": "hi plic"}
    await ivs.close()
    await alice.close()


async def test_stop_closes_4007(request: pytest.FixtureRequest, settings: Settings) -> None:
    request.param = "memory"
    async with (
        started_node(request, settings.with_(plic_jwt_secret=SECRET), fronts=("plic",)) as node,
        aiohttp.ClientSession() as http,
    ):
        ws = await Plic(node, http).ws("alice")
        await asyncio.sleep(0.1)
        stopping = asyncio.create_task(node.fronts["plic"].stop())  # the client reads meanwhile
        await closed_with(ws, 4007)
        await stopping


async def test_connection_quota_is_shared_with_the_gateways(request: pytest.FixtureRequest, settings: Settings) -> None:
    request.param = "memory"
    async with (
        started_node(request, settings.with_(plic_jwt_secret=SECRET, max_connections=2), fronts=("plic",)) as node,
        aiohttp.ClientSession() as http,
    ):
        client = Plic(node, http)
        first, second = await client.ws("a"), await client.ws("b")
        await closed_with(await client.ws("c"), 4006)
        await first.close()
        await asyncio.sleep(0.1)
        third = await client.ws("c")  # the slot came back
        with pytest.raises(asyncio.TimeoutError):
            await third.receive(0.3)
        for ws in (second, third):
            await ws.close()


async def test_deleted_room_stops_delivering(plic: tuple[Node, Plic]) -> None:
    _, client = plic
    room = await client.create("alice", ["bob"])
    bob = await client.ws("bob")
    await client.call("DELETE", f"/rooms/{room}", "alice")
    await asyncio.sleep(0.2)
    await bob.send_str(send(room, "hello?", "b"))
    answer = await recv(bob)
    assert answer["data"]["confirmed"] is False and "not found" in answer["data"]["reason"]
    await bob.close()
