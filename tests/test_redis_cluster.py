"""Redis Cluster (PARLEY_REDIS_CLUSTER=true): the settings, the key layout's hash tags, and real
3-master clusters (started here on free loopback ports) under which the ordered pipeline and the
sharded fan-out follow a live slot migration and a restarted master, and a distributed deployment
(api, two gateways, a router as processes) serves IVS clients.

The conformance suites (tests/test_engine_*.py) run every store concern on a cluster as well."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from parley.testing.chatclient import ChatClient
from parley.testing.cluster import running_cluster
from parley.testing.redis_cluster import RedisClusterNodes, redis_cluster
from shared.config import Settings
from shared.engine.fanout import Subscription
from shared.engine.redis.cluster import command_key, slot_of
from shared.engine.redis.connect import RedisTarget
from shared.engine.redis.fanout import RedisFanout
from shared.engine.redis.keys import KeySpace
from shared.engine.redis.store import RedisStore
from tests.engine_helpers import Inbox

RECOVERY = 15.0  # seconds a restarted master may take to serve again (node timeout 2 s)


# --- settings and layout --------------------------------------------------------------------------
def test_cluster_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARLEY_REDIS_CLUSTER", "true")
    monkeypatch.setenv("PARLEY_REDIS_URL", "redis://:pw@seed:7000/0")
    settings = Settings.from_env()
    assert settings.redis_problems() == []
    target = RedisTarget.from_settings(settings)
    assert target.cluster and target.url == "redis://:pw@seed:7000/0" and not target.uses_sentinel


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"redis_sentinels": "s:26379", "redis_sentinel_master": "m"}, "exclusive"),
        ({"namespace": "a{b}"}, "must not contain '{' or '}'"),
    ],
)
def test_unusable_cluster_settings_are_refused_clearly(changes: dict[str, str], message: str) -> None:
    settings = Settings(redis_cluster=True).with_(**changes)
    assert any(message in problem for problem in settings.redis_problems())
    with pytest.raises(ValueError, match=message.replace("{", r"\{").replace("}", r"\}")):
        RedisTarget.from_settings(settings)


def test_a_rooms_keys_and_channel_share_a_slot_and_rooms_spread_over_slots() -> None:
    keys = KeySpace("ns", clustered=True)
    for room in ("abcDEF123456", "r:with:colons", "x}y"):
        slots = {key_slot(k.encode()) for k in (keys.history(room), keys.members(room))}
        slots.add(key_slot(keys.room_channel(room)))
        assert len(slots) == 1
    assert len({key_slot(keys.history(f"room{i}").encode()) for i in range(50)}) > 40
    # what one script touches together
    assert key_slot(keys.record("room", "a").encode()) == key_slot(keys.index("room").encode())
    assert len({key_slot(k.encode()) for k in (*keys.reports("g"),)}) == 1
    presence = {key_slot(k.encode()) for k in (*keys.presence("r1"), *keys.presence("r2"))}
    presence |= {key_slot(keys.presence_held("h").encode()), key_slot(keys.presence_deadlines().encode())}
    assert len(presence) == 1
    # without Cluster the layout is the one running deployments have
    plain = KeySpace("ns")
    assert (plain.history("r"), plain.record("room", "a"), plain.presence("r")) == (
        "ns:hist:r",
        "ns:rec:room:a",
        ("ns:pres:r", "ns:presn:r"),
    )


def test_a_command_is_routed_by_its_key_or_first_script_key() -> None:
    assert command_key(("GET", "ns:rec:{room}:a")) == b"ns:rec:{room}:a"
    assert command_key(("SPUBLISH", b"ns:room:{r1}", b"data")) == b"ns:room:{r1}"
    assert command_key(("EVALSHA", "sha", 2, "ns:hist:{r1}", "ns:x", "arg")) == b"ns:hist:{r1}"
    assert command_key(("EVALSHA", "sha", 0, "arg")) is None
    assert command_key(("PING",)) is None
    assert slot_of(("GET", "a{r1}b")) == slot_of(("SADD", "c{r1}", "m")) == key_slot(b"r1")


# --- a cluster of this module's own (slots are moved and nodes killed) ----------------------------
@pytest.fixture(scope="module")
def nodes() -> Iterator[RedisClusterNodes]:
    with redis_cluster() as started:
        yield started


def _rooms_on(nodes: RedisClusterNodes, keys: KeySpace, port: int, count: int) -> list[str]:
    """Room ids whose keys live on the master at ``port``, each in a slot of its own."""
    rooms: dict[int, str] = {}
    for i in range(10_000):
        slot = key_slot(keys.room_channel(f"room{i}"))
        if slot not in rooms and nodes.owner(slot) == port:
            rooms[slot] = f"room{i}"
            if len(rooms) == count:
                break
    return list(rooms.values())


def _room_on(nodes: RedisClusterNodes, keys: KeySpace, port: int) -> str:
    """A room id whose keys live on the master at ``port``."""
    return _rooms_on(nodes, keys, port, 1)[0]


pytestmark = pytest.mark.integration


def _noted(inbox: Inbox) -> Callable[[Awaitable[None]], None]:
    """An ``on_resubscribed`` listener that notes each call (and lets its awaitable run)."""

    def listener(confirmed: Awaitable[None]) -> None:
        inbox.add(asyncio.ensure_future(confirmed))

    return listener


@contextlib.asynccontextmanager
async def _engines(
    nodes: RedisClusterNodes, namespace: str
) -> AsyncIterator[tuple[RedisStore, RedisFanout, Subscription, Inbox, Inbox]]:
    """A store and a fan-out on ``nodes``, and a gateway's subscription with its inbox and its
    ``on_resubscribed`` calls; all closed and the keys deleted after."""
    target = RedisTarget(url=nodes.redis_url, cluster=True)
    store = RedisStore(target, namespace)
    await store.start()
    fanout = RedisFanout(target, namespace, redis=store.redis, pipeline=store.pipeline)
    inbox, resubscribed = Inbox(), Inbox()
    subscription = await fanout.subscribe("g1", inbox.room, None, on_resubscribed=_noted(resubscribed))
    try:
        yield store, fanout, subscription, inbox, resubscribed
    finally:
        await subscription.close()
        await fanout.close()
        await store.destroy()
        await store.close()


async def test_the_pipeline_spreads_a_turn_over_the_masters_and_keeps_each_keys_order(
    nodes: RedisClusterNodes, namespace: str
) -> None:
    store = RedisStore(RedisTarget(url=nodes.redis_url, cluster=True), namespace)
    await store.start()
    keys = KeySpace(namespace, clustered=True)
    rooms = [_room_on(nodes, keys, port) for port in nodes.ports]
    try:
        assert store.ordered_across_keys is False
        # one turn: 3 rooms on 3 masters, 20 writes each, interleaved
        pending = [store.pipeline.submit([("INCR", f"{keys.history(room)}:n")]) for _ in range(20) for room in rooms]
        replies = await asyncio.gather(*pending)
        for index, room in enumerate(rooms):
            assert [reply[0] for reply in replies[index :: len(rooms)]] == list(range(1, 21)), room
        for room, port in zip(rooms, nodes.ports, strict=True):  # each on its own master
            assert nodes.owner(key_slot(f"{keys.history(room)}:n".encode())) == port
    finally:
        await store.destroy()
        await store.close()


async def test_a_migrated_slot_is_followed_by_the_pipeline_and_the_subscriber(
    nodes: RedisClusterNodes, namespace: str
) -> None:
    keys = KeySpace(namespace, clustered=True)
    room = _room_on(nodes, keys, nodes.ports[0])
    async with _engines(nodes, namespace) as (store, fanout, subscription, inbox, resubscribed):
        await subscription.add_room(room)
        await store.history.append(room, [("m1", b"one")], 100, 60_000)
        await fanout.publish_rooms([(room, b"before")])
        assert await inbox.wait(1) == [(room, b"before")]

        await asyncio.to_thread(nodes.move_slot, key_slot(keys.room_channel(room)), nodes.ports[1])

        # the old owner answers MOVED: the pipeline follows it; its keys moved along
        await store.history.append(room, [("m2", b"two")], 100, 60_000)
        assert [mid for mid, _ in await store.history.latest(room, 10, 60_000)] == ["m2", "m1"]
        # the old owner dropped the sharded subscription (sunsubscribe): the hub moves it, and
        # tells the gap fill before the new subscription delivers
        await resubscribed.wait(1, timeout=10)
        await asyncio.sleep(0.2)
        await fanout.publish_rooms([(room, b"after")])
        assert (await inbox.wait(2, timeout=10))[1] == (room, b"after")


async def test_a_restarted_master_fails_writes_fast_then_serves_pipeline_and_fanout_again(
    nodes: RedisClusterNodes, namespace: str
) -> None:
    keys = KeySpace(namespace, clustered=True)
    port = nodes.ports[2]
    rooms, elsewhere = _rooms_on(nodes, keys, port, 3), _room_on(nodes, keys, nodes.ports[0])
    room = rooms[0]
    async with _engines(nodes, namespace) as (store, fanout, subscription, inbox, resubscribed):
        for each in rooms:  # three slots on one master: its link subscribes them again one by one
            await subscription.add_room(each)
        await fanout.publish_rooms([(room, b"before")])
        await inbox.wait(1)

        await asyncio.to_thread(nodes.kill_node, port)
        # a write to the dead master fails (no hang), one to a live master still works
        with pytest.raises((RedisConnectionError, RedisTimeoutError)):
            await asyncio.wait_for(store.history.append(room, [("m1", b"x")], 100, 60_000), 10)
        await asyncio.wait_for(store.history.append(elsewhere, [("m1", b"x")], 100, 60_000), 10)

        await asyncio.to_thread(nodes.start_node, port)  # same nodes.conf: same slots, no data
        await asyncio.to_thread(nodes.wait_ok, RECOVERY)
        await resubscribed.wait(1, timeout=RECOVERY)
        await asyncio.wait_for(store.history.append(room, [("m2", b"y")], 100, 60_000), 10)
        await asyncio.sleep(0.2)
        await fanout.publish_rooms([(each, b"after") for each in rooms])
        received = (await inbox.wait(4, timeout=10))[1:]
        assert sorted(received, key=repr) == sorted(((each, b"after") for each in rooms), key=repr)
        assert fanout.reconnects >= 1


# --- a distributed deployment on the session's cluster --------------------------------------------
@pytest.mark.e2e
async def test_a_distributed_deployment_serves_ivs_clients_on_a_redis_cluster(
    settings: Settings, redis_cluster_target: RedisTarget, amqp_url: str
) -> None:
    clustered = settings.with_(redis_cluster=True)
    with running_cluster(
        clustered, redis_cluster_target.url, amqp_url, PARLEY_CONNECTION_RATE_PER_SECOND="1000"
    ) as cluster:
        ivschat = cluster.ivschat()
        rooms = [ivschat.create_room(name=f"c{i}", maximumMessageRatePerSecond=100) for i in range(6)]
        listed = ivschat.list_rooms(maxResults=50)["rooms"]
        assert {room["arn"] for room in rooms} <= {room["arn"] for room in listed}
        room = rooms[0]
        alice = await ChatClient.open(cluster.ws_url("gwA"), cluster.token(room["arn"], "alice"))
        bob = await ChatClient.open(
            cluster.ws_url("gwB"), cluster.token(room["arn"], "bob", ["SEND_MESSAGE", "DELETE_MESSAGE"])
        )
        await asyncio.sleep(0.2)
        sent = [await alice.send_message(f"m{i}") for i in range(20)]
        echoed = [await alice.expect(Type="MESSAGE", RequestId=rid, timeout=10) for rid in sent]
        seen = [await bob.expect(Type="MESSAGE", timeout=10) for _ in sent]
        assert [m["Content"] for m in seen] == [f"m{i}" for i in range(20)]
        assert [m["Id"] for m in seen] == [m["Id"] for m in echoed]
        deleted = ivschat.delete_message(roomIdentifier=room["arn"], id=echoed[0]["Id"])["id"]
        for client in (alice, bob):
            assert (await client.expect(Type="EVENT", timeout=10))["Id"] == deleted
        await alice.close()
        await bob.close()


# --- a cluster that requires a password -----------------------------------------------------------
async def test_a_password_protected_cluster_serves_store_and_fanout_on_every_master(namespace: str) -> None:
    """The password in PARLEY_REDIS_URL reaches every connection: redis-py's cluster client, the
    lean pipeline connection to each master and each master's subscriber link. A wrong one fails
    the start with Redis's own refusal."""
    with redis_cluster(password="s3cret-cluster") as nodes:
        async with _engines(nodes, namespace) as (store, fanout, subscription, inbox, _):
            keys = KeySpace(namespace, clustered=True)
            rooms = [_room_on(nodes, keys, port) for port in nodes.ports]
            for room in rooms:
                await subscription.add_room(room)
                await store.history.append(room, [("m1", room.encode())], 100, 60_000)
            await fanout.publish_rooms([(room, b"hi") for room in rooms])
            assert sorted(await inbox.wait(3), key=repr) == sorted(((room, b"hi") for room in rooms), key=repr)
            for room in rooms:
                assert await store.history.latest(room, 10, 60_000) == [("m1", room.encode())]
        wrong = RedisStore(RedisTarget(url=nodes.redis_url.replace("s3cret", "wrong"), cluster=True), namespace)
        with pytest.raises((RedisError, RedisClusterException), match="invalid username-password"):
            await wrong.start()
        await wrong.close()


