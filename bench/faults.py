"""The fault suite: each scenario runs steady traffic through a throwaway distributed cluster
(api, 2 gateways, 2 routers as processes on loopback), causes one fault mid-stream and prints
what it cost. Engine faults use engines of their own: a redis-server, a RabbitMQ node, a Redis
Sentinel set or a 3-node RabbitMQ cluster (never the shared 6379/5672); process kills use the
shared engines under a namespace of their own.

    .venv/bin/python -m bench.faults [--scenario NAME ...] [--rate 8] [--json] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import tempfile
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from redis.crc import key_slot

from logger_sink import layout
from parley.testing.cluster import BENCH_ENV, Cluster, serving, throwaway_settings
from parley.testing.engines import OwnRabbit, OwnRedis
from parley.testing.faultload import FaultLoad, Tally
from parley.testing.rabbit_cluster import RabbitCluster
from parley.testing.redis_cluster import RedisClusterNodes, redis_cluster
from parley.testing.redis_sentinel import SentinelSet, sentinel_set
from shared.config import Settings
from shared.engine.actions import shard_of
from shared.engine.redis.keys import KeySpace

SHARED_REDIS = Settings().redis_url
SHARED_AMQP = Settings().amqp_url
BEFORE, AFTER = 3.0, 5.0


@dataclass
class Env:
    cluster: Cluster
    redis: OwnRedis | None
    rabbit: OwnRabbit | None
    log_dir: Path
    room_id: str = ""
    sentinel: SentinelSet | None = None
    rabbits: RabbitCluster | None = None
    redis_nodes: RedisClusterNodes | None = None
    notes: list[str] = field(default_factory=list)  # what the fault itself measured, for the row's note


Fault = Callable[[Env], Awaitable[None]]


@dataclass
class Scenario:
    name: str
    fault: Fault | None
    why: str  # what a loss, if any, comes from
    own_redis: bool = False
    own_rabbit: bool = False
    own_sentinel: bool = False
    own_redis_cluster: bool = False
    cluster_replicas: int = 0  # replicas per master of the own Redis Cluster
    own_rabbit_cluster: bool = False
    connect_elsewhere: bool = False  # gateways and routers start at node 2 (the api, at node 1, declares)
    history_max: int = 0  # the room's historyMaxMessages (0: the default 50); set, history is checked
    reviewer: bool = False
    logger: bool = False
    not_yet: str = ""


async def _kill_then_start(env: Env, name: str, start: Callable[[], None]) -> None:
    env.cluster.kill(name)
    await asyncio.sleep(0.5)
    start()


async def kill_gateway(env: Env) -> None:
    env.cluster.kill("gwA")  # its clients reconnect to gwB


def shard_owner(cluster: Cluster, room_id: str) -> str:
    """Which router process holds ``room_id``'s shard now, from the routers' own log lines: the one
    whose last line about the shard is "shard acquired" (the later one, should both say so)."""
    shard = shard_of(room_id, cluster.settings.shards)
    holders: list[tuple[str, str]] = []  # (acquired at, router)
    for name in ("router1", "router2"):
        last: dict[str, Any] = {}
        path = cluster.log_dir / f"parley-{cluster.settings.namespace}-{name}.log"
        for line in path.read_text().splitlines():
            event = json.loads(line) if '"shard"' in line else {}
            if event.get("shard") == shard and event.get("event") in ("shard acquired", "shard released"):
                last = event
        if last.get("event") == "shard acquired":
            holders.append((last["timestamp"], name))
    return max(holders)[1] if holders else "router1"


async def kill_router(env: Env) -> None:
    owner = shard_owner(env.cluster, env.room_id)
    env.cluster.kill(owner)  # the other takes the shard when the heartbeat lapses


async def kill_reviewer(env: Env) -> None:
    await _kill_then_start(env, "reviewer1", lambda: env.cluster.start("reviewer2", "reviewer"))


async def kill_logger(env: Env) -> None:
    await _kill_then_start(env, "logger1", lambda: env.cluster.start("logger2", "logger"))


async def restart_rabbit(env: Env) -> None:
    assert env.rabbit is not None
    await asyncio.to_thread(env.rabbit.restart_app, 1.0)


async def stall_rabbit(env: Env) -> None:
    assert env.rabbit is not None
    await asyncio.to_thread(env.rabbit.stall, 3.0)


async def kill_pubsub(env: Env) -> None:
    assert env.redis is not None
    await asyncio.to_thread(env.redis.kill_pubsub)


async def pause_redis(env: Env) -> None:
    assert env.redis is not None
    await asyncio.to_thread(env.redis.pause, 3000)
    await asyncio.sleep(3.0)  # the fault ends when the pause does


async def fail_over_sentinel(env: Env) -> None:
    """kill -9 the master; the fault ends when the sentinel names the promoted replica."""
    assert env.sentinel is not None
    lag = await asyncio.to_thread(env.sentinel.replication_lag)
    began = time.monotonic()
    old = await asyncio.to_thread(env.sentinel.kill_master)
    await asyncio.to_thread(env.sentinel.wait_failover, old)
    env.notes.append(f"replica {lag} bytes behind at the kill, promoted {time.monotonic() - began:.1f} s after it")


async def _lose_rabbit_node(env: Env, index: int) -> None:
    """kill -9 node ``index`` of the 3; the fault ends when every quorum queue has a leader on a
    surviving node (as ``rabbitmqctl list_queues`` shows it, ~1 s resolution)."""
    assert env.rabbits is not None
    rabbits, node = env.rabbits, env.rabbits.nodes[index]
    connections = await asyncio.to_thread(rabbits.connections)
    leaders = await asyncio.to_thread(rabbits.quorum_leaders)
    began = time.monotonic()
    await asyncio.to_thread(rabbits.kill, node)
    await asyncio.to_thread(rabbits.wait_leaders, node.node)
    env.notes.append(
        f"the killed node had {connections[node.node]} of {sum(connections.values())} client connections and led "
        f"{leaders[node.node]} of {sum(leaders.values())} quorum queues; new leaders seen "
        f"{time.monotonic() - began:.1f} s after the kill"
    )


async def lose_connected_rabbit_node(env: Env) -> None:
    """The first node of PARLEY_AMQP_URL: every process is connected there and it leads every
    quorum queue (the api's connection declared them)."""
    await _lose_rabbit_node(env, 0)


async def lose_leader_rabbit_node(env: Env) -> None:
    """The node that leads every quorum queue (the api's, which declared them first), while the
    gateways and routers are connected to another (their PARLEY_AMQP_URL starts at node 2)."""
    await _lose_rabbit_node(env, 0)


def _room_master(env: Env) -> tuple[RedisClusterNodes, int, int]:
    """The own Redis Cluster, the room's slot and the port of the master that serves it."""
    assert env.redis_nodes is not None
    slot = key_slot(KeySpace(env.cluster.settings.namespace, clustered=True).room_channel(env.room_id))
    return env.redis_nodes, slot, env.redis_nodes.owner(slot)


async def restart_cluster_node(env: Env) -> None:
    """kill -9 the master that owns the room's slot, start it again 1 s later (same nodes.conf,
    its append-only file fsynced on every write, no replica); the fault ends when the cluster
    reports ok."""
    nodes, slot, port = _room_master(env)
    began = time.monotonic()
    await asyncio.to_thread(nodes.kill_node, port)
    await asyncio.sleep(1.0)
    await asyncio.to_thread(nodes.start_node, port)
    await asyncio.to_thread(nodes.wait_ok, 30.0)
    env.notes.append(
        f"the room's master (slot {slot}, 1 of {len(nodes.ports)}) down {time.monotonic() - began:.1f} s "
        "until the cluster was ok again"
    )


async def fail_over_cluster_master(env: Env) -> None:
    """kill -9 the master that owns the room's slot (it has a replica, no persistence); the fault
    ends when the replica serves the slot and the cluster is ok."""
    nodes, slot, port = _room_master(env)
    began = time.monotonic()
    await asyncio.to_thread(nodes.kill_node, port)
    await asyncio.to_thread(nodes.wait_failover, port, 30.0)
    env.notes.append(
        f"the room's master (slot {slot}) replaced by its replica {time.monotonic() - began:.1f} s after the kill"
    )


SCENARIOS = [
    Scenario("gateway kill -9", kill_gateway, "frames in flight on the dead gateway's sockets"),
    Scenario("router kill -9", kill_router, "unacked actions are redelivered to the next owner"),
    Scenario("reviewer kill -9", kill_reviewer, "reviews in flight are redelivered", reviewer=True),
    Scenario("logger kill -9", kill_logger, "written-but-unacked batches come back", logger=True),
    Scenario("rabbitmq restart", restart_rabbit, "sends while the broker is down", own_rabbit=True),
    Scenario("rabbitmq stall 3 s", stall_rabbit, "SIGSTOP of beam.smp for 3 s", own_rabbit=True),
    Scenario("redis pub/sub kill", kill_pubsub, "fan-out published while unsubscribed", own_redis=True),
    Scenario("redis pause 3 s", pause_redis, "CLIENT PAUSE 3000 ALL", own_redis=True),
    Scenario(
        "rabbitmq node loss (3-node)",
        lose_connected_rabbit_node,
        "publishes nacked on a channel reopened before the quorum leaders' election",
        own_rabbit_cluster=True,
    ),
    Scenario(
        "rabbitmq quorum leader node loss (3-node)",
        lose_leader_rabbit_node,
        "sends while the quorum queues elect new leaders",
        own_rabbit_cluster=True,
        connect_elsewhere=True,
    ),
    Scenario(
        "redis sentinel failover",
        fail_over_sentinel,
        "writes the old master acknowledged and had not replicated (async replication)",
        own_sentinel=True,
        history_max=1000,  # every message sent stays in history, so a write lost in the failover shows
    ),
    Scenario(
        "redis cluster node restart",
        restart_cluster_node,
        "writes to the room's master while it was down (no replica takes over)",
        own_redis_cluster=True,
        history_max=1000,  # every message stays in history: a write lost in the restart would show
    ),
    Scenario(
        "redis cluster master failover",
        fail_over_cluster_master,
        "writes the old master acknowledged and had not replicated (async replication)",
        own_redis_cluster=True,
        cluster_replicas=1,
        history_max=1000,
    ),
]


@asynccontextmanager
async def review_handler() -> AsyncIterator[str]:
    """ALLOW every message unchanged after 30 ms (so a killed reviewer has reviews in flight)."""

    async def review(request: web.Request) -> web.Response:
        body = await request.json()
        await asyncio.sleep(0.03)
        return web.json_response({"ReviewResult": "ALLOW", "Content": body["Content"]})

    app = web.Application()
    app.router.add_post("/review", review)
    async with serving(app) as url:
        yield f"{url}/review"


@asynccontextmanager
async def environment(scenario: Scenario, tmp: Path) -> AsyncIterator[tuple[Env, dict[str, float]]]:
    started: dict[str, float] = {}
    redis = OwnRedis() if scenario.own_redis else None
    rabbit = OwnRabbit() if scenario.own_rabbit else None
    rabbits = RabbitCluster() if scenario.own_rabbit_cluster else None
    cluster: Cluster | None = None
    engines = contextlib.ExitStack()
    sentinel: SentinelSet | None = None
    redis_nodes: RedisClusterNodes | None = None
    try:
        if redis is not None:
            started["redis"] = await asyncio.to_thread(redis.start)
        if rabbit is not None:
            started["rabbitmq"] = await asyncio.to_thread(rabbit.start)
        if rabbits is not None:
            started["3 rabbitmq nodes"] = await asyncio.to_thread(rabbits.start)
        redis_env: dict[str, str] = {}
        if scenario.own_sentinel:
            began = time.monotonic()
            sentinel = await asyncio.to_thread(engines.enter_context, sentinel_set())
            started["sentinel set"] = time.monotonic() - began
            redis_env = {"PARLEY_REDIS_SENTINELS": sentinel.sentinels, "PARLEY_REDIS_SENTINEL_MASTER": sentinel.name}
        settings = throwaway_settings(shards=8).with_(review_allowed_networks="127.0.0.0/8")
        if scenario.own_redis_cluster:
            began = time.monotonic()
            own = redis_cluster(replicas=scenario.cluster_replicas, persistent=not scenario.cluster_replicas)
            redis_nodes = await asyncio.to_thread(engines.enter_context, own)
            replicas = f", {scenario.cluster_replicas} replica each" if scenario.cluster_replicas else ""
            started[f"3-master redis cluster{replicas}"] = time.monotonic() - began
            settings = settings.with_(redis_cluster=True)
        extra = (
            BENCH_ENV
            | {
                "PARLEY_LOG_LEVEL": "info",  # the routers' "shard acquired" lines say who owns the room
                "PARLEY_LOG_DIR": str(tmp / "logs"),
                "PARLEY_LOG_BATCH_SECONDS": "0.2",
            }
            | redis_env
        )
        redis_url = (
            redis.url
            if redis
            else sentinel.redis_url
            if sentinel
            else redis_nodes.redis_url
            if redis_nodes
            else SHARED_REDIS
        )
        cluster = Cluster(
            settings,
            redis_url,
            rabbit.url if rabbit else rabbits.url if rabbits else SHARED_AMQP,
            extra_env=extra,
            log_dir=tmp,
        )
        await asyncio.to_thread(_start_cluster, cluster, scenario)
        yield (
            Env(cluster, redis, rabbit, tmp / "logs", sentinel=sentinel, rabbits=rabbits, redis_nodes=redis_nodes),
            started,
        )
    finally:
        if cluster is not None:
            await asyncio.to_thread(cluster.stop)
            try:
                # a 3-node cluster with a node killed cannot delete its quorum queues (30 s timeout);
                # it is thrown away with them: only the keys on the shared Redis need deleting
                await asyncio.to_thread(cluster.destroy, rabbits is None)
            except Exception:
                pass
        if rabbit is not None:
            await asyncio.to_thread(rabbit.stop)
        if rabbits is not None:
            for node in rabbits.nodes:  # their logs, kept with the cluster's (not the mnesia state)
                with contextlib.suppress(OSError):  # a missing log must not leave the nodes running
                    _copy_logs(node.tmp, tmp / node.node, "mnesia")
            await asyncio.to_thread(rabbits.stop)
        if redis is not None:
            await asyncio.to_thread(redis.stop)
        if sentinel is not None:  # its redis-servers' and sentinel's logs, kept with the cluster's
            with contextlib.suppress(OSError):
                _copy_logs(sentinel.dir, tmp / "sentinel", "*.rdb")
        await asyncio.to_thread(engines.close)


def _copy_logs(source: Path, target: Path, leave_out: str) -> None:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(leave_out), dirs_exist_ok=True)


