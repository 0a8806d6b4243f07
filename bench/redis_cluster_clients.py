"""Which general Redis client parley's cold paths should use under Redis Cluster (issue 16):
redis-py's ``redis.asyncio.RedisCluster`` beside coredis's ``RedisCluster``, measured on a
throwaway 3-master cluster (``parley.testing.redis_cluster``), in one run, interleaved.

    .venv/bin/python -m bench.redis_cluster_clients [--runs 3] [--skip-restart]

coredis is not a parley dependency: install it into the venv only (``.venv/bin/python -m pip
install coredis``); without it only redis-py (and the lean reference) is measured.

Prints, per operation and client, client CPU µs per operation (``time.process_time`` of this
process; Redis's CPU is not in it) and operations/s, as the median and min–max of ``--runs``
runs (the client order alternates per run):

  a. GET / SET of a record key, one command per round trip (5000 each)
  b. a registered Lua script (EVALSHA, 2 keys in one hash slot) (3000)
  c. a non-transactional pipeline of INCR on 30 keys spread over all slots (300 pipelines; per
     command)
  d. SCAN of every master for a pattern + UNLINK of the 2000 keys found, 100 per call (per key)
  e. sharded pub/sub: 20000 SPUBLISH of 200 bytes over 50 channels spread over the slots, read
     by one subscriber in a child process through the client's sharded pub/sub API; messages/s
     received and the subscriber's CPU µs per message. The publisher is this process, through
     the lean connection (one per master, routed by slot), as parley's hot path will publish.

``lean`` rows are the reference: parley's own RESP connection (``shared/engine/redis/resp.py``)
to the owning master, routed by ``redis.crc.key_slot`` — what the hot path uses.

Then, per client, the restart probe: the subscriber on the 50 channels, one message per channel
every 100 ms; the master owning some of them is killed and started again; prints when each
client's subscriber receives from that master's channels again (or that it does not within
``RESTART_WAIT`` s), what the other masters' channels delivered meanwhile, and whether its
receive loop raised or ended (coredis twice: read by ``async for`` and by ``get_message()``).
And the functional checks (MOVED retry of single commands and pipelines after a slot moved,
MULTI on one slot, scan_iter, cross-slot UNLINK, RESP3, NOSCRIPT after SCRIPT FLUSH).

Must not: touch port 6379 or anything outside the throwaway cluster.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import redis
import uvloop
from redis.asyncio import RedisCluster as PyCluster
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.retry import Retry

from parley.testing.redis_cluster import RedisClusterNodes, redis_cluster
from shared.engine.redis.resp import Endpoint, RespConnection

# coredis is not a dependency of parley: imported by name so `make lint` (mypy) passes without it;
# absent, the bench measures redis-py (and the lean reference) only
coredis: Any
try:
    coredis = importlib.import_module("coredis")
except ImportError:
    coredis = None

PREFIX = "bench-cc"
RECORD = "{rooms}:rec:x"  # a record key and its index in one slot, like parley's records
INDEX = "{rooms}:idx"
SCRIPT = "redis.call('SET', KEYS[1], ARGV[1]); return redis.call('ZADD', KEYS[2], 0, ARGV[2])"
PAYLOAD = b"p" * 200
CHANNELS = [f"{PREFIX}:ch:{i}" for i in range(50)]
RESTART_WAIT = 30.0  # s after the node is back before a subscriber counts as not resubscribed


class Client:
    """One client's way of doing each measured operation."""

    name = ""

    async def open(self, seed: str) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def get(self, key: str) -> Any:
        raise NotImplementedError

    async def set(self, key: str, value: bytes) -> Any:
        raise NotImplementedError

    async def script(self, keys: list[str], args: list[Any]) -> Any:
        raise NotImplementedError

    async def incr_pipeline(self, keys: list[str]) -> list[Any]:
        raise NotImplementedError

    async def scan_unlink(self, match: str, batch: int) -> int:
        raise NotImplementedError