# --- a cluster with replicas ---------------------------------------------------------------------
async def test_a_masters_failover_to_its_replica_is_followed_by_pipeline_and_fanout(namespace: str) -> None:
    """kill -9 of a master: its replica takes over after the node timeout; the pipeline's
    connection errors make it read the slot map again, the subscriber link moves its rooms to the
    new master, and both serve again with no process restarted."""
    with redis_cluster(replicas=1) as nodes:
        # the writer has a cluster client of its own: nothing else refreshes its slot map for it
        writer = RedisStore(RedisTarget(url=nodes.redis_url, cluster=True), namespace)
        await writer.start()
        async with _engines(nodes, namespace) as (store, fanout, subscription, inbox, resubscribed):
            keys = KeySpace(namespace, clustered=True)
            port = nodes.masters()[0]
            rooms = _rooms_on(nodes, keys, port, 2)
            for room in rooms:
                await subscription.add_room(room)
                await writer.history.append(room, [("m1", b"x")], 100, 60_000)
            await asyncio.to_thread(nodes.kill_node, port)
            with pytest.raises((RedisConnectionError, RedisTimeoutError)):
                await asyncio.wait_for(writer.history.append(rooms[0], [("m2", b"y")], 100, 60_000), 10)
            await asyncio.to_thread(nodes.wait_failover, port, RECOVERY)  # the replica took over
            deadline = asyncio.get_running_loop().time() + RECOVERY
            while True:  # writes fail until the promotion is seen, then serve (no restart)
                try:
                    await asyncio.wait_for(writer.history.append(rooms[0], [("m3", b"z")], 100, 60_000), 5)
                    break
                except (RedisConnectionError, RedisTimeoutError):
                    assert asyncio.get_running_loop().time() < deadline, "the pipeline never followed"
                    await asyncio.sleep(0.2)
            await resubscribed.wait(1, timeout=RECOVERY)
            await asyncio.sleep(0.2)
            await fanout.publish_rooms([(room, b"after") for room in rooms])
            got = await inbox.wait(2, timeout=10)
            assert sorted(got, key=repr) == sorted(((room, b"after") for room in rooms), key=repr)
            assert [mid for mid, _ in await store.history.latest(rooms[0], 10, 60_000)][0] == "m3"
        await writer.close()