def _start_cluster(cluster: Cluster, scenario: Scenario) -> None:
    cluster.start_api()  # it declares the namespace's queues first: their leaders are on its node
    if scenario.connect_elsewhere:
        nodes = cluster.amqp_url.split(",")
        cluster.extra_env["PARLEY_AMQP_URL"] = ",".join(nodes[1:] + nodes[:1])  # for the processes after it
    cluster.start_gateway("gwA")
    cluster.start_gateway("gwB")
    cluster.start_router("router1")
    cluster.start_router("router2")
    if scenario.reviewer:
        cluster.start("reviewer1", "reviewer")
    if scenario.logger:
        cluster.start("logger1", "logger")
    time.sleep(2.5)  # routers' heartbeats meet and the shards settle before traffic starts


def _logged_ids(env: Env, room: dict[str, Any]) -> set[str]:
    path = layout.cloudwatch_path(env.log_dir, "faults", room["id"])
    lines = path.read_bytes().splitlines() if path.exists() else []
    return {json.loads(line)["payload"]["Id"] for line in lines}


@contextlib.contextmanager
def scenario_dir(keep: bool) -> Iterator[str]:
    """The scenario's temporary directory (processes' logs); left in place with ``keep``."""
    if not keep:
        with tempfile.TemporaryDirectory(prefix="parley-faults-") as tmp:
            yield tmp
        return
    tmp = tempfile.mkdtemp(prefix="parley-faults-")
    print(f"# logs kept in {tmp}", flush=True)
    yield tmp


