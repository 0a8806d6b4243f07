"""The data plane through real WebSockets: gateway → bus → router → gateway.

Every test runs twice: on the in-memory bus and store (embedded mode) and on the real RabbitMQ
and Redis, so the embedded mode is the same product as the distributed one.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from parley.embedded import Node
from parley.testing.chatclient import ChatClient
from shared.clock import now_ms
from shared.engine.records import RecordKind
from shared.protocol import tokens
from tests.nodes import make_room as _room
from tests.nodes import mint_token as _token
from tests.nodes import ws_url as _url


async def test_message_reaches_everyone_in_the_room_including_sender(node: Node) -> None:
    room, other = await _room(node), await _room(node)
    alice = await ChatClient.open(_url(node), _token(node, room, "alice"))
    bob = await ChatClient.open(_url(node), _token(node, room, "bob"))
    outsider = await ChatClient.open(_url(node), _token(node, other, "eve"))
    request_id = await alice.send_message("hello", Attributes={"k": "v"})
    echo = await alice.expect(Type="MESSAGE")
    seen = await bob.expect(Type="MESSAGE")
    assert echo == seen
    assert echo["RequestId"] == request_id and echo["Content"] == "hello" and echo["Attributes"] == {"k": "v"}
    assert echo["Sender"] == {"UserId": "alice", "Attributes": {"displayName": "Alice"}}
    with pytest.raises(asyncio.TimeoutError):
        await outsider.recv(timeout=0.3)
    for client in (alice, bob, outsider):
        await client.close()


async def test_token_is_single_use_and_signed(node: Node) -> None:
    room = await _room(node)
    token = _token(node, room, "alice")
    first = await ChatClient.open(_url(node), token)
    with pytest.raises(InvalidStatus) as caught:
        await connect(_url(node), subprotocols=[Subprotocol(token)])
    assert caught.value.response.status_code == 401
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    with pytest.raises(InvalidStatus) as caught:
        await connect(_url(node), subprotocols=[Subprotocol(forged)])
    assert caught.value.response.status_code == 401
    with pytest.raises(InvalidStatus) as caught:
        await connect(_url(node))
    assert caught.value.response.status_code == 401
    await first.close()


async def test_deleted_room_refuses_tokens(node: Node) -> None:
    room = await _room(node)
    token = _token(node, room, "alice")
    await node.store.records.delete(RecordKind.ROOM, room.id)
    with pytest.raises(InvalidStatus) as caught:
        await connect(_url(node), subprotocols=[Subprotocol(token)])
    assert caught.value.response.status_code == 404


async def test_errors_go_to_the_sender_only_and_the_connection_survives(node: Node) -> None:
    room = await _room(node, maximum_message_length=10)
    alice = await ChatClient.open(_url(node), _token(node, room, "alice"))
    bob = await ChatClient.open(_url(node), _token(node, room, "bob", caps=()))
    await alice.ws.send("{not json")
    assert (await alice.expect(Type="ERROR"))["ErrorCode"] == 400
    await alice.ws.send(b"\x00\x01binary")
    assert (await alice.expect(Type="ERROR"))["ErrorCode"] == 400
    rid = await alice.send("FLY")
    error = await alice.expect(Type="ERROR")
    assert (error["ErrorCode"], error["RequestId"]) == (400, rid)
    rid = await alice.send_message("x" * 11)  # over this room's limit: decided by the router
    error = await alice.expect(Type="ERROR")
    assert (error["ErrorCode"], error["RequestId"]) == (400, rid)
    rid = await bob.send_message("hi")
    error = await bob.expect(Type="ERROR")
    assert (error["ErrorCode"], error["RequestId"]) == (403, rid)
    await alice.ws.send(json.dumps({"Action": "SEND_MESSAGE", "Content": "y" * 20000}))
    assert (await alice.expect(Type="ERROR"))["ErrorCode"] == 413
    rid = await alice.send_message("still here")
    assert (await bob.expect(Type="MESSAGE"))["RequestId"] == rid
    assert not [f for f in bob.frames if f["Type"] == "ERROR" and f.get("ErrorCode") != 403]
    await alice.close()
    await bob.close()


async def test_room_order_is_kept_for_every_receiver(node: Node) -> None:
    room = await _room(node, maximum_message_rate_per_second=100)
    senders = [await ChatClient.open(_url(node), _token(node, room, f"s{i}")) for i in range(3)]
    readers = [await ChatClient.open(_url(node), _token(node, room, f"r{i}")) for i in range(2)]
    for n in range(9):
        await senders[n % 3].send_message(f"m{n}")
    orders = []
    for reader in readers:
        got = [(await reader.expect(Type="MESSAGE"))["Id"] for _ in range(9)]
        orders.append(got)
    assert orders[0] == orders[1] and len(set(orders[0])) == 9
    for client in senders + readers:
        await client.close()


async def test_rate_limits(node: Node) -> None:
    room = await _room(node, maximum_message_rate_per_second=3)
    alice = await ChatClient.open(_url(node), _token(node, room, "alice"))
    for n in range(5):
        await alice.send_message(f"m{n}")
    codes = []
    for _ in range(5):
        frame = await alice.recv()
        codes.append(frame["Type"] if frame["Type"] != "ERROR" else frame["ErrorCode"])
    assert codes.count("MESSAGE") == 3 and codes.count(429) == 2
    await alice.close()


async def test_disconnect_user_broadcasts_then_closes_all_their_connections(node: Node) -> None:
    room = await _room(node)
    mod = await ChatClient.open(_url(node), _token(node, room, "mod", caps=("DISCONNECT_USER", "DELETE_MESSAGE")))
    bob1 = await ChatClient.open(_url(node), _token(node, room, "bob"))
    bob2 = await ChatClient.open(_url(node), _token(node, room, "bob"))
    rid = await mod.send("DISCONNECT_USER", UserId="bob", Reason="spam")
    event = await mod.expect(Type="EVENT")
    assert event["EventName"] == "aws:DISCONNECT_USER" and event["RequestId"] == rid
    assert event["Attributes"] == {"UserId": "bob", "Reason": "spam"}
    for bob in (bob1, bob2):
        assert (await bob.expect(Type="EVENT"))["Id"] == event["Id"]
        await asyncio.wait_for(bob.ws.wait_closed(), 5)
        assert bob.ws.close_code == 1000
    rid = await mod.send("DELETE_MESSAGE", Id="abcdefghijkl")
    deleted = await mod.expect(Type="EVENT")
    assert deleted["RequestId"] == rid and deleted["Attributes"]["MessageID"] == "abcdefghijkl"
    assert deleted["Id"] != "abcdefghijkl"
    await mod.close()


async def test_session_expiry_sends_401_then_closes(node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    room = await _room(node)
    # A session minted ~60 minutes ago that ends in 300 ms (its token lifetime stretched to allow it).
    monkeypatch.setattr(tokens, "TOKEN_LIFETIME_MS", 2 * 3_600_000)
    token, _ = tokens.mint(
        node.settings.token_secret_bytes,
        room_id=room.id,
        user_id="alice",
        capabilities=[],
        attributes=None,
        now_ms=now_ms() - 60 * 60_000 + 300,
        session_minutes=60,
    )
    client = await ChatClient.open(_url(node), token)
    error = await client.expect(Type="ERROR", timeout=3)
    assert error["ErrorCode"] == 401
    await asyncio.wait_for(client.ws.wait_closed(), 3)
    assert client.ws.close_code == 4001


async def test_connection_quota_refuses_upgrades(node: Node) -> None:
    assert node.gateway is not None
    node.gateway.settings = node.settings.with_(max_connections=2)
    room = await _room(node)
    first = await ChatClient.open(_url(node), _token(node, room, "a"))
    second = await ChatClient.open(_url(node), _token(node, room, "b"))
    spare = _token(node, room, "c")
    with pytest.raises(InvalidStatus) as caught:
        await connect(_url(node), subprotocols=[Subprotocol(spare)])
    assert caught.value.response.status_code == 503
    await first.close()
    await asyncio.sleep(0.05)
    third = await ChatClient.open(_url(node), spare)  # the refusal did not burn the token
    await second.close()
    await third.close()


async def test_router_forgets_idle_rooms(node: Node) -> None:
    room = await _room(node)
    client = await ChatClient.open(_url(node), _token(node, room, "alice"))
    await client.send_message("hi")
    await client.expect(Type="MESSAGE")
    router = node.router
    assert router is not None and room.id in router._states
    router._forget_idle_rooms()
    assert room.id in router._states  # the message is within the rate window
    await asyncio.sleep(1.05)
    router._forget_idle_rooms()
    assert room.id not in router._states
    await client.send_message("again")  # a forgotten room comes back on demand
    assert (await client.expect(Type="MESSAGE"))["Content"] == "again"
    await client.close()


async def test_banned_user_cannot_connect(node: Node) -> None:
    from shared.features import bans

    room = await _room(node)
    token = _token(node, room, "bob")
    await bans.ban(node.store.marks, room.id, "bob", 60_000)
    with pytest.raises(InvalidStatus) as caught:
        await connect(_url(node), subprotocols=[Subprotocol(token)])
    assert caught.value.response.status_code == 403
    assert await bans.unban(node.store.marks, room.id, "bob")
    client = await ChatClient.open(_url(node), token)  # the refused attempt did not burn it
    await client.close()


async def test_account_send_message_rate_spans_rooms(node: Node) -> None:
    """IVS's account quota (SendMessage 1000/s over all rooms), here 3/s: the fourth message in a
    second is refused with 429 whichever room it is in, and the others are delivered."""
    from router.account import AccountRates

    assert node.router is not None
    node.router._account = AccountRates(send_message=3, delete_message=100, disconnect_user=100)
    rooms = [await _room(node, maximum_message_rate_per_second=100) for _ in range(2)]
    alice = await ChatClient.open(_url(node), _token(node, rooms[0], "alice"))
    bob = await ChatClient.open(_url(node), _token(node, rooms[1], "bob"))
    for n in range(2):
        await alice.send_message(f"a{n}")
        await bob.send_message(f"b{n}")
    got = [frame for client in (alice, bob) for frame in await client.drain(0.5)]
    delivered = sorted(frame["Content"] for frame in got if frame["Type"] == "MESSAGE")
    refused = [frame for frame in got if frame["Type"] == "ERROR"]
    assert len(delivered) == 3 and len(refused) == 1, got
    assert refused[0]["ErrorCode"] == 429 and "over all rooms" in refused[0]["ErrorMessage"]
    await asyncio.sleep(1.0)  # a new second: the account has room again
    await bob.send_message("later")
    assert (await bob.expect(Type="MESSAGE"))["Content"] == "later"
    await alice.close()
    await bob.close()