class RedisPy(Client):
    name = "redis-py"

    async def open(self, seed: str) -> None:
        self.redis = PyCluster.from_url(seed)
        await self.redis.initialize()
        self._script = self.redis.register_script(SCRIPT)

    async def close(self) -> None:
        await self.redis.aclose()

    async def get(self, key: str) -> Any:
        return await self.redis.get(key)

    async def set(self, key: str, value: bytes) -> Any:
        return await self.redis.set(key, value)

    async def script(self, keys: list[str], args: list[Any]) -> Any:
        return await self._script(keys=keys, args=args)

    async def incr_pipeline(self, keys: list[str]) -> list[Any]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.incr(key)
            return await pipe.execute()

    async def scan_unlink(self, match: str, batch: int) -> int:
        keys = [key async for key in self.redis.scan_iter(match=match, count=1000)]
        for start in range(0, len(keys), batch):
            await self.redis.unlink(*keys[start : start + batch])  # split by slot by redis-py
        return len(keys)


class Coredis(Client):
    name = "coredis"

    async def open(self, seed: str) -> None:
        assert coredis is not None
        self._stack = contextlib.AsyncExitStack()
        # coredis 6 clients are async context managers (anyio task groups) and must be used as one
        self.redis = await self._stack.enter_async_context(coredis.RedisCluster.from_url(seed))
        self._script = self.redis.register_script(SCRIPT)

    async def close(self) -> None:
        await self._stack.aclose()

    async def get(self, key: str) -> Any:
        return await self.redis.get(key)

    async def set(self, key: str, value: bytes) -> Any:
        return await self.redis.set(key, value)

    async def script(self, keys: list[str], args: list[Any]) -> Any:
        return await self._script(keys=keys, args=args)

    async def incr_pipeline(self, keys: list[str]) -> list[Any]:
        async with self.redis.pipeline(transaction=False) as pipe:
            replies = [pipe.incr(key) for key in keys]
        return [await reply for reply in replies]

    async def scan_unlink(self, match: str, batch: int) -> int:
        keys = [key async for key in self.redis.scan_iter(match=match, count=1000)]
        for start in range(0, len(keys), batch):
            await self.redis.unlink(keys[start : start + batch])  # split by slot (non_atomic_cross_slot)
        return len(keys)


class Lean(Client):
    """The reference: one lean RESP connection per master, routed by key slot."""

    name = "lean"

    async def open(self, seed: str) -> None:
        self.slots = slot_owners(seed)
        self.connections = {port: RespConnection(Endpoint(port=port)) for port in set(self.slots)}
        for port in self.connections:
            with redis.Redis(port=port) as node:
                self._sha = node.script_load(SCRIPT)

    async def close(self) -> None:
        for connection in self.connections.values():
            connection.close()

    def _of(self, key: str) -> RespConnection:
        return self.connections[self.slots[key_slot(key.encode())]]

    async def get(self, key: str) -> Any:
        return (await self._of(key).execute([("GET", key)]))[0]

    async def set(self, key: str, value: bytes) -> Any:
        return (await self._of(key).execute([("SET", key, value)]))[0]

    async def script(self, keys: list[str], args: list[Any]) -> Any:
        return (await self._of(keys[0]).execute([("EVALSHA", self._sha, len(keys), *keys, *args)]))[0]

    async def incr_pipeline(self, keys: list[str]) -> list[Any]:
        by_port: dict[int, list[tuple[Any, ...]]] = {}
        for key in keys:
            by_port.setdefault(self.slots[key_slot(key.encode())], []).append(("INCR", key))
        replies = await asyncio.gather(*(self.connections[port].execute(cmds) for port, cmds in by_port.items()))
        return [reply for part in replies for reply in part]


def slot_owners(seed: str) -> list[int]:
    """The master port of each of the 16384 slots."""
    owners = [0] * 16384
    with redis.Redis.from_url(seed) as node:
        for start, end, master, *_ in node.execute_command("CLUSTER SLOTS"):
            owners[start : end + 1] = [int(master[1])] * (end - start + 1)
    return owners


def client_classes() -> list[type[Client]]:
    return [RedisPy, Coredis] if coredis is not None else [RedisPy]


# --- the measurements -------------------------------------------------------------------------


@dataclass
class Sample:
    cpu_us: float  # client CPU per operation
    rate: float  # operations per wall second