async def run_scenario(scenario: Scenario, rate: float, keep: bool = False) -> dict[str, Any]:
    row: dict[str, Any] = {"scenario": scenario.name}
    if scenario.fault is None:
        return row | {"error": f"not yet ({scenario.not_yet})"}
    with scenario_dir(keep) as tmp:
        async with environment(scenario, Path(tmp)) as (env, started):
            row["engine_start_s"] = {k: round(v, 1) for k, v in started.items()}
            ivschat = env.cluster.ivschat()
            room_args: dict[str, Any] = {"name": "faults", "maximumMessageRatePerSecond": 100}
            if scenario.reviewer:
                handler = review_handler()
                room_args["messageReviewHandler"] = {"uri": await handler.__aenter__(), "fallbackResult": "ALLOW"}
            if scenario.logger:
                config = ivschat.create_logging_configuration(
                    destinationConfiguration={"cloudWatchLogs": {"logGroupName": "faults"}}
                )
                room_args["loggingConfigurationIdentifiers"] = [config["arn"]]
            room = ivschat.create_room(**room_args)
            env.room_id = room["id"]
            if scenario.history_max:
                env.cluster.parleychat().update_room_extensions(
                    identifier=room["arn"], historyMaxMessages=scenario.history_max
                )
            try:
                load = FaultLoad(env.cluster, room["arn"], rate)
                await load.start()
                await asyncio.sleep(BEFORE)
                await scenario.fault(env)
                load.mark_fault_end()
                await asyncio.sleep(AFTER)
                tally = await load.finish()
                row |= _row(tally)
                if not scenario.history_max:  # the default 50 trims what the run sent: not a loss
                    row["not_in_history"], row["not_in_history_seqs"] = None, ""
                if scenario.logger:
                    deadline = time.monotonic() + 15
                    while time.monotonic() < deadline:
                        missing = set(tally.accepted_ids) - _logged_ids(env, room)
                        if not missing:
                            break
                        await asyncio.sleep(0.5)
                    row["log_missing"] = len(missing)
            finally:
                if scenario.reviewer:
                    await handler.__aexit__(None, None, None)
    lost = sum(row["missed_after"].values()) + row.get("log_missing", 0) + (row["not_in_history"] or 0)
    refused = sum(n for code, n in row["errors"].items() if code != "no connection")
    row["why"] = scenario.why if lost or row["duplicates"] or refused else ""
    row["fault"] = "; ".join(env.notes)
    return row


