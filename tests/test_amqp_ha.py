"""RabbitMQ production settings against the real local broker: quorum queues
(``PARLEY_AMQP_QUEUE_TYPE``), their delivery limit, a queue-type mismatch, and failover between
the nodes of a comma-separated ``PARLEY_AMQP_URL``.

Failover runs through small TCP proxies in front of the one local broker, each standing for a
node: a proxy that stops is a node lost (its connections cut, its port refusing), which a second
RabbitMQ node could only show more slowly. Single-active-consumer on quorum queues and the
engine conformance suites run on both queue types in ``tests/test_engine_*.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from yarl import URL

from parley.testing.cluster import free_port
from shared.engine.actions import Ack
from shared.engine.amqp import AmqpRedisBus
from shared.engine.amqp.queues import QueueMismatch
from tests.engine_helpers import TIMEOUT, AmqpBusFactory, Inbox
from tests.test_engine_actions import Recorder, action

pytestmark = pytest.mark.integration
ONE_QUEUE_TYPE = True  # each test names the type it needs (tests/conftest.py)

ROOT = Path(__file__).resolve().parents[1]


class NodeProxy:
    """A TCP proxy on a free loopback port to the broker: a stand-in RabbitMQ node."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self._target_port = target_port
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.connections = 0

    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        broker_reader, broker_writer = await asyncio.open_connection("127.0.0.1", self._target_port)
        self._writers |= {client_writer, broker_writer}

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            writer.close()

        await asyncio.gather(pipe(client_reader, broker_writer), pipe(broker_reader, client_writer))

    async def stop(self) -> None:
        """The node is lost: its port refuses and its connections are cut."""
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()
        await self._server.wait_closed()


def closed_port_url() -> str:
    return f"amqp://guest:guest@127.0.0.1:{free_port()}/"  # nothing listens there


