"""Prometheus metrics: scrape /metrics of real processes after real traffic and check the counters
moved by exactly the right amounts (IVS names and dimensions, usage metric, api and bus lag)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from parley.embedded import Node
from parley.loadtest import IvsChatApi
from parley.testing.chatclient import ChatClient
from parley.testing.cluster import Cluster, free_port
from shared.config import Settings
from shared.engine.memory import MemoryBus, MemoryStore

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
USAGE = (("Class", "None"), ("Resource", "ConcurrentChatConnections"), ("Service", "IVS Chat"), ("Type", "Resource"))


async def scrape(url: str) -> Samples:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples that carry ``labels`` (whatever their other labels, e.g. Protocol)."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in samples.items() if n == name and wanted <= set(have))


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


@pytest.fixture
async def node(settings: Settings) -> AsyncIterator[Node]:
    node = Node(settings, MemoryStore(), MemoryBus(settings.shards), router_all_shards=True)
    await node.start(api_port=0, gateway_port=0)
    yield node
    await node.stop()


async def test_embedded_node_counts_ivs_metrics(node: Node, settings: Settings) -> None:
    assert node.api is not None and node.gateway is not None
    api_url = f"http://127.0.0.1:{node.api.port}"
    ws_url = f"ws://127.0.0.1:{node.gateway.port}/"
    before = await scrape(f"{api_url}/metrics")
    async with IvsChatApi(api_url, settings.access_key_id, settings.secret_access_key, settings.region) as api:
        room = await api.call("CreateRoom", {"name": "metrics"})

        async def token(user: str) -> str:
            params = {"roomIdentifier": room["arn"], "userId": user, "capabilities": ["SEND_MESSAGE"]}
            return (await api.call("CreateChatToken", params))["token"]

        clients = [await ChatClient.open(ws_url, await token(f"u{i}")) for i in range(3)]
        during = await scrape(f"{api_url}/metrics")
        for i in range(4):
            await clients[i % 3].send_message(f"hello {i}")
        for client in clients:
            for _ in range(4):
                await client.expect(Type="MESSAGE")
        await api.call("SendEvent", {"roomIdentifier": room["arn"], "eventName": "app:x"})
        for client in clients:
            await client.expect(Type="EVENT")
        await clients[0].send_message("")  # ERROR 400 from the gateway
        await clients[0].expect(Type="ERROR")
        with pytest.raises(Exception, match="ResourceNotFoundException"):
            await api.call("GetRoom", {"identifier": "arn:aws:ivschat:us-east-1:123456789012:room/AAAAAAAAAAAA"})
    with pytest.raises(Exception, match="401"):
        await ChatClient.open(ws_url, "not-a-token")
    gateway_scrape = await scrape(f"http://127.0.0.1:{node.gateway.port}/metrics")  # the gateway port serves it too
    for client in clients:
        await client.close()
    await asyncio.sleep(0.1)
    after = await scrape(f"{api_url}/metrics")

    # IVS metrics (AWS/IVSChat): 4 messages + 1 event decided, each delivered to 3 connections
    assert delta(before, during, "ConcurrentChatConnections") == 3
    assert delta(before, during, "ResourceCount", **dict(USAGE)) == 3
    assert delta(before, after, "ConcurrentChatConnections") == 0
    assert delta(before, after, "MessagingRequests_total") == 5
    assert delta(before, after, "MessagingRequests_total", Protocol="ivs") == 5  # IVS clients, no front
    assert delta(before, after, "Requests_total", Action="SendMessage") == 4
    assert delta(before, after, "Requests_total", Action="SendEvent") == 1
    assert delta(before, after, "MessagingDeliveries_total") == 15
    assert delta(before, after, "Deliveries_total", Action="SendMessage") == 12
    assert delta(before, after, "Deliveries_total", Action="SendEvent") == 3
    assert value(gateway_scrape, "MessagingDeliveries_total") == value(after, "MessagingDeliveries_total")
    # operational
    assert delta(before, after, "parley_send_to_deliver_seconds_count") == 5  # one observation per fan-out
    assert delta(before, after, "parley_router_action_age_seconds_count") == 5
    assert delta(before, after, "parley_request_errors_total", code="400") == 1
    assert delta(before, after, "parley_connect_rejections_total", reason="invalid_token") == 1
    assert delta(before, after, "parley_api_requests_total", operation="CreateRoom", code="OK") == 1
    assert delta(before, after, "parley_api_requests_total", operation="CreateChatToken", code="OK") == 3
    assert delta(before, after, "parley_api_requests_total", operation="GetRoom", code="ResourceNotFoundException") == 1
    assert delta(before, after, "parley_api_request_seconds_count", operation="CreateChatToken") == 3
    assert value(after, "parley_router_pending_actions") == 0
    assert ("parley_api_requests_total", (("code", "OK"), ("operation", "Unknown"))) not in after  # scrapes


# --- distributed: each process exports its own series; sums across processes are exact ----------
@pytest.fixture
def cluster(settings: Settings, redis_url: str, amqp_url: str) -> Iterator[Cluster]:
    cluster = Cluster(settings, redis_url, amqp_url, extra_env={"PARLEY_LOG_LEVEL": "warning"})
    try:
        cluster.start_api()
        cluster.start_gateway("gwA")
        cluster.start_gateway("gwB")
        cluster.ports["router1"] = free_port()
        cluster.extra_env["PARLEY_METRICS_PORT"] = str(cluster.ports["router1"])
        cluster.start_router("router1")
        del cluster.extra_env["PARLEY_METRICS_PORT"]
        yield cluster
    finally:
        cluster.stop()
        cluster.destroy()


@pytest.mark.e2e
@pytest.mark.integration
async def test_counters_sum_across_gateway_and_router_processes(cluster: Cluster, settings: Settings) -> None:
    api_url = f"http://127.0.0.1:{cluster.ports['api']}"
    router_url = f"http://127.0.0.1:{cluster.ports['router1']}/metrics"
    for _ in range(200):  # the router has taken every shard (one queue declare each: slow under load)
        with contextlib.suppress(aiohttp.ClientError, AssertionError):
            if value(await scrape(router_url), "parley_router_owned_shards") == settings.shards:
                break
        await asyncio.sleep(0.1)
    async with IvsChatApi(api_url, settings.access_key_id, settings.secret_access_key, settings.region) as api:
        room = await api.call("CreateRoom", {"name": "metrics", "maximumMessageRatePerSecond": 100})
        clients = []
        for i in range(5):  # 3 on gateway A, 2 on gateway B
            params = {"roomIdentifier": room["arn"], "userId": f"u{i}", "capabilities": ["SEND_MESSAGE"]}
            token = (await api.call("CreateChatToken", params))["token"]
            clients.append(await ChatClient.open(cluster.ws_url("gwA" if i % 2 == 0 else "gwB"), token))
    await asyncio.sleep(0.5)  # both gateways subscribed to the room
    gateways = [f"http://127.0.0.1:{cluster.ports[g]}/metrics" for g in ("gwA", "gwB")]
    connected = [await scrape(url) for url in gateways]
    assert [value(s, "ConcurrentChatConnections") for s in connected] == [3, 2]
    for i in range(6):
        await clients[i % 5].send_message(f"m{i}")
    for client in clients:
        for _ in range(6):
            await client.expect(Type="MESSAGE", timeout=10)
    router = await scrape(router_url)
    scraped = [await scrape(url) for url in gateways]
    for client in clients:
        await client.close()

    # sum(MessagingDeliveries_total) over gateways = messages × connections in the room
    assert [value(s, "MessagingDeliveries_total") for s in scraped] == [18, 12]
    assert sum(value(s, "Deliveries_total", Action="SendMessage") for s in scraped) == 30
    assert value(router, "MessagingRequests_total") == 6
    assert value(router, "Requests_total", Action="SendMessage") == 6
    assert value(router, "parley_router_action_age_seconds_count") == 6
    assert value(router, "parley_router_owned_shards") == settings.shards
    assert value(router, "MessagingDeliveries_total") == 0  # gateways count deliveries, routers requests
    assert all(value(s, "MessagingRequests_total") == 0 for s in scraped)
    api_metrics = await scrape(f"{api_url}/metrics")
    assert value(api_metrics, "parley_api_requests_total", operation="CreateChatToken", code="OK") == 5