@dataclass
class Table:
    rows: dict[tuple[str, str], list[Sample]] = field(default_factory=dict)

    def add(self, op: str, client: str, sample: Sample) -> None:
        self.rows.setdefault((op, client), []).append(sample)
        print(f"  {op:34} {client:9} {sample.cpu_us:8.1f} µs CPU/op {sample.rate:10,.0f} op/s", flush=True)

    def print(self) -> None:
        print("\n| operation | client | CPU µs/op median (min–max) | op/s median (min–max) | runs |")
        print("|---|---|---|---|---|")
        for (op, client), samples in self.rows.items():
            cpu = [s.cpu_us for s in samples]
            rate = [s.rate for s in samples]
            print(
                f"| {op} | {client} | {statistics.median(cpu):.1f} ({min(cpu):.1f}–{max(cpu):.1f}) "
                f"| {statistics.median(rate):,.0f} ({min(rate):,.0f}–{max(rate):,.0f}) | {len(samples)} |"
            )


async def timed(ops: int, body: Callable[[], Awaitable[Any]]) -> Sample:
    cpu, wall = time.process_time(), time.perf_counter()
    await body()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return Sample(cpu / ops * 1e6, ops / wall)


async def measure_commands(client: Client, table: Table) -> None:
    n = 5000

    async def gets() -> None:
        for _ in range(n):
            await client.get(RECORD)

    async def sets() -> None:
        for _ in range(n):
            await client.set(RECORD, PAYLOAD)

    await client.set(RECORD, PAYLOAD)
    await client.get(RECORD)  # connected and warm before the clock starts
    table.add("a. SET record (1 per round trip)", client.name, await timed(n, sets))
    table.add("a. GET record (1 per round trip)", client.name, await timed(n, gets))

    async def scripts() -> None:
        for i in range(3000):
            await client.script([RECORD, INDEX], [PAYLOAD, i % 100])

    await client.script([RECORD, INDEX], [PAYLOAD, 0])  # loaded (and cached) before the clock
    table.add("b. EVALSHA, 2 keys in one slot", client.name, await timed(3000, scripts))

    keys = [f"{PREFIX}:n:{i}" for i in range(30)]
    assert len({key_slot(k.encode()) for k in keys}) == 30

    async def pipelines() -> None:
        for _ in range(300):
            await client.incr_pipeline(keys)

    await client.incr_pipeline(keys)
    table.add("c. pipeline of 30 INCR (per command)", client.name, await timed(300 * 30, pipelines))


def fill_scan_keys(nodes: RedisClusterNodes, count: int) -> None:
    """``count`` keys ``bench-cc:scan:*`` over all slots, and as many others SCAN must skip."""
    owners = slot_owners(nodes.redis_url)
    by_port: dict[int, list[str]] = {}
    for i in range(count):
        for key in (f"{PREFIX}:scan:{i}", f"{PREFIX}:other:{i}"):
            by_port.setdefault(owners[key_slot(key.encode())], []).append(key)
    for port, keys in by_port.items():
        with redis.Redis(port=port) as node:
            pipe = node.pipeline(transaction=False)
            for key in keys:
                pipe.set(key, b"x")
            pipe.execute()


async def measure_scan(client: Client, nodes: RedisClusterNodes, table: Table) -> None:
    count = 2000
    fill_scan_keys(nodes, count)
    found = 0

    async def scan() -> None:
        nonlocal found
        found = await client.scan_unlink(f"{PREFIX}:scan:*", 100)

    sample = await timed(count, scan)
    assert found == count, f"{client.name} found {found} of {count} keys"
    table.add("d. SCAN all masters + UNLINK (per key)", client.name, sample)


# --- sharded pub/sub: the subscriber runs in a child process so its CPU is its own ---------------


