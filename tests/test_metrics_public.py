"""PARLEY_METRICS_PUBLIC=false keeps /metrics off the public api and gateway ports: the
api answers it as any unknown path (400 ValidationException), the gateway 404, and PARLEY_METRICS_PORT
serves the metrics instead. The default keeps today's behaviour (tests/test_metrics.py scrapes the
api and gateway ports)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from parley.embedded import Node
from parley.testing.cluster import Cluster, free_port, wait_http
from shared.config import Settings
from shared.engine.memory import MemoryBus, MemoryStore
from tests.test_api_limits import parley_dev


async def get(url: str) -> tuple[int, dict[str, str], str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, dict(response.headers), await response.text()


@pytest.fixture(params=[True, False], ids=["public", "private"])
async def node(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[Node]:
    node = Node(
        settings.with_(metrics_public=request.param), MemoryStore(), MemoryBus(settings.shards), router_all_shards=True
    )
    await node.start(api_port=0, gateway_port=0)
    yield node
    await node.stop()


async def test_metrics_on_the_api_and_gateway_ports_follow_the_setting(node: Node) -> None:
    assert node.api is not None and node.gateway is not None
    api_url, gateway_url = f"http://127.0.0.1:{node.api.port}", f"http://127.0.0.1:{node.gateway.port}"
    api_status, api_headers, api_body = await get(f"{api_url}/metrics")
    gateway_status, _, gateway_body = await get(f"{gateway_url}/metrics")
    if node.settings.metrics_public:
        assert api_status == 200 and "parley_api_requests" in api_body
        assert gateway_status == 200 and "ConcurrentChatConnections" in gateway_body
    else:
        # The api answers /metrics as any unknown path: 400 ValidationException (UNKNOWN_OPERATION).
        unknown_status, unknown_headers, _ = await get(f"{api_url}/no-such-path")
        assert (api_status, api_headers["x-amzn-ErrorType"]) == (unknown_status, unknown_headers["x-amzn-ErrorType"])
        assert api_status == 400 and '"reason":"UNKNOWN_OPERATION"' in api_body
        assert gateway_status == 404 and "ConcurrentChatConnections" not in gateway_body
    assert (await get(f"{api_url}/healthz"))[0] == 200  # probes are unaffected either way
    assert (await get(f"{gateway_url}/healthz"))[0] == 200


@pytest.mark.e2e
@pytest.mark.parametrize("component", ["api", "gateway"])
async def test_parley_api_and_gateway_serve_private_metrics_on_the_metrics_port(
    component: str, settings: Settings, redis_url: str, amqp_url: str
) -> None:
    metrics_port = free_port()
    env = {"PARLEY_METRICS_PUBLIC": "false", "PARLEY_METRICS_PORT": str(metrics_port)}
    cluster = Cluster(settings, redis_url, amqp_url, extra_env=env)
    try:
        port = cluster.start_api() if component == "api" else cluster.start_gateway("gw")
        wait_http(f"http://127.0.0.1:{metrics_port}/metrics")
        status, _, body = await get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert status == 200 and "parley_connection_quota" in body
        assert (await get(f"http://127.0.0.1:{port}/metrics"))[0] == (400 if component == "api" else 404)
    finally:
        cluster.stop()
        cluster.destroy()


@pytest.mark.e2e
async def test_parley_dev_serves_private_metrics_on_the_metrics_port() -> None:
    metrics_port = free_port()
    with parley_dev({"PARLEY_METRICS_PUBLIC": "false", "PARLEY_METRICS_PORT": str(metrics_port)}) as port:
        wait_http(f"http://127.0.0.1:{metrics_port}/metrics")
        status, _, body = await get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert status == 200 and "parley_api_requests" in body
        assert (await get(f"http://127.0.0.1:{port}/metrics"))[0] == 400
