"""Seed 001 (relay) across processes: two ``parley front relay`` replicas, ``parley api``, an IVS
gateway and a router on the real RabbitMQ and Redis. Clients on different replicas talk,
direct messages find their connection wherever it is, and admins approve across replicas."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from websockets.exceptions import ConnectionClosed

from parley.testing.chatclient import ChatClient
from parley.testing.cluster import Cluster, new_namespace, running_cluster, suite_settings
from shared.config import Settings
from tests.relay_client import RelayClient

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

ADMIN_KEY = "cluster-admin-key-0123456789"
FRONT_ENV = {
    "PARLEY_RELAY_ADMIN_KEY": ADMIN_KEY,
    "PARLEY_RELAY_CREATE_ROOMS": "true",
    "PARLEY_APPROVAL_TIMEOUT": "3",
}


@pytest.fixture(scope="module")
def cluster(redis_url: str, amqp_url: str) -> Iterator[Cluster]:
    settings: Settings = suite_settings(new_namespace())
    with running_cluster(settings, redis_url, amqp_url, gateways=1) as cluster:
        cluster.start_front("relayA", "relay", env=FRONT_ENV)
        cluster.start_front("relayB", "relay", env=FRONT_ENV)
        yield cluster


async def test_clients_on_different_replicas_talk(cluster: Cluster) -> None:
    room = cluster.ivschat().create_room(name="relay-cluster")
    a = await RelayClient.open(cluster.ports["relayA"], room["id"])
    b = await RelayClient.open(cluster.ports["relayB"], room["id"])
    c = await RelayClient.open(cluster.ports["relayB"], room["id"])
    ivs = await ChatClient.open(cluster.ws_url("gwA"), cluster.token(room["arn"], "alice"))
    await asyncio.sleep(0.3)  # let every replica's room subscription settle
    await a.send({"to": "all", "data": {"hello": "B"}})
    assert await b.expect(from_=a.id, timeout=10) == {"from": a.id, "data": {"hello": "B"}}
    assert await c.expect(from_=a.id, timeout=10) == {"from": a.id, "data": {"hello": "B"}}
    assert (await ivs.expect(Type="MESSAGE", timeout=10))["Sender"]["UserId"] == a.id
    await b.send({"to": a.id, "data": "just for a"})  # a direct message to the other replica
    assert await a.expect(from_=b.id, timeout=10) == {"from": b.id, "data": "just for a"}
    assert [f for f in await c.drain() if f.get("data") == "just for a"] == []
    await ivs.send_message("from IVS")
    for client in (a, b, c):
        assert await client.expect(from_="alice", timeout=10) == {"from": "alice", "data": "from IVS"}
    for client in (a, b, c):
        await client.close()
    await ivs.close()


async def test_admins_approve_across_replicas_and_apps_are_shared(cluster: Cluster) -> None:
    admin = await RelayClient.open(cluster.ports["relayA"], "shared-app")  # created on first use
    await admin.send({"to": "system", "event": "admin", "key": ADMIN_KEY})
    assert await admin.expect(event="admin", timeout=10) == {"from": "system", "event": "admin", "status": "success"}
    approved = await RelayClient.open(cluster.ports["relayB"], "shared-app")  # the same app's room
    waiting = await RelayClient.open(cluster.ports["relayB"], "shared-app")
    assert await admin.expect(new_id=approved.id, timeout=10)
    assert await admin.expect(new_id=waiting.id, timeout=10)
    await admin.send({"to": "system", "event": "approved", "id": approved.id})
    assert (await admin.expect(event="approved", timeout=10))["status"] == "success"
    await approved.send({"to": "all", "data": "still here"})
    assert await admin.expect(from_=approved.id, timeout=10) == {"from": approved.id, "data": "still here"}
    await asyncio.sleep(3.5)
    with pytest.raises(ConnectionClosed):
        while True:
            await waiting.recv(5)
    assert waiting.ws.close_code == 4004
    await approved.send("ping")
    assert await approved.expect(system="pong", timeout=10)
    for client in (admin, approved):
        await client.close()


async def test_the_control_plane_approves_a_relay_connection(cluster: Cluster) -> None:
    room = cluster.ivschat().create_room(name="relay-approve")
    approved = await RelayClient.open(cluster.ports["relayB"], room["id"])
    waiting = await RelayClient.open(cluster.ports["relayA"], room["id"])
    cluster.parleychat().approve_connection(roomIdentifier=room["arn"], connectionId=approved.id)
    await asyncio.sleep(3.5)
    await approved.send("ping")
    assert await approved.expect(system="pong", timeout=10)
    with pytest.raises(ConnectionClosed):
        while True:
            await waiting.recv(5)
    assert waiting.ws.close_code == 4004
    await approved.close()
