"""The web demo's routes on a control plane in memory, for tests/test_web_demo_*.py.

Test modules opt in with ``pytest_plugins = ["demo_helpers"]`` (and import nothing from here, so
pytest can register the module before it is imported) and get the fixtures ``start_demo``
(``await start_demo(**mount_demo options)``: a started aiohttp test client, closed after the test)
and ``client`` (one with the demo's defaults).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from api.demo import mount_demo
from shared.config import Settings
from shared.engine.memory import MemoryBus, MemoryStore


@pytest.fixture
async def start_demo(settings: Settings) -> AsyncIterator[Callable[..., Awaitable[TestClient]]]:
    clients: list[TestClient] = []

    async def start(**mount: Any) -> TestClient:
        app = create_app(settings, MemoryStore(), MemoryBus(settings.shards))
        mount_demo(app, gateway_port=lambda: 18080, **mount)
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return client

    try:
        yield start
    finally:
        for client in clients:
            await client.close()


@pytest.fixture
async def client(start_demo: Callable[..., Awaitable[TestClient]]) -> TestClient:
    return await start_demo()
