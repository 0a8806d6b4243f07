"""parley's extensions across processes: ``parley api``, two ``parley gateway`` and a ``parley
router`` on the real RabbitMQ and Redis. Direct messages, client events and connection
approval must work when the parties sit on different gateways."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from parley.testing.chatclient import ChatClient
from parley.testing.cluster import Cluster, new_namespace, running_cluster, suite_settings
from shared.config import Settings
from shared.protocol import frames

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


@pytest.fixture(scope="module")
def module_settings() -> Settings:
    return suite_settings(new_namespace())


@pytest.fixture(scope="module")
def cluster(module_settings: Settings, redis_url: str, amqp_url: str) -> Iterator[Cluster]:
    with running_cluster(module_settings, redis_url, amqp_url, PARLEY_CONNECTION_RATE_PER_SECOND="1000") as cluster:
        yield cluster


async def test_direct_messages_and_events_across_gateways(cluster: Cluster) -> None:
    room = cluster.ivschat().create_room(name="dm", maximumMessageRatePerSecond=100)
    caps = ["SEND_MESSAGE", "SEND_EVENT"]
    alice = await ChatClient.open(cluster.ws_url("gwA"), cluster.token(room["arn"], "alice", caps))
    bob_b = await ChatClient.open(cluster.ws_url("gwB"), cluster.token(room["arn"], "bob", caps))
    bob_a = await ChatClient.open(cluster.ws_url("gwA"), cluster.token(room["arn"], "bob", caps))
    carol = await ChatClient.open(cluster.ws_url("gwB"), cluster.token(room["arn"], "carol", caps))
    await asyncio.sleep(0.2)  # let both gateways' room subscriptions settle

    rid = await alice.send_message("just for bob", Recipient="bob")
    direct = await alice.expect(Type="MESSAGE", RequestId=rid, timeout=10)
    assert direct["Recipient"] == "bob"
    assert await bob_b.expect(Type="MESSAGE", timeout=10) == direct  # bob on the other gateway
    assert await bob_a.expect(Type="MESSAGE", timeout=10) == direct  # and on the sender's
    rid = await bob_b.send(
        "SEND_EVENT", EventName="parley:READ", Attributes={"MessageId": direct["Id"]}, Recipient="alice"
    )
    receipt = await alice.expect(Type="EVENT", RequestId=rid, timeout=10)
    assert receipt["Sender"]["UserId"] == "bob" and receipt["Attributes"]["MessageId"] == direct["Id"]

    await alice.send("SEND_EVENT", EventName="parley:TYPING_START")
    typing = await carol.expect(Type="EVENT", timeout=10)  # a room event crosses gateways too
    assert typing["EventName"] == "parley:TYPING_START" and typing["Sender"]["UserId"] == "alice"
    assert not [f for f in carol.frames if f["Type"] == "MESSAGE" or f.get("Recipient")]  # nothing direct leaked
    assert cluster.parleychat().list_room_messages(roomIdentifier=room["arn"])["messages"] == []
    for client in (alice, bob_a, bob_b, carol):
        await client.close()


async def test_approval_across_gateways(cluster: Cluster) -> None:
    parley = cluster.parleychat()
    room = cluster.ivschat().create_room(name="gated")
    ext = parley.update_room_extensions(identifier=room["arn"], approvalRequired=True)
    assert ext["approvalRequired"] is True
    assert parley.get_room_extensions(identifier=room["arn"])["approvalRequired"] is True
    await asyncio.sleep(0.1)
    mod = await ChatClient.open(
        cluster.ws_url("gwA"), cluster.token(room["arn"], "mod", ["SEND_MESSAGE", "DISCONNECT_USER"])
    )
    guest = await ChatClient.open(cluster.ws_url("gwB"), cluster.token(room["arn"], "guest"))
    pending = await mod.expect(Type="EVENT", EventName=frames.EVENT_CONNECTION_PENDING, timeout=10)
    assert pending["Attributes"]["UserId"] == "guest"

    await mod.send_message("not for pending eyes")
    await mod.expect(Type="MESSAGE", timeout=10)
    rid = await mod.send("APPROVE_CONNECTION", ConnectionId=pending["Attributes"]["ConnectionId"])
    approved = await guest.expect(Type="EVENT", timeout=10)  # the guest's first frame
    assert approved["EventName"] == frames.EVENT_CONNECTION_APPROVED and approved["RequestId"] == rid
    assert [f["Type"] for f in guest.frames] == ["EVENT"]
    await mod.send_message("welcome")
    assert (await guest.expect(Type="MESSAGE", timeout=10))["Content"] == "welcome"

    # The control plane approves too, whichever gateway holds the connection.
    late = await ChatClient.open(cluster.ws_url("gwA"), cluster.token(room["arn"], "late"))
    pending = await mod.expect(Type="EVENT", EventName=frames.EVENT_CONNECTION_PENDING, timeout=10)
    assert pending["Attributes"]["UserId"] == "late"
    assert parley.approve_connection(roomIdentifier=room["arn"], connectionId=pending["Attributes"]["ConnectionId"])
    assert (await late.expect(Type="EVENT", timeout=10))["EventName"] == frames.EVENT_CONNECTION_APPROVED
    rid = await late.send_message("made it")
    assert (await guest.expect(Type="MESSAGE", timeout=10))["Content"] == "made it"
    for client in (mod, guest, late):
        await client.close()