def _row(tally: Tally) -> dict[str, Any]:
    return {
        "sent": tally.sent,
        "accepted": len(tally.accepted),
        "errors": dict(tally.errors),
        "missed_live": tally.missed_live,
        "missed_after": tally.missed_after,
        "duplicates": tally.duplicates,
        "recovery_send_s": None if tally.send_recovery is None else round(tally.send_recovery, 2),
        "recovery_delivery_s": None if tally.delivery_recovery is None else round(tally.delivery_recovery, 2),
        "reconnects": tally.reconnects,
        "not_in_history": len(tally.not_in_history),
        "not_in_history_seqs": _ranges(tally.not_in_history),
        "missed_seqs": {name: sorted(seqs) for name, seqs in tally.missed_seqs.items() if seqs},
    }


def _ranges(seqs: set[int]) -> str:
    """``{1, 2, 3, 7}`` as ``"1-3,7"`` (which sequence numbers, short enough for a JSON row)."""
    spans: list[list[int]] = []
    for seq in sorted(seqs):
        if spans and seq == spans[-1][1] + 1:
            spans[-1][1] = seq
        else:
            spans.append([seq, seq])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def render(rows: list[dict[str, Any]]) -> str:
    head = (
        "| scenario | sent | accepted | errors | missed live A/B | missed after catch-up A/B | dups "
        "| recovery send / delivery (s) | note |"
    )
    lines = [head, "|" + "---|" * 9]
    total = {"sent": 0, "accepted": 0, "lost": 0, "dups": 0}
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['scenario']} | | | | | | | | {row['error']} |")
            continue
        errors = ", ".join(f"{k}: {v}" for k, v in sorted(row["errors"].items())) or "0"
        live = "/".join(str(v) for v in row["missed_live"].values())
        after = "/".join(str(v) for v in row["missed_after"].values())
        note = "; ".join(part for part in (row.get("fault", ""), row["why"]) if part)
        if row["not_in_history"] is not None:
            note = f"{row['not_in_history']} accepted missing from the room's history; {note}".rstrip("; ")
        if "log_missing" in row:
            note = f"{row['log_missing']} accepted missing from the log files; {note}".rstrip("; ")
        if row["engine_start_s"]:
            started = ", ".join(f"{k} up in {v} s" for k, v in row["engine_start_s"].items())
            note = f"{note}; {started}".lstrip("; ")
        recovery = f"{_seconds(row['recovery_send_s'])} / {_seconds(row['recovery_delivery_s'])}"
        lines.append(
            f"| {row['scenario']} | {row['sent']} | {row['accepted']} | {errors} | {live} | {after} "
            f"| {row['duplicates']} | {recovery} | {note} |"
        )
        total["sent"] += row["sent"]
        total["accepted"] += row["accepted"]
        total["lost"] += sum(row["missed_after"].values())
        total["dups"] += row["duplicates"]
    lines.append(f"| **total** | {total['sent']} | {total['accepted']} | | | {total['lost']} | {total['dups']} | | |")
    return "\n".join(lines)


async def main_async(names: list[str], rate: float, as_json: bool, keep: bool = False) -> None:
    chosen = [s for s in SCENARIOS if not names or s.name in names]
    rows = []
    for scenario in chosen:
        began = time.monotonic()
        try:
            row = await asyncio.wait_for(run_scenario(scenario, rate, keep), 120)
        except Exception as error:  # one failing scenario must not stop the suite
            traceback.print_exc()
            row = {"scenario": scenario.name, "error": f"failed: {type(error).__name__}: {error}"}
        row["took_s"] = round(time.monotonic() - began, 1)
        print(f"# {scenario.name}: {row.get('error') or 'done'} in {row['took_s']} s", flush=True)
        rows.append(row)
    print(json.dumps(rows, indent=2) if as_json else render(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", action="append", default=[], help="run only these (repeatable)")
    parser.add_argument("--rate", type=float, default=8.0, help="messages per second")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep each scenario's logs (the path is printed)")
    args = parser.parse_args()
    asyncio.run(main_async(args.scenario, args.rate, args.json, args.keep))


if __name__ == "__main__":
    main()