async def lean_publish(seed: str, channels: list[str], messages: int, batch: int = 100) -> float:
    """SPUBLISH ``messages`` round robin over ``channels`` through one lean connection per master;
    seconds taken."""
    owners = slot_owners(seed)
    connections = {port: RespConnection(Endpoint(port=port)) for port in set(owners)}
    started = time.perf_counter()
    try:
        sent = 0
        while sent < messages:
            by_port: dict[int, list[tuple[Any, ...]]] = {}
            for i in range(sent, min(sent + batch * len(connections), messages)):
                channel = channels[i % len(channels)]
                by_port.setdefault(owners[key_slot(channel.encode())], []).append(("SPUBLISH", channel, PAYLOAD))
                sent += 1
            await asyncio.gather(*(connections[port].execute(cmds) for port, cmds in by_port.items()))
    finally:
        for connection in connections.values():
            connection.close()
    return time.perf_counter() - started


Ready = Callable[[], None]
OnMessage = Callable[[str, bytes], bool]  # (channel, data) -> stop


async def redis_py_subscribe(seed: str, channels: list[str], ready: Ready, on_message: OnMessage) -> None:
    cluster = PyCluster.from_url(seed)
    await cluster.initialize()
    pubsub = cluster.pubsub()
    try:
        await pubsub.ssubscribe(*channels)
        confirmed = 0  # the SSUBSCRIBE confirmations, one per channel, before saying ready
        while confirmed < len(channels):
            message = await pubsub.get_sharded_message(timeout=1.0)
            if message is not None and message["type"] == "ssubscribe":
                confirmed += 1
        ready()
        while True:
            message = await pubsub.get_sharded_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is not None and message["type"] == "smessage":
                if on_message(message["channel"].decode(), message["data"]):
                    return
    finally:
        await pubsub.aclose()
        await cluster.aclose()


async def coredis_subscribe(seed: str, channels: list[str], ready: Ready, on_message: OnMessage) -> None:
    # not an async generator: coredis 6's task groups (anyio) must not be suspended across a yield
    assert coredis is not None
    async with (
        coredis.RedisCluster.from_url(seed) as cluster,
        cluster.sharded_pubsub(channels=channels, ignore_subscribe_messages=True) as pubsub,
    ):
        ready()  # subscribed: entering the context waited for every confirmation
        async for message in pubsub:
            # coredis 6 reports shard messages as type "message"
            if message["type"] in ("smessage", "message") and on_message(
                str(message["channel"], "utf-8"), message["data"]
            ):
                return


async def coredis_get_message(seed: str, channels: list[str], ready: Ready, on_message: OnMessage) -> None:
    """coredis read with ``get_message()`` instead of ``async for``: the iterator stops when the
    subscriber's connections are torn down, ``get_message`` waits for them to come back."""
    assert coredis is not None
    async with (
        coredis.RedisCluster.from_url(seed) as cluster,
        cluster.sharded_pubsub(channels=channels, ignore_subscribe_messages=True) as pubsub,
    ):
        ready()
        while True:
            message = await pubsub.get_message(timeout=1.0)
            if message is not None and message["type"] in ("smessage", "message"):
                if on_message(str(message["channel"], "utf-8"), message["data"]):
                    return


SUBSCRIBERS: dict[str, Callable[[str, list[str], Ready, OnMessage], Awaitable[None]]] = {
    "redis-py": redis_py_subscribe,
    "coredis": coredis_subscribe,
    "coredis-get_message": coredis_get_message,  # the restart probe only
}


async def subscriber(name: str, seed: str, count: int) -> None:
    """Child: receive ``count`` messages, then print CPU per message and the receive rate."""
    received = 0
    cpu = first = last = 0.0

    def ready() -> None:
        nonlocal cpu
        print("ready", flush=True)
        cpu = time.process_time()

    def on_message(channel: str, data: bytes) -> bool:
        nonlocal received, first, last
        received += 1
        last = time.perf_counter()
        if received == 1:
            first = last
        return received == count

    await SUBSCRIBERS[name](seed, CHANNELS, ready, on_message)
    cpu = time.process_time() - cpu
    print(json.dumps({"received": received, "cpu_us": cpu / received * 1e6, "rate": (received - 1) / (last - first)}))


