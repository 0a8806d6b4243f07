"""Soak: a distributed cluster under steady load for N minutes, memory sampled every minute.

Starts the same throwaway cluster as ``bench/cluster_bench.py`` (``parley api``, ``--gateways``
gateways, ``--routers`` routers on the real RabbitMQ and Redis, a namespace of its own, deleted
afterwards), runs ``parley loadtest`` for ``--minutes``, and once a minute samples the RSS of
every parley process, Redis's ``used_memory`` and the number of Redis keys under the cluster's
namespace. At the end it prints the table, the growth from ``--from-minute`` (default 2, after
warm-up) to the last sample, and the generator's sent, lost and p99; ``--json`` prints it all as
one object instead.

    .venv/bin/python bench/soak.py --clients 2000 --rooms 100 --rate 1000 --minutes 30 --shards 4
    .venv/bin/python bench/soak.py --clients 1000 --rooms 1 --rate 50 --minutes 30 --shards 4

Redis is the machine's shared server: ``used_memory`` also moves with anything else using it,
which is why the namespace's own key count is printed beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.cluster_bench import loadtest_command, loadtest_env, rss_mib, start_processes
from parley.testing.cluster import Cluster, throwaway_settings

ROOT = Path(__file__).resolve().parent.parent


def redis_memory(redis_url: str, namespace: str) -> tuple[float, int]:
    """(used_memory in MiB, keys under ``namespace``) of the Redis at ``redis_url``."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        used = int(client.info("memory")["used_memory"]) / (1 << 20)
        keys = sum(1 for _ in client.scan_iter(match=f"{namespace}:*", count=10_000))
    finally:
        client.close()
    return used, keys


def sample(cluster: Cluster, redis_url: str, minute: float) -> dict[str, float]:
    row: dict[str, float] = {"minute": round(minute, 1)}
    for name, process in cluster.processes.items():
        if name != "api":
            row[f"{name}_rss_mib"] = round(rss_mib(process.pid), 1)
    used, keys = redis_memory(redis_url, cluster.settings.namespace)
    row["redis_used_mib"] = round(used, 1)
    row["redis_ns_keys"] = keys
    return row


def growth(rows: list[dict[str, float]], from_minute: float) -> dict[str, float]:
    """Each column's change from the first sample at or after ``from_minute`` to the last one."""
    start = next((row for row in rows if row["minute"] >= from_minute), rows[0])
    end = rows[-1]
    return {k: round(end[k] - start[k], 1) for k in end if k != "minute"} | {
        "from_minute": start["minute"],
        "to_minute": end["minute"],
    }


def print_table(rows: list[dict[str, float]], grown: dict[str, float], report: dict[str, Any]) -> None:
    columns = list(rows[0])
    print(" | ".join(columns))
    for row in rows:
        print(" | ".join(str(row.get(c, "")) for c in columns))
    print(f"growth minute {grown['from_minute']} -> {grown['to_minute']}:")
    for key, value in grown.items():
        if key not in ("from_minute", "to_minute"):
            print(f"  {key}: {value:+}")
    latency = report.get("latency_ms", {})
    print(
        f"generator: sent {report.get('sent')}  deliveries {report.get('deliveries')}  "
        f"lost {report.get('lost')}  p99 {latency.get('p99')} ms  errors {report.get('errors_by_code')}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gateways", type=int, default=2)
    parser.add_argument("--routers", type=int, default=2)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--rooms", type=int, default=100)
    parser.add_argument("--rate", type=float, default=1000, help="SendMessage/s over all rooms")
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--sample-seconds", type=float, default=60)
    parser.add_argument("--from-minute", type=float, default=2, help="growth is measured from this sample on")
    parser.add_argument("--procs", type=int, default=2, help="load generator worker processes")
    parser.add_argument(
        "--connection-rate",
        type=int,
        default=10,
        help="PARLEY_CONNECTION_RATE_PER_SECOND: a raised per-connection limit (as the ingest benchmarks set) "
        "used to keep up to that many timestamps per connection",
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--redis-url", default=os.environ.get("PARLEY_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--amqp-url", default=os.environ.get("PARLEY_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"))
    args = parser.parse_args()

    settings = throwaway_settings(args.shards)
    cluster = Cluster(
        settings,
        args.redis_url,
        args.amqp_url,
        extra_env={
            "PARLEY_LOG_LEVEL": "warning",
            "PARLEY_PING_INTERVAL": "60",
            "PARLEY_CONNECTION_RATE_PER_SECOND": str(args.connection_rate),
        },
    )
    rows: list[dict[str, float]] = []
    try:
        gateways = [f"gw{i}" for i in range(args.gateways)]
        start_processes(cluster, gateways, [f"router{i}" for i in range(args.routers)])
        command = loadtest_command(
            cluster,
            gateways,
            {
                "clients": args.clients,
                "rooms": args.rooms,
                "rate": args.rate,
                "duration": args.minutes * 60,
                "procs": args.procs,
            },
        )
        env = loadtest_env(cluster)
        loadgen = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE)
        started = time.monotonic()
        next_sample = started
        while loadgen.poll() is None:
            now = time.monotonic()
            if now >= next_sample:
                rows.append(sample(cluster, args.redis_url, (now - started) / 60))
                if not args.json:
                    print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
                next_sample += args.sample_seconds
            time.sleep(1.0)
        # no sample after the load: the generator's disconnects and room deletions are not steady state
        report = json.loads(loadgen.stdout.read() if loadgen.stdout else b"{}")
    finally:
        cluster.stop()
        cluster.destroy()
    grown = growth(rows, args.from_minute)
    if args.json:
        print(json.dumps({"args": vars(args), "samples": rows, "growth": grown, "loadtest": report}, indent=1))
    else:
        print_table(rows, grown, report)


if __name__ == "__main__":
    main()
