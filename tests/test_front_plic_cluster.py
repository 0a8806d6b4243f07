"""Seed 004 (PLIC-Chat) across processes: two ``parley front plic`` replicas, ``parley api`` and
a ``parley router`` on the real RabbitMQ and Redis. Rooms made on one replica are served by the
other; clients on different replicas talk, and IVS's ListRooms sees the plic room."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import jwt
import pytest

from parley.testing.cluster import Cluster, new_namespace, running_cluster, suite_settings
from shared.config import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

SECRET = "plic-cluster-secret-plic-cluster-secret-0123"


def token(user: str) -> str:
    return jwt.encode({"sub": user, "exp": int(time.time()) + 600}, SECRET, algorithm="HS256")


@pytest.fixture(scope="module")
def cluster(redis_url: str, amqp_url: str) -> Iterator[Cluster]:
    settings: Settings = suite_settings(new_namespace())
    with running_cluster(settings, redis_url, amqp_url, gateways=0, PARLEY_PLIC_JWT_SECRET=SECRET) as cluster:
        cluster.start_front("plicA", "plic")
        cluster.start_front("plicB", "plic")
        yield cluster


async def recv(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    msg = await ws.receive(10)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    body: dict[str, Any] = json.loads(msg.data)
    return body


async def test_clients_on_two_replicas_talk(cluster: Cluster) -> None:
    a = f"http://127.0.0.1:{cluster.ports['plicA']}"
    b = f"http://127.0.0.1:{cluster.ports['plicB']}"
    async with aiohttp.ClientSession() as http:
        created = await http.post(
            f"{a}/rooms",
            json={"users": ["bob"], "apartment_id": 3},
            headers={"Authorization": f"Bearer {token('alice')}"},
        )
        room = (await created.json())["data"]
        assert isinstance(room, int)
        listed = await http.get(f"{b}/rooms", headers={"Authorization": f"Bearer {token('bob')}"})
        assert [r["room_id"] for r in (await listed.json())["data"]] == [room]
        alice = await http.ws_connect(f"{a.replace('http', 'ws')}/?token={token('alice')}")
        bob = await http.ws_connect(f"{b.replace('http', 'ws')}/?token={token('bob')}")
        await asyncio.sleep(0.3)  # both replicas subscribed to the room's channel
        await alice.send_str(
            json.dumps({"type": "SendMessage", "data": {"room_id": room, "message": "across", "message_temp_id": "1"}})
        )
        confirmation = await recv(alice)
        assert confirmation["type"] == "MessageSentConfirmation" and confirmation["data"]["confirmed"] is True
        assert await recv(bob) == {
            "type": "MessageReceived",
            "data": {"room_id": room, "sender_id": "alice", "message": "across"},
        }
        await bob.send_str(
            json.dumps({"type": "SendMessage", "data": {"room_id": room, "message": "back", "message_temp_id": "2"}})
        )
        assert (await recv(bob))["data"]["confirmed"] is True
        assert (await recv(alice))["data"] == {"room_id": room, "sender_id": "bob", "message": "back"}
        # membership changed on replica A reaches a connection on replica B
        carol = await http.ws_connect(f"{b.replace('http', 'ws')}/?token={token('carol')}")
        await http.put(
            f"{a}/rooms",
            json={"room_id": room, "users_to_add": ["carol"], "users_to_remove": []},
            headers={"Authorization": f"Bearer {token('alice')}"},
        )
        await asyncio.sleep(0.5)
        await alice.send_str(
            json.dumps(
                {"type": "SendMessage", "data": {"room_id": room, "message": "hi carol", "message_temp_id": "3"}}
            )
        )
        assert (await recv(alice))["data"]["confirmed"] is True
        assert (await recv(carol))["data"]["message"] == "hi carol"
        for ws in (alice, bob, carol):
            await ws.close()
    names = [r["name"] for r in cluster.ivschat().list_rooms()["rooms"]]
    assert f"plic:{room}" in names  # a plic room IS a parley room