def queue_types(namespace: str) -> dict[str, str]:
    """``{queue: type}`` of this namespace's queues, as the broker lists them."""
    listed = subprocess.run(
        ["rabbitmqctl", "list_queues", "-q", "--no-table-headers", "name", "type"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    rows = (line.split() for line in listed.splitlines())
    return {row[0]: row[1] for row in rows if len(row) == 2 and row[0].startswith(f"{namespace}.")}


@pytest.mark.parametrize("queue_type", ["quorum", "classic"])
async def test_every_durable_queue_has_the_configured_type_quorum_by_default(
    amqp_bus_factory: AmqpBusFactory, amqp_url: str, namespace: str, queue_type: str
) -> None:
    defaults = AmqpRedisBus(amqp_url, "redis://127.0.0.1:6379/0", "unused")  # never started
    assert defaults.actions.queue_type == defaults.logs.queue_type == defaults.reviews.queue_type == "quorum"
    bus = await amqp_bus_factory(queue_type=queue_type)
    await bus.reviews.request(b"x", 0.05)  # declares this process's exclusive reply queue
    expected = {bus.actions.queue_name(shard): queue_type for shard in range(bus.actions.shards)}
    expected |= {bus.logs.queue_name: queue_type, bus.reviews.queue_name: queue_type}
    listed = queue_types(namespace)
    replies = {name: kind for name, kind in listed.items() if ".review-replies." in name}
    assert {name: kind for name, kind in listed.items() if name not in replies} == expected
    assert list(replies.values()) == ["classic"]  # exclusive: the one queue allowed to be transient


async def test_a_quorum_shard_survives_more_returns_than_rabbitmq_4s_default_delivery_limit(
    amqp_bus_factory: AmqpBusFactory,
) -> None:
    """RabbitMQ 4.0-4.2 count every return (a router whose channel closes with the action unacked)
    against a quorum queue's delivery limit, 20 by default; parley's explicit limit keeps the action."""
    gateway = await amqp_bus_factory(queue_type="quorum")
    shard = gateway.actions.shard_of("room-r")
    await gateway.actions.publish(action("room-r", 0))
    for _ in range(25):
        router = Recorder(auto_ack=False)
        consumer = await gateway.actions.consume_shard(shard, router)
        await router.inbox.wait(1)
        await consumer.stop()  # unacked: the broker takes it back
    last = Recorder()
    consumer = await gateway.actions.consume_shard(shard, last)
    await last.inbox.wait(1)
    assert last.ids == ["room-r-0"]
    await consumer.stop()


async def test_a_namespace_of_the_other_queue_type_is_refused_with_the_fix(
    amqp_bus_factory: AmqpBusFactory, amqp_url: str, redis_url: str, namespace: str
) -> None:
    await amqp_bus_factory(queue_type="classic")  # the namespace exists, on classic queues
    other = AmqpRedisBus(amqp_url, redis_url, namespace, shards=4, queue_type="quorum")
    with pytest.raises(QueueMismatch) as refused:
        await asyncio.wait_for(other.start(), TIMEOUT)
    message = str(refused.value)
    assert "PARLEY_AMQP_QUEUE_TYPE=quorum" in message and "PARLEY_AMQP_QUEUE_TYPE=classic" in message
    assert "PARLEY_NAMESPACE" in message and "drain" in message
    assert f"{namespace}.actions.0" in message
    await other.close()


async def test_a_process_on_the_other_queue_type_exits_at_once_saying_why(
    amqp_bus_factory: AmqpBusFactory, amqp_url: str, redis_url: str, namespace: str
) -> None:
    await amqp_bus_factory(queue_type="quorum")
    env = dict(os.environ) | {
        "PARLEY_NAMESPACE": namespace,
        "PARLEY_AMQP_URL": amqp_url,
        "PARLEY_REDIS_URL": redis_url,
        "PARLEY_SHARDS": "4",
        "PARLEY_AMQP_QUEUE_TYPE": "classic",
    }
    router = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "parley",
        "router",
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _, stderr = await asyncio.wait_for(router.communicate(), 30)
    finally:
        if router.returncode is None:
            router.kill()
            await router.wait()
    assert router.returncode != 0
    last_line = stderr.decode().strip().splitlines()[-1]
    assert last_line.startswith("parley router: RabbitMQ refused to declare queue")
    assert "PARLEY_AMQP_QUEUE_TYPE=classic" in last_line and "PARLEY_NAMESPACE" in last_line


async def test_the_first_reachable_node_of_the_list_is_used(amqp_bus_factory: AmqpBusFactory, amqp_url: str) -> None:
    from shared.engine.amqp.failover import FailoverConnection

    bus = await amqp_bus_factory(amqp_url=f"{closed_port_url()}, {amqp_url}")
    assert isinstance(bus.connection._connection, FailoverConnection)
    recorder = Recorder()
    consumer = await bus.actions.consume_shard(bus.actions.shard_of("room-f"), recorder)
    await bus.actions.publish(action("room-f", 0))
    await recorder.inbox.wait(1)
    await consumer.stop()


async def test_no_reachable_node_fails_the_start_promptly(redis_url: str, namespace: str) -> None:
    bus = AmqpRedisBus(f"{closed_port_url()},{closed_port_url()}", redis_url, namespace)
    with pytest.raises(OSError):
        await asyncio.wait_for(bus.start(), TIMEOUT)
    await bus.close()


@pytest.fixture
async def nodes(amqp_url: str) -> AsyncIterator[tuple[NodeProxy, NodeProxy]]:
    """Two stand-in nodes; request it before ``amqp_bus_factory`` so they outlive its buses."""
    broker_port = URL(amqp_url).port or 5672
    proxies = NodeProxy(broker_port), NodeProxy(broker_port)
    for proxy in proxies:
        await proxy.start()
    yield proxies
    for proxy in proxies:
        await proxy.stop()


async def test_a_lost_node_fails_over_to_the_next_and_consumers_carry_on(
    nodes: tuple[NodeProxy, NodeProxy], amqp_bus_factory: AmqpBusFactory
) -> None:
    node_a, node_b = nodes
    router = await amqp_bus_factory(amqp_url=f"{node_a.url()},{node_b.url()}")
    gateway = await amqp_bus_factory()  # straight to the broker
    assert (node_a.connections, node_b.connections) == (1, 0)
    recorder = Recorder()
    logs = Inbox()
    shard = gateway.actions.shard_of("room-x")
    await router.actions.consume_shard(shard, recorder)

    async def on_log(room_id: str, data: bytes, ack: Ack) -> None:
        logs.add(data)
        await ack()

    await router.logs.consume(on_log)
    await gateway.actions.publish(action("room-x", 0))
    await recorder.inbox.wait(1)

    await node_a.stop()  # node lost: the router's connection goes with it
    await gateway.actions.publish(action("room-x", 1))
    await gateway.logs.publish("room-x", b"after")
    # the router reconnects through node B at once (no retry interval between nodes), and its
    # consumers come back; room-x-0 may come again if its ack was cut (the router de-duplicates)
    await until_ids(recorder, ["room-x-0", "room-x-1"])
    await logs.wait(1, timeout=10)
    assert logs.items == [b"after"]
    assert node_b.connections == 1

    async def publish_through_b() -> None:  # the router's own publisher channel is back too
        while True:
            with contextlib.suppress(Exception):
                await router.actions.publish(action("room-x", 2))
                return
            await asyncio.sleep(0.1)

    await asyncio.wait_for(publish_through_b(), 10)
    await until_ids(recorder, ["room-x-0", "room-x-1", "room-x-2"])


async def until_ids(recorder: Recorder, expected: list[str]) -> None:
    """Wait until the recorder has seen ``expected``, in order, redeliveries aside."""

    async def seen() -> None:
        while list(dict.fromkeys(recorder.ids)) != expected:
            await asyncio.sleep(0.02)

    await asyncio.wait_for(seen(), 10)


async def test_a_nacked_publish_is_sent_again_on_a_renewed_publisher_channel(amqp_url: str, namespace: str) -> None:
    """A nack (RabbitMQ refusing a message: after a node loss, every publish on a channel opened
    while a quorum queue had no leader) renews the publisher channel and sends again; nacks that
    go on reach the caller after the last attempt."""
    import aio_pika
    from aiormq.exceptions import DeliveryError

    from shared.engine.amqp.connection import AmqpConnection

    connection = AmqpConnection(amqp_url)
    queue_name = f"{namespace}.nacks"
    await connection.open()
    setup = await connection.channel()
    # holds one message; the next publish is nacked (reject-publish) until the queue is purged
    queue = await setup.declare_queue(queue_name, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    try:
        first = connection.publisher
        exchange = lambda: connection.publisher.default_exchange  # noqa: E731 - looked up anew
        await connection.publish_confirmed(lambda: exchange().publish(aio_pika.Message(b"1"), routing_key=queue_name))
        attempts: list[object] = []

        async def publish_after_a_nack() -> None:
            attempts.append(connection.publisher)
            if len(attempts) == 2:
                await queue.purge()  # the refusal has passed
            await exchange().publish(aio_pika.Message(b"2"), routing_key=queue_name)

        await connection.publish_confirmed(publish_after_a_nack, delay=0)
        assert len(attempts) == 2 and attempts[0] is first and attempts[1] is not first
        assert connection.publisher is not first

        with pytest.raises(DeliveryError):  # the queue is full again: every attempt is nacked
            await connection.publish_confirmed(
                lambda: exchange().publish(aio_pika.Message(b"3"), routing_key=queue_name), attempts=3, delay=0
            )
    finally:
        await setup.queue_delete(queue_name)
        await connection.close(lambda: asyncio.sleep(0))