async def probe(name: str, seed: str) -> None:
    """Child: print ``<time> <channel> <seq>`` for every message until killed; errors of the
    receive loop are printed and the loop opened again (which a client that re-subscribes by
    itself never needs)."""

    def on_message(channel: str, data: bytes) -> bool:
        print(f"{time.time():.3f} {channel} {data.decode()}", flush=True)
        return False

    while True:
        try:
            await SUBSCRIBERS[name](seed, CHANNELS, lambda: print("ready", flush=True), on_message)
            print(f"ended {time.time():.3f}", flush=True)  # the client's receive loop ended without an error
        except Exception as error:  # noqa: BLE001 - the probe reports whatever ends the loop
            print(f"error {time.time():.3f} {type(error).__name__}: {str(error)[:120]}", flush=True)
            await asyncio.sleep(0.5)


def spawn(*args: str) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.redis_cluster_clients", *args],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    assert line.strip() == "ready", f"subscriber said {line!r}"
    return child


async def measure_pubsub(name: str, seed: str, table: Table) -> None:
    count = 20000
    child = spawn("--subscriber", name, "--seed", seed, "--count", str(count))
    try:
        await lean_publish(seed, CHANNELS, count)
        out, _ = child.communicate(timeout=120)
    finally:
        child.kill()
    result = json.loads(out.strip().splitlines()[-1])
    assert result["received"] == count
    table.add("e. sharded pub/sub, subscriber (per msg)", name, Sample(result["cpu_us"], result["rate"]))


# --- after a restart of the owning master -------------------------------------------------------


