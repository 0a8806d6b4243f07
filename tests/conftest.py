"""Shared fixtures: real Redis and RabbitMQ (local servers, given URLs, or testcontainers),
a fresh namespace per test so tests never see each other's keys or queues, and settings."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from parley.testing.cluster import new_namespace, suite_settings
from shared.config import Settings
from shared.engine.redis.connect import RedisTarget

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), timeout=1):
            return True
    except OSError:
        return False


def _docker_usable() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


def _service_url(env_name: str, default: str, image: str, factory_name: str) -> Iterator[str]:
    url = os.environ.get(env_name)
    if url:
        yield url
        return
    if _reachable(default):
        yield default
        return
    if not _docker_usable():
        pytest.fail(f"{default} is not reachable and Docker is not usable; run `make services`")
    if factory_name == "redis":
        from testcontainers.redis import RedisContainer

        with RedisContainer(image) as container:
            yield f"redis://{container.get_container_host_ip()}:{container.get_exposed_port(6379)}/0"
    else:
        from testcontainers.rabbitmq import RabbitMqContainer

        with RabbitMqContainer(image) as container:
            host, port = container.get_container_host_ip(), container.get_exposed_port(5672)
            yield f"amqp://guest:guest@{host}:{port}/"


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    yield from _service_url("PARLEY_REDIS_URL", DEFAULT_REDIS_URL, "redis:7", "redis")


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    yield from _service_url("PARLEY_AMQP_URL", DEFAULT_AMQP_URL, "rabbitmq:3", "rabbitmq")


@pytest.fixture
def namespace() -> str:
    return new_namespace()


@pytest.fixture
def settings(namespace: str) -> Settings:
    return suite_settings(namespace)


# --- real Store / Bus against the local servers (appended by the shared/ production engines) ---
async def _started_store(target: RedisTarget | str, namespace: str):  # -> AsyncIterator[RedisStore]
    from shared.engine.redis.store import RedisStore

    store = RedisStore(target, namespace)
    await store.start()
    try:
        yield store
    finally:
        await store.destroy()
        await store.close()


@pytest.fixture
async def redis_store(redis_url: str, namespace: str):  # -> AsyncIterator[RedisStore]
    """A started ``RedisStore`` on this test's namespace; its keys are deleted afterwards."""
    async for store in _started_store(redis_url, namespace):
        yield store


@pytest.fixture(scope="session")
def redis_cluster_target() -> Iterator[RedisTarget]:
    """A throwaway 3-master Redis Cluster (``parley/testing/redis_cluster.py``) for the session,
    started on first use: the target PARLEY_REDIS_CLUSTER=true and its seed URL make."""
    from parley.testing.redis_cluster import redis_cluster

    with redis_cluster() as nodes:
        yield RedisTarget(url=nodes.redis_url, cluster=True)


@pytest.fixture
async def redis_cluster_store(redis_cluster_target: RedisTarget, namespace: str):  # -> AsyncIterator[RedisStore]
    """A started ``RedisStore`` on the session's Redis Cluster; its keys are deleted afterwards."""
    async for store in _started_store(redis_cluster_target, namespace):
        yield store


@pytest.fixture(
    params=[
        "memory",
        pytest.param("redis", marks=pytest.mark.integration),
        pytest.param("redis-cluster", marks=pytest.mark.integration),
    ]
)
def engine_store(request: pytest.FixtureRequest):  # -> Store
    """Each engine's Store in turn, for the conformance suites (``tests/test_engine_*.py``): a
    ``MemoryStore``, the ``redis_store`` and the ``redis_cluster_store`` (integration: they need
    servers)."""
    if request.param == "memory":
        from shared.engine.memory import MemoryStore

        return MemoryStore()
    return request.getfixturevalue("redis_store" if request.param == "redis" else "redis_cluster_store")


AMQP_QUEUE_TYPES = ["quorum", "classic"]


@pytest.fixture
def amqp_queue_type(request: pytest.FixtureRequest) -> str:
    """PARLEY_AMQP_QUEUE_TYPE of the test's buses: a test using ``amqp_bus_factory`` runs on
    each type (``pytest_generate_tests``); the ``make_bus`` suites have an engine per type."""
    return str(getattr(request, "param", "quorum"))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # a module setting ONE_QUEUE_TYPE = True chooses the type per test itself
    if getattr(metafunc.module, "ONE_QUEUE_TYPE", False):
        return
    if "amqp_queue_type" in metafunc.fixturenames and "make_bus" not in metafunc.fixturenames:
        metafunc.parametrize("amqp_queue_type", AMQP_QUEUE_TYPES, indirect=True)


@pytest.fixture
async def amqp_bus_factory(redis_url: str, amqp_url: str, namespace: str, amqp_queue_type: str):
    """``await make(**kwargs)`` builds and starts an ``AmqpRedisBus`` on this test's namespace
    (default 4 shards, queues of type ``amqp_queue_type``); every bus is closed and the
    namespace's queues deleted afterwards."""
    from shared.engine.amqp import AmqpRedisBus

    buses: list[AmqpRedisBus] = []

    async def make(**kwargs: object) -> AmqpRedisBus:
        options: dict[str, object] = {"shards": 4, "queue_type": amqp_queue_type, **kwargs}
        url = str(options.pop("amqp_url", amqp_url))  # a node list, say
        redis = options.pop("redis_target", redis_url)  # a Redis Cluster, say
        bus = AmqpRedisBus(url, redis, namespace, **options)  # type: ignore[arg-type]
        buses.append(bus)
        await bus.start()
        return bus

    try:
        yield make
    finally:
        for bus in buses:
            await bus.close()
        if buses:  # straight to the broker: a test's node list may be gone by now
            await AmqpRedisBus(amqp_url, redis_url, namespace, shards=buses[0].actions.shards).destroy()


# Fixtures shared by several test modules: the engine suites' `make_bus` (memory and amqp
# engines, tests/test_engine_*.py) and the data-plane `node` (memory and real backends).
from tests.engine_helpers import make_bus  # noqa: E402, F401
from tests.nodes import node  # noqa: E402, F401
