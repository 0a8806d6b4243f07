"""Presence (parley extension): GET_PRESENCE over real WebSockets and parley:USER_JOINED /
parley:USER_LEFT events on both backends, and GetRoomPresence through boto3 with parley's model."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest

from parley.embedded import Node
from parley.testing.chatclient import ChatClient
from router.presence import PresenceSweeper
from shared.features.presence import EVENT_USER_JOINED, EVENT_USER_LEFT
from shared.protocol.envelope import Kind
from tests.nodes import make_room as _room
from tests.nodes import mint_token as _token
from tests.nodes import ws_url as _url
from tests.test_bans import parley_client

if TYPE_CHECKING:
    from tests.api_helpers import ApiServer

pytest_plugins = ["api_helpers"]


async def _presence(client: ChatClient, **fields: Any) -> dict[str, Any]:
    rid = await client.send("GET_PRESENCE", **fields)
    return await client.expect(Type="PRESENCE", RequestId=rid)


def _events(frames: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(f["EventName"], f["Attributes"]["UserId"]) for f in frames if f["Type"] == "EVENT"]


async def test_presence_counts_connections_and_announces_first_and_last(node: Node) -> None:
    room = await _room(node, presence_events=True)
    carol = await ChatClient.open(_url(node), _token(node, room, "carol", caps=()))
    await asyncio.sleep(0.3)  # (the joiner itself may or may not see its own USER_JOINED)
    alice1 = await ChatClient.open(_url(node), _token(node, room, "alice"))
    joined = await carol.expect(Type="EVENT", EventName=EVENT_USER_JOINED)
    if joined["Attributes"]["UserId"] == "carol":
        joined = await carol.expect(Type="EVENT", EventName=EVENT_USER_JOINED)
    assert joined["Attributes"] == {"UserId": "alice", "displayName": "Alice"}  # token attributes + UserId
    alice2 = await ChatClient.open(_url(node), _token(node, room, "alice"))
    bob = await ChatClient.open(_url(node), _token(node, room, "bob"))
    await asyncio.sleep(0.3)
    page = await _presence(carol)
    assert page["ConnectionCount"] == 4
    assert [(u["UserId"], u["Connections"]) for u in page["Users"]] == [("alice", 2), ("bob", 1), ("carol", 1)]
    assert page["Users"][0]["Attributes"] == {"displayName": "Alice"}
    assert "NextAfter" not in page

    first = await _presence(carol, Limit=2)
    assert [u["UserId"] for u in first["Users"]] == ["alice", "bob"] and first["NextAfter"] == "bob"
    rest = await _presence(carol, Limit=2, After=first["NextAfter"])
    assert [u["UserId"] for u in rest["Users"]] == ["carol"] and "NextAfter" not in rest

    await alice1.close()  # alice is still here on alice2: no event
    await asyncio.sleep(0.3)
    await alice2.close()
    await asyncio.sleep(0.3)  # the server finishes each connection on its own time: keep them apart
    await bob.close()
    await asyncio.sleep(0.5)
    await carol.drain()
    got = _events(carol.frames)  # everything carol received, in order
    assert got.count((EVENT_USER_JOINED, "carol")) <= 1
    assert [event for event in got if event != (EVENT_USER_JOINED, "carol")] == [
        (EVENT_USER_JOINED, "alice"),
        (EVENT_USER_JOINED, "bob"),
        (EVENT_USER_LEFT, "alice"),
        (EVENT_USER_LEFT, "bob"),
    ]
    page = await _presence(carol)
    assert [(u["UserId"], u["Connections"]) for u in page["Users"]] == [("carol", 1)]
    await asyncio.sleep(1)  # stay under the connection's 10 requests/s
    await carol.send("GET_PRESENCE", Limit=0)
    assert (await carol.expect(Type="ERROR"))["ErrorCode"] == 400
    await carol.close()


async def test_presence_events_are_off_by_default_but_presence_is_kept(node: Node) -> None:
    room = await _room(node)
    alice = await ChatClient.open(_url(node), _token(node, room, "alice"))
    bob = await ChatClient.open(_url(node), _token(node, room, "bob"))
    await asyncio.sleep(0.3)
    page = await _presence(alice)
    assert [u["UserId"] for u in page["Users"]] == ["alice", "bob"] and page["ConnectionCount"] == 2
    await bob.close()
    rid = await alice.send_message("still plain IVS")
    await alice.expect(Type="MESSAGE", RequestId=rid)
    await alice.drain(0.3)
    assert [f["Type"] for f in alice.frames] == ["PRESENCE", "MESSAGE"]  # no EVENT
    await alice.close()


async def test_a_dead_gateways_users_leave_once(node: Node) -> None:
    """A holder that stops heartbeating (a gateway that died) is hidden from presence at once
    and swept once, with one USER_LEFT per user who had no other connection."""
    room = await _room(node, presence_events=True)
    carol = await ChatClient.open(_url(node), _token(node, room, "carol", caps=()))
    await carol.drain(0.3)
    store = node.store
    await store.presence.refresh("ghost-gateway", 200)
    await store.presence.add(room.id, "ghostconn0001", "ghost-gateway", "dave", {"displayName": "Dave"})
    await store.presence.add(room.id, "ghostconn0002", "ghost-gateway", "carol", {})  # carol is also on us
    assert {u["UserId"] for u in (await _presence(carol))["Users"]} == {"carol", "dave"}
    await asyncio.sleep(0.3)  # the ghost's deadline passes
    page = await _presence(carol)
    assert [(u["UserId"], u["Connections"]) for u in page["Users"]] == [("carol", 1)]
    sweepers = [PresenceSweeper(store, node.bus), PresenceSweeper(store, node.bus)]
    await store.marks.release("presence-sweep")
    published = await asyncio.gather(*(s.sweep_once() for s in sweepers))
    assert sorted(published) == [0, 1]
    left = await carol.expect(Type="EVENT", EventName=EVENT_USER_LEFT)
    assert left["Attributes"] == {"UserId": "dave", "displayName": "Dave"}
    assert _events(await carol.drain(0.5)) == []
    await carol.close()


def test_get_room_presence_through_boto3(api: ApiServer, ivs: Any) -> None:
    parley = parley_client(api)
    room = ivs.create_room(name="present")
    empty = parley.get_room_presence(roomIdentifier=room["arn"])
    assert empty["users"] == [] and empty["connectionCount"] == 0 and "nextToken" not in empty

    async def seed() -> None:
        await api.store.presence.refresh("gw1", 60_000)
        for n, user in enumerate(["zoë", "alice", "bob", "alice", "carol"]):
            await api.store.presence.add(room["id"], f"conn{n}", "gw1", user, {"n": str(n)} if n == 0 else None)

    api.run(seed())
    first = parley.get_room_presence(roomIdentifier=room["arn"], maxResults=2)
    assert first["connectionCount"] == 5
    assert [(u["userId"], u["connections"]) for u in first["users"]] == [("alice", 2), ("bob", 1)]
    second = parley.get_room_presence(roomIdentifier=room["arn"], maxResults=2, nextToken=first["nextToken"])
    assert [u["userId"] for u in second["users"]] == ["carol", "zoë"] and "nextToken" not in second
    assert second["users"][1]["attributes"] == {"n": "0"}

    settings = parley.get_room_extensions(identifier=room["arn"])
    assert settings["presenceEvents"] is False and settings["membersOnly"] is False
    changed = parley.update_room_extensions(identifier=room["arn"], presenceEvents=True)
    assert changed["presenceEvents"] is True and changed["historyMaxMessages"] == 50
    assert "presenceEvents" not in ivs.get_room(identifier=room["arn"])  # IVS shape unchanged
    with pytest.raises(parley.exceptions.ValidationException):
        parley.get_room_presence(roomIdentifier=room["arn"], maxResults=501)
    with pytest.raises(parley.exceptions.ValidationException):
        parley.get_room_presence(roomIdentifier=room["arn"], nextToken="not a token!")
    with pytest.raises(parley.exceptions.ResourceNotFoundException):
        parley.get_room_presence(roomIdentifier=room["arn"][:-12] + "abcdefABCDEF")
    assert all(a.kind != Kind.PRESENCE for a in list(api.actions.queue))  # reads publish nothing