async def restart_probe(name: str, nodes: RedisClusterNodes) -> str:
    seed = nodes.redis_url
    owners = slot_owners(seed)
    victim = owners[key_slot(CHANNELS[0].encode())]
    if victim == nodes.ports[0]:  # keep the seed up
        victim = next(owners[key_slot(c.encode())] for c in CHANNELS if owners[key_slot(c.encode())] != victim)
    on_victim = {c for c in CHANNELS if owners[key_slot(c.encode())] == victim}
    child = spawn("--probe", name, "--seed", seed)
    lines: list[str] = []
    loop = asyncio.get_running_loop()
    reader = loop.run_in_executor(None, lambda: lines.extend(iter(child.stdout.readline, "")))  # type: ignore[union-attr]
    # no retries: a publish to the killed master fails at once instead of backing off per channel
    publishers = {
        port: redis.Redis(port=port, socket_timeout=0.5, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
        for port in set(owners)
    }
    seq = 0
    killed = started = back = 0.0

    def publish() -> None:
        nonlocal seq
        seq += 1
        for channel in CHANNELS:
            with contextlib.suppress(redis.RedisError):
                publishers[owners[key_slot(channel.encode())]].execute_command("SPUBLISH", channel, str(seq))

    try:
        phase_end = time.monotonic() + 2
        while time.monotonic() < phase_end:
            publish()
            await asyncio.sleep(0.1)
        nodes.kill_node(victim)
        killed = time.time()
        phase_end = time.monotonic() + 3
        while time.monotonic() < phase_end:
            publish()
            await asyncio.sleep(0.1)
        nodes.start_node(victim)
        started = time.time()  # it answers PING
        await loop.run_in_executor(None, nodes.wait_ok)
        back = time.time()  # every node says cluster_state:ok
        phase_end = time.monotonic() + RESTART_WAIT
        while time.monotonic() < phase_end:
            publish()
            await asyncio.sleep(0.1)
            if any(_after(line, started, on_victim) for line in list(lines)[-len(CHANNELS) * 3 :]):
                # and a few more ticks to see the others still deliver
                for _ in range(10):
                    publish()
                    await asyncio.sleep(0.1)
                break
    finally:
        child.kill()
        await reader
        for publisher in publishers.values():
            publisher.close()
    return _describe(name, lines, killed, started, back, on_victim)


def _after(line: str, since: float, channels: set[str]) -> bool:
    parts = line.split()
    return len(parts) == 3 and parts[1] in channels and float(parts[0]) > since


def _describe(name: str, lines: list[str], killed: float, started: float, back: float, on_victim: set[str]) -> str:
    victim_after = [float(ln.split()[0]) for ln in lines if _after(ln, started, on_victim)]
    others = set(CHANNELS) - on_victim
    others_during = [
        float(ln.split()[0]) for ln in lines if _after(ln, killed, others) and float(ln.split()[0]) < started
    ]
    others_after = [float(ln.split()[0]) for ln in lines if _after(ln, started, others)]
    errors = [ln for ln in lines if ln.startswith("error")]
    ended = [float(ln.split()[1]) for ln in lines if ln.startswith("ended")]
    reopened = sum(1 for ln in lines if ln.strip() == "ready")  # the first "ready" was read by spawn()
    victim_text = (
        f"its channels delivered again {victim_after[0] - started:.1f} s after the node was up "
        f"(cluster ok after {back - started:.1f} s)"
        if victim_after
        else f"its channels delivered nothing within {RESTART_WAIT:.0f} s after the node was up"
    )
    return (
        f"{name}: master with {len(on_victim)} of {len(CHANNELS)} channels down for {started - killed:.1f} s; "
        f"{victim_text}; other masters' channels: {len(others_during)} messages received during the outage "
        f"(published: {len(others) * int((started - killed) * 10)}), {len(others_after)} after; receive loop "
        f"raised {len(errors)} times"
        + (f" (first: {errors[0].split(' ', 2)[2]})" if errors else "")
        + (f"; receive loop ended silently {ended[0] - killed:.1f} s after the kill" if ended else "")
        + f"; subscriber opened again by the probe {reopened} time(s)"
    )


# --- functional checks --------------------------------------------------------------------------


def move_slot(nodes: RedisClusterNodes, key: str) -> tuple[int, int]:
    """Move ``key``'s slot (with its keys) to another master, behind every client's back."""
    slot = key_slot(key.encode())
    owners = slot_owners(nodes.redis_url)
    source = owners[slot]
    target = next(p for p in nodes.ports if p != source)
    src, dst = redis.Redis(port=source), redis.Redis(port=target)
    try:
        src_id, dst_id = src.execute_command("CLUSTER MYID"), dst.execute_command("CLUSTER MYID")
        dst.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", src_id)
        src.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", dst_id)
        while keys := src.execute_command("CLUSTER GETKEYSINSLOT", slot, 100):
            src.execute_command("MIGRATE", "127.0.0.1", target, "", 0, 5000, "KEYS", *keys)
        for port in nodes.ports:
            with redis.Redis(port=port) as node:
                node.execute_command("CLUSTER SETSLOT", slot, "NODE", dst_id)
    finally:
        src.close()
        dst.close()
    return source, target


async def outcome(check: Callable[[], Awaitable[Any]]) -> str:
    try:
        return f"ok {await check()!r}"[:90]
    except Exception as error:  # noqa: BLE001 - the check reports what the client raised
        return f"raises {type(error).__name__}: {str(error)[:80]}"


async def functional_checks(client_class: type[Client], nodes: RedisClusterNodes) -> list[str]:
    client = client_class()
    await client.open(nodes.redis_url)
    facts: list[str] = []
    name = client.name
    try:
        raw: Any = client.redis  # type: ignore[attr-defined]
        keys = [f"{PREFIX}:moved:{i}" for i in range(30)]
        await client.incr_pipeline(keys)  # the slot map is cached now
        moved_single, moved_pipe = f"{PREFIX}:moved:single", keys[0]
        await client.set(moved_single, b"1")
        move_slot(nodes, moved_single)
        move_slot(nodes, moved_pipe)
        facts.append(f"{name}: GET after its slot moved: {await outcome(lambda: client.get(moved_single))}")
        facts.append(f"{name}: 30-key pipeline after a slot moved: {await outcome(lambda: client.incr_pipeline(keys))}")

        async def multi_one_slot() -> Any:
            if name == "redis-py":
                async with raw.pipeline(transaction=True) as pipe:
                    pipe.set("{t}:a", 1)
                    pipe.incr("{t}:b")
                    return await pipe.execute()
            async with raw.pipeline(transaction=True) as pipe:
                a, b = pipe.set("{t}:a", 1), pipe.incr("{t}:b")
            return [await a, await b]

        async def multi_cross_slot() -> Any:
            if name == "redis-py":
                async with raw.pipeline(transaction=True) as pipe:
                    pipe.set("{t}:a", 1)
                    pipe.incr("{u}:b")
                    return await pipe.execute()
            async with raw.pipeline(transaction=True) as pipe:
                a, b = pipe.set("{t}:a", 1), pipe.incr("{u}:b")
            return [await a, await b]

        facts.append(f"{name}: MULTI/EXEC on one slot: {await outcome(multi_one_slot)}")
        facts.append(f"{name}: MULTI/EXEC across slots: {await outcome(multi_cross_slot)}")

        async def unlink_cross() -> Any:
            return await (raw.unlink(*keys) if name == "redis-py" else raw.unlink(keys))

        facts.append(f"{name}: UNLINK of 30 keys over 30 slots: {await outcome(unlink_cross)}")

        async def scan_all() -> Any:
            fill_scan_keys(nodes, 300)
            return len([k async for k in raw.scan_iter(match=f"{PREFIX}:scan:*", count=100)])

        facts.append(f"{name}: scan_iter over all masters (300 keys): {await outcome(scan_all)}")
        await client.scan_unlink(f"{PREFIX}:*", 500)

        async def resp3() -> Any:
            if name == "redis-py":
                r3 = PyCluster.from_url(nodes.redis_url, protocol=3)
                try:
                    await r3.hset(f"{PREFIX}:h", mapping={"a": 1})
                    return (await r3.hgetall(f"{PREFIX}:h"), r3.get_connection_kwargs().get("protocol"))
                finally:
                    await r3.aclose()
            await raw.hset(f"{PREFIX}:h", {"a": 1})
            return (await raw.hgetall(f"{PREFIX}:h"), "RESP3 only since coredis 6.0")

        facts.append(f"{name}: RESP3 (hgetall, protocol): {await outcome(resp3)}")

        async def noscript() -> Any:
            for port in nodes.ports:  # as after a master's restart: its script cache is empty
                with redis.Redis(port=port) as node:
                    node.script_flush()
            return await client.script([RECORD, INDEX], [PAYLOAD, 1])

        facts.append(f"{name}: registered script after SCRIPT FLUSH (NOSCRIPT): {await outcome(noscript)}")
    finally:
        await client.close()
    return facts


# --- the run ------------------------------------------------------------------------------------


async def main(runs: int, restart: bool) -> None:
    classes = client_classes()
    table = Table()
    with redis_cluster() as nodes:
        seed = nodes.redis_url
        owners = slot_owners(seed)
        print(
            f"cluster of {len(nodes.ports)} masters {nodes.ports}; channels per master:",
            {p: sum(1 for c in CHANNELS if owners[key_slot(c.encode())] == p) for p in nodes.ports},
        )
        for run in range(runs):
            order = classes if run % 2 == 0 else classes[::-1]
            print(f"run {run + 1}: {' → '.join(c.name for c in order)} (lean reference last)", flush=True)
            for client_class in [*order, Lean]:
                client = client_class()
                await client.open(seed)
                try:
                    await measure_commands(client, table)
                    if client_class is not Lean:
                        await measure_scan(client, nodes, table)
                finally:
                    await client.close()
            for client_class in order:
                await measure_pubsub(client_class.name, seed, table)
        table.print()
        print("\nfunctional checks:")
        for client_class in classes:
            for fact in await functional_checks(client_class, nodes):
                print(" ", fact)
        if restart:
            print("\nrestart of the master owning some channels (one message per channel every 100 ms):")
            probes = [c.name for c in classes] + (["coredis-get_message"] if coredis is not None else [])
            for name in probes:
                print(" ", await restart_probe(name, nodes), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-restart", action="store_true", help="leave out the restart probe")
    parser.add_argument("--subscriber", help=argparse.SUPPRESS)  # child: one subscriber's measurement
    parser.add_argument("--probe", help=argparse.SUPPRESS)  # child: the restart probe's subscriber
    parser.add_argument("--seed", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=20000, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.subscriber:
        uvloop.run(subscriber(args.subscriber, args.seed, args.count))
    elif args.probe:
        uvloop.run(probe(args.probe, args.seed))
    else:
        uvloop.run(main(args.runs, not args.skip_restart))
