"""Presence and membership across processes: ``parley api``, two ``parley gateway`` and two
``parley router`` on the real RabbitMQ and Redis. A gateway SIGKILLed while users are present
drops out of presence within the TTL, and USER_LEFT is emitted once per user who had no other
connection."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus

from parley.testing.chatclient import ChatClient
from parley.testing.cluster import Cluster, running_cluster
from shared.clock import now_ms
from shared.config import Settings
from shared.features.membership import EVENT_MEMBER_REMOVED
from shared.features.presence import EVENT_USER_JOINED, EVENT_USER_LEFT
from shared.protocol import tokens

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

TTL_S = 3.0


@pytest.fixture
def cluster(settings: Settings, redis_url: str, amqp_url: str) -> Iterator[Cluster]:
    # two routers, so two sweepers: LEFT must still be emitted once
    with running_cluster(
        settings, redis_url, amqp_url, gateways=2, routers=2, PARLEY_PRESENCE_TTL_SECONDS=str(TTL_S)
    ) as cluster:
        yield cluster


def _users(presence: dict[str, Any]) -> list[tuple[str, int]]:
    return [(user["userId"], user["connections"]) for user in presence["users"]]


def _events(client: ChatClient) -> list[tuple[str, str]]:
    return [(f["EventName"], f["Attributes"].get("UserId", "")) for f in client.frames if f["Type"] == "EVENT"]


async def test_killed_gateway_leaves_presence_within_the_ttl_and_left_is_sent_once(cluster: Cluster) -> None:
    ivschat, parley = cluster.ivschat(), cluster.parleychat()
    room = ivschat.create_room(name="presence")
    parley.update_room_extensions(identifier=room["arn"], presenceEvents=True)
    observer = await ChatClient.open(cluster.ws_url("gwA"), cluster.token(room["arn"], "observer", []))
    await asyncio.sleep(0.3)  # (the joiner itself may or may not see its own USER_JOINED)
    alice_b = await ChatClient.open(cluster.ws_url("gwB"), cluster.token(room["arn"], "alice"))
    alice_a = await ChatClient.open(cluster.ws_url("gwA"), cluster.token(room["arn"], "alice"))
    bob_b = await ChatClient.open(cluster.ws_url("gwB"), cluster.token(room["arn"], "bob"))
    await asyncio.sleep(0.5)

    present = parley.get_room_presence(roomIdentifier=room["arn"])
    assert _users(present) == [("alice", 2), ("bob", 1), ("observer", 1)] and present["connectionCount"] == 4
    rid = await observer.send("GET_PRESENCE")  # the socket sees the other gateway's connections too
    frame = await observer.expect(Type="PRESENCE", RequestId=rid, timeout=10)
    assert [(u["UserId"], u["Connections"]) for u in frame["Users"]] == _users(present)
    assert frame["Users"][1]["Attributes"] == {"displayName": "bob"}

    cluster.kill("gwB")  # SIGKILL: no goodbye, its presence entries stay until their deadline
    killed = time.monotonic()
    while _users(parley.get_room_presence(roomIdentifier=room["arn"])) != [("alice", 1), ("observer", 1)]:
        assert time.monotonic() - killed < TTL_S + 1.5, "the dead gateway's users stayed present"
        await asyncio.sleep(0.1)
    left = await observer.expect(Type="EVENT", EventName=EVENT_USER_LEFT, timeout=10)
    assert left["Attributes"] == {"UserId": "bob", "displayName": "bob"}
    assert time.monotonic() - killed < TTL_S + 4
    await observer.drain(2.5)  # more sweeps run meanwhile, by both routers
    assert sorted(set(_events(observer)) - {(EVENT_USER_JOINED, "observer")}) == [
        (EVENT_USER_JOINED, "alice"),
        (EVENT_USER_JOINED, "bob"),
        (EVENT_USER_LEFT, "bob"),  # none for alice: she is still on gwA
    ]
    assert len(_events(observer)) - _events(observer).count((EVENT_USER_JOINED, "observer")) == 3  # each once

    await alice_a.close()  # her last connection now
    left = await observer.expect(Type="EVENT", EventName=EVENT_USER_LEFT, timeout=10)
    assert left["Attributes"]["UserId"] == "alice"
    assert _users(parley.get_room_presence(roomIdentifier=room["arn"])) == [("observer", 1)]
    for client in (alice_b, bob_b):
        client.ws.transport.abort()
    await observer.close()


async def test_members_only_room_across_gateways(cluster: Cluster) -> None:
    ivschat, parley = cluster.ivschat(), cluster.parleychat()
    room = ivschat.create_room(name="club")
    parley.update_room_extensions(identifier=room["arn"], membersOnly=True)
    parley.add_room_members(roomIdentifier=room["arn"], userIds=["alice", "bob"])
    with pytest.raises(ivschat.exceptions.AccessDeniedException):
        ivschat.create_chat_token(roomIdentifier=room["arn"], userId="mallory")
    forged, _ = tokens.mint(  # a token minted before the room went members-only, say
        cluster.settings.token_secret_bytes,
        room_id=room["id"],
        user_id="mallory",
        capabilities=["SEND_MESSAGE"],
        attributes=None,
        now_ms=now_ms(),
        session_minutes=5,
    )
    with pytest.raises(InvalidStatus) as refused:
        await ChatClient.open(cluster.ws_url("gwB"), forged)
    assert refused.value.response.status_code == 403

    alice = await ChatClient.open(cluster.ws_url("gwA"), cluster.token(room["arn"], "alice"))
    bob = await ChatClient.open(cluster.ws_url("gwB"), cluster.token(room["arn"], "bob"))
    await asyncio.sleep(0.3)
    rid = await bob.send_message("hi from a member")
    assert (await alice.expect(Type="MESSAGE", timeout=10))["Content"] == "hi from a member"
    await bob.expect(Type="MESSAGE", RequestId=rid, timeout=10)

    assert parley.remove_room_members(roomIdentifier=room["arn"], userIds=["bob"])["removedUserIds"] == ["bob"]
    removed = await alice.expect(Type="EVENT", timeout=10)
    assert (removed["EventName"], removed["Attributes"]) == (EVENT_MEMBER_REMOVED, {"UserId": "bob"})
    disconnected = await alice.expect(Type="EVENT", timeout=10)
    assert disconnected["EventName"] == "aws:DISCONNECT_USER" and disconnected["Attributes"]["UserId"] == "bob"
    await asyncio.wait_for(bob.ws.wait_closed(), 10)
    assert bob.ws.close_code == 1000
    assert parley.list_room_members(roomIdentifier=room["arn"])["userIds"] == ["alice"]
    await alice.close()
