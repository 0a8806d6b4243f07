"""Seed 003 (groups-chat) across processes: two ``parley front groupschat`` replicas, ``parley api``
and a ``parley router`` on the real RabbitMQ and Redis. An account, token and session made on one
replica are honoured by the other; clients on different replicas talk, group events and receipts
cross replicas, offline events wait in the Store, and IVS's ListRooms sees the group."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from parley.testing.cluster import Cluster, new_namespace, running_cluster, suite_settings
from shared.config import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

SECRET = "groupschat-cluster-secret-groupschat-0123456789"


@pytest.fixture(scope="module")
def cluster(redis_url: str, amqp_url: str) -> Iterator[Cluster]:
    settings: Settings = suite_settings(new_namespace())
    with running_cluster(settings, redis_url, amqp_url, gateways=0, PARLEY_GROUPSCHAT_JWT_SECRET=SECRET) as cluster:
        cluster.start_front("gcA", "groupschat")
        cluster.start_front("gcB", "groupschat")
        yield cluster


async def recv(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    msg = await ws.receive(10)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    body: dict[str, Any] = json.loads(msg.data)
    return body


async def post(http: aiohttp.ClientSession, url: str, body: Any, token: str = "") -> Any:
    headers = {"authorization": f"bearer {token}"} if token else {}
    async with http.post(url, json=body, headers=headers) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def test_clients_on_two_replicas_talk(cluster: Cluster) -> None:
    a = f"http://127.0.0.1:{cluster.ports['gcA']}"
    b = f"http://127.0.0.1:{cluster.ports['gcB']}"
    async with aiohttp.ClientSession() as http:
        ids, tokens, urls = {}, {}, {}
        for name, here, there in (("alice", a, b), ("bob", b, a), ("carol", a, b)):
            ids[name] = (await post(http, f"{here}/users", {"username": name, "password": "0000"}))["id"]
            tokens[name] = (await post(http, f"{there}/login", {"username": name, "password": "0000"}))["token"]
            urls[name] = (await post(http, f"{here}/sessions", {}, tokens[name]))["messaging_url"]
        # alice's session was made on A: she connects to B with it (and bob the other way)
        alice = await http.ws_connect(urls["alice"].replace(a[len("http://") :], b[len("http://") :]))
        bob = await http.ws_connect(urls["bob"].replace(b[len("http://") :], a[len("http://") :]))
        for ws in (alice, bob):
            await ws.send_str(json.dumps({"method": 20}))
        group = (await post(http, f"{a}/groups", {"name": "g", "user_ids": [ids["bob"]]}, tokens["alice"]))["id"]
        assert (await recv(alice))["type"] == 70 and (await recv(bob))["type"] == 70
        await asyncio.sleep(0.3)
        await alice.send_str(json.dumps({"method": 40, "body": {"group_id": group, "data": "across"}}))
        sent = await recv(alice)
        assert sent["type"] == 21
        received = await recv(bob)
        assert received["type"] == 20 and received["body"]["data"] == "across"
        assert received["body"]["message_id"] == sent["body"]["message_id"]
        await bob.send_str(json.dumps({"method": 41, "body": {"message_id": sent["body"]["message_id"]}}))
        assert (await recv(alice))["type"] == 22
        await bob.send_str(json.dumps({"method": 60, "body": {"group_id": group}}))
        assert (await recv(alice))["body"] == {"group_id": group, "user_id": ids["bob"]}
        # carol joins on B while offline, then gets the join event when she connects
        async with http.put(
            f"{b}/groups/{group}/join",
            json={"user_id": ids["carol"]},
            headers={"authorization": f"bearer {tokens['alice']}"},
        ) as r:
            assert r.status == 200
        assert (await recv(alice))["type"] == 72 and (await recv(bob))["type"] == 72
        await bob.send_str(json.dumps({"method": 40, "body": {"group_id": group, "data": "hi carol"}}))
        assert (await recv(bob))["type"] == 21
        assert (await recv(alice))["body"]["data"] == "hi carol"
        await asyncio.sleep(0.3)
        carol = await http.ws_connect(urls["carol"])
        await carol.send_str(json.dumps({"method": 20}))
        assert [(await recv(carol))["type"] for _ in range(2)] == [72, 20]
        # a new session made on A closes alice's connection on B (one device session per user)
        await post(http, f"{a}/sessions", {}, tokens["alice"])
        assert (await recv(alice))["body"]["code"] == 409
        assert (await alice.receive(10)).type == aiohttp.WSMsgType.CLOSE
        for ws in (alice, bob, carol):
            await ws.close()
    names = [r["name"] for r in cluster.ivschat().list_rooms()["rooms"]]
    assert "groupschat:g" in names  # a group IS a parley room
