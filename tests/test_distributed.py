"""Distributed mode end to end: ``parley api``, two ``parley gateway`` and ``parley router``
processes on the real RabbitMQ and Redis, driven by boto3 and real WebSocket clients."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from parley.testing.chatclient import ChatClient
from parley.testing.cluster import Cluster, running_cluster
from shared.config import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


@pytest.fixture
def cluster(settings: Settings, redis_url: str, amqp_url: str) -> Iterator[Cluster]:
    with running_cluster(settings, redis_url, amqp_url, PARLEY_CONNECTION_RATE_PER_SECOND="1000") as cluster:
        yield cluster


async def test_clients_on_two_gateways_see_each_other(cluster: Cluster) -> None:
    ivschat = cluster.ivschat()
    room = ivschat.create_room(name="across", maximumMessageRatePerSecond=100)
    alice = await ChatClient.open(cluster.ws_url("gwA"), cluster.token(room["arn"], "alice"))
    bob = await ChatClient.open(
        cluster.ws_url("gwB"), cluster.token(room["arn"], "bob", ["SEND_MESSAGE", "DELETE_MESSAGE"])
    )
    await asyncio.sleep(0.2)  # let both gateways' room subscriptions settle
    rid = await alice.send_message("hi bob")
    echoed = await alice.expect(Type="MESSAGE", RequestId=rid, timeout=10)
    on_b = await bob.expect(Type="MESSAGE", timeout=10)
    assert on_b == echoed and on_b["Sender"]["UserId"] == "alice"
    rid = await bob.send_message("hi alice")
    assert (await alice.expect(Type="MESSAGE", timeout=10))["Content"] == "hi alice"

    # control-plane moderation reaches both gateways, in order with the messages
    event_id = ivschat.send_event(roomIdentifier=room["arn"], eventName="app:poll", attributes={"q": "1"})["id"]
    for client in (alice, bob):
        event = await client.expect(Type="EVENT", timeout=10)
        assert event["Id"] == event_id and event["EventName"] == "app:poll" and event["Attributes"] == {"q": "1"}
    deleted_id = ivschat.delete_message(roomIdentifier=room["arn"], id=echoed["Id"], reason="oops")["id"]
    for client in (alice, bob):
        event = await client.expect(Type="EVENT", timeout=10)
        assert event["Id"] == deleted_id and event["Attributes"]["MessageID"] == echoed["Id"]
    ivschat.disconnect_user(roomIdentifier=room["arn"], userId="alice", reason="bye")
    event = await bob.expect(Type="EVENT", timeout=10)
    assert event["EventName"] == "aws:DISCONNECT_USER" and event["Attributes"]["UserId"] == "alice"
    await asyncio.wait_for(alice.ws.wait_closed(), 10)
    assert alice.ws.close_code == 1000
    await bob.close()


async def test_killed_router_loses_no_accepted_message(cluster: Cluster) -> None:
    """300 messages stream in; the only router is SIGKILLed mid-stream and a new one starts.
    Every message the gateway accepted is delivered, once per Id, in send order."""
    ivschat = cluster.ivschat()
    room = ivschat.create_room(name="crash", maximumMessageRatePerSecond=100)
    sender = await ChatClient.open(cluster.ws_url("gwA"), cluster.token(room["arn"], "sender"))
    reader = await ChatClient.open(cluster.ws_url("gwB"), cluster.token(room["arn"], "reader", []))
    await asyncio.sleep(0.2)

    total = 300
    sent: list[str] = []

    async def produce() -> None:
        for n in range(total):
            sent.append(f"m{n:04d}")
            await sender.send_message(sent[-1])
            await asyncio.sleep(0.012)  # ~80/s, under the room's 100/s

    producer = asyncio.create_task(produce())
    await asyncio.sleep(1.0)
    cluster.kill("router1")  # SIGKILL: no goodbye, unacked actions go back to the queue
    await asyncio.sleep(0.5)
    cluster.start_router("router2")
    await producer

    contents: list[str] = []
    seen_ids: set[str] = set()
    deadline = time.monotonic() + 30
    while len(contents) < total and time.monotonic() < deadline:
        try:
            frame = await reader.recv(timeout=max(deadline - time.monotonic(), 0.1))
        except TimeoutError:
            break
        if frame["Type"] == "MESSAGE" and frame["Id"] not in seen_ids:  # the SDK drops repeated Ids too
            seen_ids.add(frame["Id"])
            contents.append(frame["Content"])
    echoes = [f for f in await sender.drain() if f["Type"] == "MESSAGE"]
    errors = [f for f in sender.frames if f["Type"] == "ERROR"]
    assert not errors
    assert {f["Content"] for f in echoes} == set(sent)
    assert contents == sent
    await sender.close()
    await reader.close()


async def test_two_routers_split_the_shards_and_keep_each_rooms_order(
    settings: Settings, redis_url: str, amqp_url: str
) -> None:
    # 16 shards: with the suite's usual 4, rendezvous hashing gives one router all of them 1 time in 8.
    with running_cluster(
        settings.with_(shards=16), redis_url, amqp_url, PARLEY_CONNECTION_RATE_PER_SECOND="1000"
    ) as cluster:
        await _two_routers(cluster)


async def _two_routers(cluster: Cluster) -> None:
    cluster.start_router("router2")
    await asyncio.sleep(2.5)  # heartbeats meet; shards move to their rendezvous owners
    acquired = {
        name: (cluster.log_dir / f"parley-{cluster.settings.namespace}-{name}.log").read_text().count("shard acquired")
        for name in ("router1", "router2")
    }
    assert acquired["router2"] > 0 and acquired["router1"] > 0

    ivschat = cluster.ivschat()
    rooms = [ivschat.create_room(name=f"r{i}", maximumMessageRatePerSecond=100) for i in range(6)]
    senders, readers = [], []
    for index, room in enumerate(rooms):
        gateway_in, gateway_out = ("gwA", "gwB") if index % 2 else ("gwB", "gwA")
        senders.append(await ChatClient.open(cluster.ws_url(gateway_in), cluster.token(room["arn"], "s")))
        readers.append(await ChatClient.open(cluster.ws_url(gateway_out), cluster.token(room["arn"], "r", [])))
    await asyncio.sleep(0.2)
    for n in range(30):
        for sender in senders:
            await sender.send_message(f"{n}")
    for reader in readers:
        got = [int((await reader.expect(Type="MESSAGE", timeout=10))["Content"]) for _ in range(30)]
        assert got == list(range(30))
    for client in senders + readers:
        await client.close()
