"""Seed 003 (groups-chat) end to end: a client written from the seed document only (aiohttp REST +
WebSocket RPC) against the groupschat front of an embedded node, on both backends."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from prometheus_client import REGISTRY

from logger_sink import layout
from parley.embedded import Node
from parley.testing.chatclient import ChatClient
from shared.clock import now_ms
from shared.config import Settings
from shared.engine.records import RecordKind
from shared.protocol.envelope import ControlNotice, ControlTopic
from shared.protocol.ids import logging_configuration_arn, new_id
from shared.protocol.models import LoggingConfiguration, Room
from tests.nodes import BACKENDS, mint_token, started_node, ws_url

SECRET = "groupschat-e2e-secret-groupschat-e2e-0123456789"


class GroupsChat:
    """What a groups-chat client does, from the seed document."""

    def __init__(self, node: Node, http: aiohttp.ClientSession) -> None:
        self.base = f"http://127.0.0.1:{node.fronts['groupschat'].port}"
        self.http = http
        self.tokens: dict[str, str] = {}
        self.ids: dict[str, str] = {}

    async def call(self, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
        headers = {"content-type": "application/json"}
        if token:
            headers["authorization"] = f"bearer {token}"
        data = json.dumps(body) if body is not None and not isinstance(body, bytes) else body
        async with self.http.request(method, self.base + path, data=data, headers=headers) as response:
            return response.status, await response.json()

    async def user(self, name: str) -> str:
        """Register and log in (the seed's first two requests)."""
        status, body = await self.call(
            "POST", "/users", {"username": name, "email": f"{name}@x.io", "password": "0000"}
        )
        assert status == 200, body
        self.ids[name] = body["id"]
        status, body = await self.call(
            "POST", "/login", {"username": name, "email": f"{name}@x.io", "password": "0000"}
        )
        assert status == 200, body
        self.tokens[name] = body["token"]
        return self.ids[name]

    async def connect(self, name: str, *, events: bool = True) -> aiohttp.ClientWebSocketResponse:
        device = {"device_id": "0000", "platform": "web", "model": "chrome", "build": 1, "name": "pc"}
        status, session = await self.call("POST", "/sessions", device, self.tokens[name])
        assert status == 200, session
        ws = await self.http.ws_connect(session["messaging_url"])
        if events:
            await ws.send_str(json.dumps({"method": 20, "timestamp": int(time.time() * 1000)}))
        return ws

    async def group(self, creator: str, name: str, members: list[str]) -> str:
        body = {"name": name, "user_ids": [self.ids[m] for m in members]}
        status, created = await self.call("POST", "/groups", body, self.tokens[creator])
        assert status == 200, created
        return str(created["id"])


async def recv(ws: aiohttp.ClientWebSocketResponse, timeout: float = 5.0) -> dict[str, Any]:
    msg = await ws.receive(timeout)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    event: dict[str, Any] = json.loads(msg.data)
    assert set(event) == {"type", "timestamp", "body"} and isinstance(event["timestamp"], int), event
    return event


async def silent(ws: aiohttp.ClientWebSocketResponse, timeout: float = 0.4) -> None:
    with pytest.raises(asyncio.TimeoutError):
        await ws.receive(timeout)


def rpc(method: int, **body: Any) -> str:
    return json.dumps({"method": method, "body": body})


@pytest.fixture(params=BACKENDS)
async def gc(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[tuple[Node, GroupsChat]]:
    async with (
        started_node(request, settings.with_(groupschat_jwt_secret=SECRET), fronts=("groupschat",)) as node,
        aiohttp.ClientSession() as http,
    ):
        yield node, GroupsChat(node, http)


async def test_registration_login_and_sessions(gc: tuple[Node, GroupsChat]) -> None:
    node, client = gc
    user_id = await client.user("user1")
    claims = jwt.decode(client.tokens["user1"], SECRET, algorithms=["HS256"])
    assert claims["user_id"] == user_id and claims["exp"] > time.time()
    # the same accounts as seed 000 / POST /CreateUser
    assert (await node.store.records.get(RecordKind.ACCOUNT_ID, user_id)) == {"username": "user1"}
    status, body = await client.call("POST", "/users", {"username": "user1", "password": "x"})
    assert status == 409 and body["error"]
    status, body = await client.call("POST", "/login", {"username": "user1", "password": "wrong"})
    assert status == 401 and body["error"]
    status, body = await client.call("POST", "/login", {"username": "nobody", "password": "0000"})
    assert status == 401
    status, session = await client.call("POST", "/sessions", {"device_id": "1"}, client.tokens["user1"])
    assert status == 200 and set(session) == {"created_at", "id", "messaging_url"}
    assert isinstance(session["created_at"], int) and session["created_at"] <= now_ms()
    port = node.fronts["groupschat"].port
    assert session["messaging_url"].startswith(f"ws://127.0.0.1:{port}/")
    # a new session replaces the old one: its URL stops working (one device session per user)
    _, newer = await client.call("POST", "/sessions", {}, client.tokens["user1"])
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.http.ws_connect(session["messaging_url"])
    assert refused.value.status == 401
    ws = await client.http.ws_connect(newer["messaging_url"])
    # and a third session closes the connection made with the second (one device at a time)
    await client.call("POST", "/sessions", {}, client.tokens["user1"])
    replaced = await recv(ws)
    assert replaced["type"] == 10 and replaced["body"]["code"] == 409
    msg = await ws.receive(5)
    assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1000
    await ws.close()
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await client.http.ws_connect(f"ws://127.0.0.1:{port}/not-a-session")


async def test_rest_errors(gc: tuple[Node, GroupsChat]) -> None:
    _, client = gc
    await client.user("alice")
    assert (await client.call("POST", "/sessions", {}))[0] == 401
    assert (await client.call("POST", "/groups", {"name": "g"}, "garbage"))[0] == 401
    forged = jwt.encode({"user_id": client.ids["alice"], "exp": int(time.time()) + 60}, "x" * 40, algorithm="HS256")
    assert (await client.call("POST", "/groups", {"name": "g"}, forged))[0] == 401
    expired = jwt.encode({"user_id": client.ids["alice"], "exp": int(time.time()) - 60}, SECRET, algorithm="HS256")
    assert (await client.call("POST", "/groups", {"name": "g"}, expired))[0] == 401
    token = client.tokens["alice"]
    for bad in (
        b"{",
        b"[]",
        b'{"name": 3}',
        b'{"name": "g", "user_ids": "x"}',
        b'{"name": "g", "user_ids": ["nobody"]}',
    ):
        status, body = await client.call("POST", "/groups", bad, token)
        assert status == 400 and body["error"], bad
    assert (await client.call("POST", "/users", {"username": "has space", "password": "1"}))[0] == 400
    assert (await client.call("POST", "/users", b"{"))[0] == 400
    assert (await client.call("POST", "/groups", b" " * (70 * 1024), token))[0] in (400, 413)
    assert (await client.call("PUT", "/groups/nothere/join", {}, token))[0] == 404
    assert (await client.call("PUT", "/groups/nothere/left", {}, token))[0] == 404
    status, body = await client.call("GET", "/nowhere/else", None, token)
    assert status == 404 and body == {"error": "Not Found"}


async def test_login_attempts_are_rate_limited(request: pytest.FixtureRequest, settings: Settings) -> None:
    request.param = "memory"
    limited = settings.with_(groupschat_jwt_secret=SECRET, login_attempts_per_user=3)
    async with started_node(request, limited, fronts=("groupschat",)) as node, aiohttp.ClientSession() as http:
        client = GroupsChat(node, http)
        await client.user("alice")  # one attempt
        statuses = [(await client.call("POST", "/login", {"username": "alice", "password": "no"}))[0] for _ in range(3)]
        assert statuses == [401, 401, 429]


async def test_registrations_are_rate_limited_per_address(request: pytest.FixtureRequest, settings: Settings) -> None:
    request.param = "memory"
    limited = settings.with_(groupschat_jwt_secret=SECRET, login_attempts_per_address=2)
    async with started_node(request, limited, fronts=("groupschat",)) as node, aiohttp.ClientSession() as http:
        client = GroupsChat(node, http)
        statuses = [
            (await client.call("POST", "/users", {"username": f"u{i}", "password": "0000"}))[0] for i in range(3)
        ]
        assert statuses == [200, 200, 429]


async def test_no_secret_no_logins(request: pytest.FixtureRequest, settings: Settings) -> None:
    request.param = "memory"
    async with started_node(request, settings, fronts=("groupschat",)) as node, aiohttp.ClientSession() as http:
        client = GroupsChat(node, http)
        assert (await client.call("POST", "/users", {"username": "alice", "password": "0000"}))[0] == 200
        status, body = await client.call("POST", "/login", {"username": "alice", "password": "0000"})
        assert status == 503 and "PARLEY_GROUPSCHAT_JWT_SECRET" in body["error"]


async def test_group_limits(request: pytest.FixtureRequest, settings: Settings) -> None:
    request.param = "memory"
    limited = settings.with_(
        groupschat_jwt_secret=SECRET, groupschat_max_group_members=2, groupschat_max_groups_per_user=1
    )
    async with started_node(request, limited, fronts=("groupschat",)) as node, aiohttp.ClientSession() as http:
        client = GroupsChat(node, http)
        for name in ("alice", "bob", "carol"):
            await client.user(name)
        body = {"name": "g", "user_ids": [client.ids["bob"], client.ids["carol"]]}
        assert (await client.call("POST", "/groups", body, client.tokens["alice"]))[0] == 400
        group = await client.group("alice", "g", ["bob"])
        status, refused = await client.call("PUT", f"/groups/{group}/join", {}, client.tokens["carol"])
        assert status == 400 and "at most 2" in refused["error"]
        status, refused = await client.call("POST", "/groups", {"name": "h", "user_ids": []}, client.tokens["alice"])
        assert status == 400 and "at most 1 groups" in refused["error"]


async def test_the_seed_conversation(gc: tuple[Node, GroupsChat]) -> None:
    """The seed document, top to bottom: group, message, receipts, typing, left, join."""
    node, client = gc
    u1, u2 = await client.user("user1"), await client.user("user2")
    one, two = await client.connect("user1"), await client.connect("user2")
    await silent(one, 0.2)  # nothing yet
    group = await client.group("user1", "group_1", ["user2"])
    for ws in (one, two):  # 70 to every member, the creator included
        created = await recv(ws)
        assert created["type"] == 70
        assert created["body"] == {"group_id": group, "name": "group_1", "user_ids": [u2, u1]}
    # a group is a members-only parley room
    record = await node.store.records.get(RecordKind.ROOM, group)
    assert record is not None and Room.from_record(record).members_only
    await one.send_str(rpc(40, group_id=group, data="Hello, how are you?"))
    sent = await recv(one)
    assert sent["type"] == 21
    message_id = sent["body"]["message_id"]
    received = await recv(two)
    assert received["type"] == 20
    assert received["body"] == {
        "message_id": message_id,
        "data": "Hello, how are you?",
        "group_id": group,
        "user_id": u1,
    }
    await silent(one)  # the sender does not get its own 20
    await two.send_str(rpc(41, message_id=message_id))
    assert (await recv(one))["type"] == 22
    await two.send_str(rpc(42, message_id=message_id))
    read = await recv(one)
    assert read["type"] == 23 and read["body"]["message_id"] == message_id
    await silent(two)  # receipts go to the message's sender only
    await two.send_str(rpc(60, group_id=group))
    await two.send_str(rpc(61, group_id=group))
    start, end = await recv(one), await recv(one)
    assert (start["type"], start["body"]) == (40, {"group_id": group, "user_id": u2})
    assert (end["type"], end["body"]) == (41, {"group_id": group, "user_id": u2})
    await silent(two)
    # nobody makes another member leave
    status, _ = await client.call("PUT", f"/groups/{group}/left", {"user_id": u1}, client.tokens["user2"])
    assert status == 403
    # user 1 leaves: user 2 gets 73; user 1 cannot post any more
    status, _ = await client.call("PUT", f"/groups/{group}/left", {"user_id": u1}, client.tokens["user1"])
    assert status == 200
    left = await recv(two)
    assert (left["type"], left["body"]) == (73, {"group_id": group, "user_id": u1})
    assert (await recv(one))["type"] == 73
    await one.send_str(rpc(40, group_id=group, data="still here?"))
    refused = await recv(one)
    assert refused["type"] == 10 and refused["body"]["code"] == 403 and refused["body"]["method"] == 40
    await silent(two)
    # user 1 joins again: user 2 gets 72, and user 1 can post
    status, _ = await client.call("PUT", f"/groups/{group}/join", {"user_id": u1}, client.tokens["user1"])
    assert status == 200
    joined = await recv(two)
    assert (joined["type"], joined["body"]) == (72, {"group_id": group, "user_id": u1})
    assert (await recv(one))["type"] == 72
    await one.send_str(rpc(40, group_id=group, data="back"))
    assert (await recv(one))["type"] == 21
    assert (await recv(two))["body"]["data"] == "back"
    await one.close()
    await two.close()


async def test_offline_events_on_connect_without_replay(gc: tuple[Node, GroupsChat]) -> None:
    _, client = gc
    u1, u2 = await client.user("user1"), await client.user("user2")
    await client.user("user3")
    one = await client.connect("user1")
    group = await client.group("user1", "g", ["user2", "user3"])
    assert (await recv(one))["type"] == 70
    for text in ("first", "second"):
        await one.send_str(rpc(40, group_id=group, data=text))
        assert (await recv(one))["type"] == 21
    # user 2 was offline: method 20 gives every event in order
    two = await client.connect("user2")
    events = [await recv(two) for _ in range(3)]
    assert [e["type"] for e in events] == [70, 20, 20]
    assert [e["body"].get("data") for e in events[1:]] == ["first", "second"]
    await silent(two)
    # a receipt for a message received while offline reaches its sender
    await two.send_str(rpc(42, message_id=events[2]["body"]["message_id"]))
    assert (await recv(one))["type"] == 23
    await two.close()
    # reconnect: nothing is replayed; what came meanwhile is
    await one.send_str(rpc(40, group_id=group, data="third"))
    assert (await recv(one))["type"] == 21
    await asyncio.sleep(0.3)
    two = await client.connect("user2")
    third = await recv(two)
    assert third["type"] == 20 and third["body"]["data"] == "third"
    await silent(two)
    await two.close()
    two = await client.connect("user2")
    # a receipt on a later connection for a message received on an earlier one
    await two.send_str(rpc(41, message_id=third["body"]["message_id"]))
    assert (await recv(one))["type"] == 22
    await two.close()
    # a connection that does not ask (method 20) gets live events only
    quiet = await client.connect("user3", events=False)
    await silent(quiet, 0.3)
    await one.send_str(rpc(40, group_id=group, data="live"))
    assert (await recv(quiet))["body"]["data"] == "live"
    await quiet.send_str(json.dumps({"method": 20}))
    backlog = [await recv(quiet) for _ in range(4)]
    assert [e["type"] for e in backlog] == [70, 20, 20, 20]
    await silent(quiet)
    assert u1 and u2
    await one.close()
    await quiet.close()


async def test_malformed_frames_keep_the_connection(gc: tuple[Node, GroupsChat]) -> None:
    _, client = gc
    await client.user("alice")
    await client.user("bob")
    alice = await client.connect("alice")
    group = await client.group("alice", "g", ["bob"])
    assert (await recv(alice))["type"] == 70
    for bad in (
        "{",
        "[]",
        '{"method": 99}',
        '{"method": "40"}',
        '{"method": 40}',
        rpc(40, group_id=group),
        rpc(40, data="x"),
        rpc(41),
        rpc(60, group_id=7),
    ):
        await alice.send_str(bad)
        error = await recv(alice)
        assert error["type"] == 10 and error["body"]["code"] == 400 and error["body"]["message"], bad
    await alice.send_bytes(b"\xff\xfe")
    assert (await recv(alice))["type"] == 10
    await alice.send_str(rpc(41, message_id="unknown"))
    unknown = await recv(alice)
    assert unknown["body"]["code"] == 404 and unknown["body"]["message_id"] == "unknown"
    await alice.send_str(rpc(40, group_id="not-a-group", data="x"))
    assert (await recv(alice))["body"]["code"] == 403
    await alice.send_str(rpc(40, group_id=group, data="x" * 9000))  # over the frame size limit
    assert (await recv(alice))["body"]["code"] == 400
    await alice.send_str(rpc(40, group_id=group, data="still fine"))
    assert (await recv(alice))["type"] == 21
    await alice.close()


async def test_rates_are_limited_per_connection(request: pytest.FixtureRequest, settings: Settings) -> None:
    request.param = "memory"
    limited = settings.with_(groupschat_jwt_secret=SECRET, connection_rate_per_second=3)
    async with started_node(request, limited, fronts=("groupschat",)) as node, aiohttp.ClientSession() as http:
        client = GroupsChat(node, http)
        await client.user("alice")
        alice = await client.connect("alice", events=False)
        group = await client.group("alice", "g", [])
        assert (await recv(alice))["type"] == 70
        for i in range(5):
            await alice.send_str(rpc(40, group_id=group, data=f"m{i}"))
        replies = [await recv(alice) for _ in range(5)]
        assert sorted(r["type"] for r in replies) == [10, 10, 21, 21, 21]
        assert all(r["body"]["code"] == 429 for r in replies if r["type"] == 10)
        await alice.close()


async def test_review_deny_is_an_error_event(gc: tuple[Node, GroupsChat]) -> None:
    node, client = gc
    await client.user("alice")
    await client.user("bob")
    alice, bob = await client.connect("alice"), await client.connect("bob")
    group = await client.group("alice", "g", ["bob"])
    assert (await recv(alice))["type"] == 70 and (await recv(bob))["type"] == 70
    record = await node.store.records.get(RecordKind.ROOM, group)
    assert record is not None
    record["review_uri"] = "parley:deny?reason=hateful"
    await node.store.records.put(RecordKind.ROOM, group, record, record["update_ms"] + 1)
    await node.bus.fanout.publish_control(ControlNotice(ControlTopic.ROOM_CHANGED, group).encode())
    await asyncio.sleep(0.2)
    await alice.send_str(rpc(40, group_id=group, data="something hateful"))
    denied = await recv(alice)
    assert denied["type"] == 10 and denied["body"]["code"] == 406 and "hateful" in denied["body"]["message"]
    assert denied["body"]["method"] == 40 and denied["body"]["group_id"] == group
    await silent(bob)
    await alice.send_str(rpc(60, group_id=group))  # the connection stays usable
    assert (await recv(bob))["type"] == 40
    await alice.close()
    await bob.close()


async def test_messages_are_counted_and_logged_like_ivs(
    request: pytest.FixtureRequest, settings: Settings, tmp_path: Path
) -> None:
    request.param = "memory"
    logged = settings.with_(groupschat_jwt_secret=SECRET, log_dir=str(tmp_path / "logs"), log_batch_seconds=0.2)
    async with (
        started_node(request, logged, fronts=("groupschat",), logger=True) as node,
        aiohttp.ClientSession() as http,
    ):
        client = GroupsChat(node, http)
        alice_id = await client.user("alice")
        alice = await client.connect("alice")
        group = await client.group("alice", "g", [])
        assert (await recv(alice))["type"] == 70
        config_id = new_id()
        config_arn = logging_configuration_arn(settings.region, settings.account_id, config_id)
        config = LoggingConfiguration(config_id, config_arn, destination={"firehose": {"deliveryStreamName": "gc.1"}})
        await node.store.records.create(RecordKind.LOGGING_CONFIGURATION, config_id, config.to_record(), now_ms(), 10)
        record = await node.store.records.get(RecordKind.ROOM, group)
        assert record is not None
        record["logging_configuration_identifiers"] = [config_arn]
        await node.store.records.put(RecordKind.ROOM, group, record, record["update_ms"] + 1)
        await node.bus.fanout.publish_control(ControlNotice(ControlTopic.ROOM_CHANGED, group).encode())
        await asyncio.sleep(0.2)
        sends = {"Action": "SendMessage", "Protocol": "groupschat"}
        before = REGISTRY.get_sample_value("Requests_total", sends) or 0.0
        delivered = {"Action": "SendMessage", "Protocol": "groupschat"}
        deliveries = REGISTRY.get_sample_value("Deliveries_total", delivered) or 0.0
        await alice.send_str(rpc(40, group_id=group, data="logged like ivs"))
        assert (await recv(alice))["type"] == 21
        assert (REGISTRY.get_sample_value("Requests_total", sends) or 0.0) == before + 1
        assert (REGISTRY.get_sample_value("Deliveries_total", delivered) or 0.0) == deliveries + 1
        assert REGISTRY.get_sample_value("ConcurrentChatConnections", {"Protocol": "groupschat"}) == 1
        path = layout.firehose_path(Path(logged.log_dir), "gc.1")
        deadline = time.monotonic() + 10
        while not path.exists() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        [line] = path.read_bytes().splitlines()
        entry = json.loads(line)
        assert entry["type"] == "MESSAGE" and entry["payload"]["Content"] == "logged like ivs"
        assert entry["payload"]["Sender"]["UserId"] == alice_id
        await alice.close()


async def test_ivs_client_and_groupschat_client_share_the_group(gc: tuple[Node, GroupsChat]) -> None:
    node, client = gc
    await client.user("alice")
    bob_id = await client.user("bob")
    alice = await client.connect("alice")
    group = await client.group("alice", "shared", ["bob"])
    assert (await recv(alice))["type"] == 70
    record = await node.store.records.get(RecordKind.ROOM, group)
    assert record is not None
    # bob's account, on the IVS SDK's protocol: a member of the group's parley room
    ivs = await ChatClient.open(ws_url(node), mint_token(node, Room.from_record(record), bob_id))
    await alice.send_str(rpc(40, group_id=group, data="hi ivs"))
    assert (await recv(alice))["type"] == 21
    seen = await ivs.expect(Type="MESSAGE")
    assert seen["Content"] == "hi ivs"
    await ivs.send_message("hi groupschat")
    received = await recv(alice)
    assert received["type"] == 20 and received["body"]["data"] == "hi groupschat"
    assert (
        received["body"]["user_id"] == bob_id
        and received["body"]["message_id"] == (await ivs.expect(Type="MESSAGE"))["Id"]
    )
    await ivs.close()
    await alice.close()


async def test_messages_ivs_clients_send_wait_for_offline_members(gc: tuple[Node, GroupsChat]) -> None:
    """The router keeps every message of a group for its other members, whatever protocol sent it:
    an offline member gets them on method 20, in order; an online one gets them live, once."""
    node, client = gc
    alice_id = await client.user("alice")
    bob_id, carol_id = await client.user("bob"), await client.user("carol")
    alice = await client.connect("alice")
    group = await client.group("alice", "mixed", ["bob", "carol"])
    assert (await recv(alice))["type"] == 70
    record = await node.store.records.get(RecordKind.ROOM, group)
    assert record is not None
    # bob speaks IVS (the raw IVS client); carol is offline
    token = mint_token(node, Room.from_record(record), bob_id, ("SEND_MESSAGE", "DELETE_MESSAGE"))
    ivs = await ChatClient.open(ws_url(node), token)
    await alice.send_str(rpc(40, group_id=group, data="from groupschat"))
    assert (await recv(alice))["type"] == 21
    await ivs.send_message("from ivs")
    kept = await ivs.expect(Type="MESSAGE", Content="from ivs")
    await ivs.send_message("deleted later")
    doomed = await ivs.expect(Type="MESSAGE", Content="deleted later")
    await ivs.send("DELETE_MESSAGE", Id=doomed["Id"], Reason="oops")
    await ivs.expect(Type="EVENT", EventName="aws:DELETE_MESSAGE")
    await ivs.send_message("direct to carol", Recipient=carol_id)
    await ivs.expect(Type="MESSAGE", Content="direct to carol")
    await ivs.send_message("after")
    await ivs.expect(Type="MESSAGE", Content="after")
    live = [await recv(alice) for _ in range(3)]
    assert [(e["type"], e["body"]["data"]) for e in live] == [(20, "from ivs"), (20, "deleted later"), (20, "after")]
    await silent(alice)  # not the direct message to carol
    # carol connects: method 20 gives what she missed, in order, the deleted message left out
    carol = await client.connect("carol")
    events = [await recv(carol) for _ in range(5)]
    assert [(e["type"], e["body"].get("data")) for e in events] == [
        (70, None),
        (20, "from groupschat"),
        (20, "from ivs"),
        (20, "direct to carol"),
        (20, "after"),
    ]
    assert events[2]["body"] == {"message_id": kept["Id"], "data": "from ivs", "group_id": group, "user_id": bob_id}
    await silent(carol)
    # a receipt for a message an IVS client sent while she was offline reaches it
    await carol.send_str(rpc(41, message_id=kept["Id"]))
    receipt = await ivs.expect(Type="EVENT", EventName="parley:DELIVERED")
    assert receipt["Attributes"]["MessageId"] == kept["Id"]
    # alice got the IVS messages live: reconnecting, method 20 does not send them again
    await alice.close()
    await asyncio.sleep(0.3)
    alice = await client.connect("alice")
    await silent(alice)
    await ivs.send_message("while alice is here")
    assert (await recv(alice))["body"]["data"] == "while alice is here"
    assert alice_id
    for ws in (alice, carol):
        await ws.close()
    await ivs.close()


@pytest.fixture(params=BACKENDS)
async def gc_saving(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[tuple[Node, GroupsChat]]:
    """A front saving cursors every 2 events (and not by time, within a test)."""
    saving = settings.with_(
        groupschat_jwt_secret=SECRET, groupschat_cursor_save_events=2, groupschat_cursor_save_ms=600_000
    )
    async with started_node(request, saving, fronts=("groupschat",)) as node, aiohttp.ClientSession() as http:
        yield node, GroupsChat(node, http)


async def saved_cursor(node: Node, user_id: str, ms: int) -> dict[str, Any]:
    """The user's saved cursor once it reaches ``ms`` (the save is a follow-up task)."""
    deadline = time.monotonic() + 5
    while True:
        record = await node.store.records.get(RecordKind.GROUPSCHAT_CURSOR, user_id)
        if (record is not None and record["ms"] >= ms) or time.monotonic() > deadline:
            assert record is not None
            return record
        await asyncio.sleep(0.05)


async def test_the_cursor_is_saved_while_connected(
    gc_saving: tuple[Node, GroupsChat], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No disconnect needed: after every 2 delivered events the Store holds the cursor, so a front
    that dies without its close path re-delivers only the unsaved ones."""
    node, client = gc_saving
    await client.user("alice")
    bob_id = await client.user("bob")
    alice, bob = await client.connect("alice"), await client.connect("bob")
    group = await client.group("alice", "g", ["bob"])
    assert (await recv(alice))["type"] == 70
    stamps = [(await recv(bob))["timestamp"]]
    for text in ("one", "two"):
        await alice.send_str(rpc(40, group_id=group, data=text))
        assert (await recv(alice))["type"] == 21
        stamps.append((await recv(bob))["timestamp"])
    # 70 and "one" were saved together (2 events) while bob is connected; "two" is unsaved
    record = await saved_cursor(node, bob_id, stamps[1])
    assert record["ms"] == stamps[1] and len(record["ids"]) == 2
    assert not bob.closed
    # the front "dies": the connection ends without its close path saving anything
    hub = node.fronts["groupschat"].hub  # type: ignore[attr-defined]

    async def lost(conn: object) -> bool:
        return True

    monkeypatch.setattr(hub, "save", lost)
    await bob.close()
    await asyncio.sleep(0.3)
    monkeypatch.undo()
    assert (await node.store.records.get(RecordKind.GROUPSCHAT_CURSOR, bob_id)) == record
    # bob reconnects: only the unsaved event comes again
    bob = await client.connect("bob")
    again = await recv(bob)
    assert (again["type"], again["body"]["data"]) == (20, "two")
    await silent(bob)
    for ws in (alice, bob):
        await ws.close()


async def test_stop_closes_connections(request: pytest.FixtureRequest, settings: Settings) -> None:
    request.param = "memory"
    async with (
        started_node(request, settings.with_(groupschat_jwt_secret=SECRET), fronts=("groupschat",)) as node,
        aiohttp.ClientSession() as http,
    ):
        client = GroupsChat(node, http)
        await client.user("alice")
        alice = await client.connect("alice")
        await node.fronts["groupschat"].stop()
        msg = await alice.receive(5)
        assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1001
