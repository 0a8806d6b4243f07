"""One benchmark run in distributed mode: a real cluster plus ``parley loadtest`` against it.

Starts ``parley api``, ``--gateways`` gateways and ``--routers`` routers as OS processes on the
real RabbitMQ and Redis (a throwaway namespace, deleted afterwards), runs ``parley loadtest``
with the given shape, and prints one JSON object: the load test's report, the gateways'
server-side counters (sum of MessagingDeliveries_total etc. scraped from /metrics, so the
numbers do not depend on the load generator keeping up), the gateways' own send → deliver
latency, the routers' bus lag and the broker's confirm latency (``server_send_to_deliver``,
``router_action_age``, ``broker_confirm``), each process's peak RSS, and with
``--profile`` a py-spy top-functions summary of gateway 0 and router 0 during the run.

    .venv/bin/python bench/cluster_bench.py --clients 1000 --rooms 1 --rate 100 --duration 20
    .venv/bin/python bench/cluster_bench.py --clients 2000 --rooms 100 --rate 5000 --duration 20 --procs 2
    .venv/bin/python bench/cluster_bench.py --clients 15000 --rooms 150 --rate 0 --duration 10   # idle
    .venv/bin/python bench/cluster_bench.py --redis-cluster 3 ...   # on a throwaway 3-master Redis Cluster

With ``--redis-cluster N`` the cluster runs with PARLEY_REDIS_CLUSTER=true on N masters of its own
(``parley/testing/redis_cluster.py``); their CPU is reported as ``redis0`` … instead of the shared
Redis's.

The load generator is Python too and shares the machine's cores with the cluster; see
bench/README.md for how to read the numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from parley.testing.cluster import Cluster, throwaway_settings

ROOT = Path(__file__).resolve().parent.parent


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """user + system CPU seconds of a live process."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a live process plus its live children (the load generator's workers)."""
    total = cpu_seconds(pid)
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as children:
            for child in children.read().split():
                try:
                    total += cpu_seconds(int(child))
                except OSError:
                    pass
    return total


def service_pids() -> dict[str, int]:
    """Redis and RabbitMQ of this machine, if visible (their CPU counts against the same cores)."""
    pids: dict[str, int] = {}
    for name, exe in (("redis", "redis-server"), ("rabbitmq", "beam.smp")):
        try:
            found = subprocess.run(["pidof", "-s", exe], capture_output=True, text=True, timeout=5).stdout.split()
        except (OSError, subprocess.SubprocessError):
            continue
        if found:
            pids[name] = int(found[0])
    return pids


def start_processes(cluster: Cluster, gateways: list[str], routers: list[str]) -> None:
    """The api, then the named gateways and routers; returns once routers agree on shards."""
    cluster.start_api()
    for name in gateways:
        cluster.start_gateway(name)
    for name in routers:
        cluster.start_router(name)
    time.sleep(2.0)  # routers agree on shard ownership


def loadtest_command(cluster: Cluster, gateways: list[str], options: dict[str, object]) -> list[str]:
    """``parley loadtest --json`` against the cluster's api and ``gateways``, with ``--name value``
    for each of ``options``."""
    command = [sys.executable, "-m", "parley", "loadtest", "--json", "--no-progress"]
    command += ["--api", f"http://127.0.0.1:{cluster.ports['api']}"]
    for name, value in options.items():
        command += [f"--{name}", str(value)]
    for name in gateways:
        command += ["--gateway", cluster.ws_url(name)]
    return command


def loadtest_env(cluster: Cluster) -> dict[str, str]:
    """The environment ``parley loadtest`` needs: the cluster's SigV4 credentials."""
    settings = cluster.settings
    return dict(
        os.environ, PARLEY_ACCESS_KEY_ID=settings.access_key_id, PARLEY_SECRET_ACCESS_KEY=settings.secret_access_key
    )


def busiest_window(samples: list[tuple[float, dict[str, float]]], seconds: float = 5.0) -> dict[str, float]:
    """Cores used per process over the ``seconds`` window with the most CPU in total."""
    best: dict[str, float] = {}
    best_total = -1.0
    j = 0
    for t0, cpu0 in samples:
        while j < len(samples) and samples[j][0] - t0 < seconds:
            j += 1
        if j >= len(samples):
            break
        t1, cpu1 = samples[j]
        cores = {k: (cpu1[k] - cpu0[k]) / (t1 - t0) for k in cpu0 if k in cpu1}
        if sum(cores.values()) > best_total:
            best_total, best = sum(cores.values()), cores
    return {k: round(v, 2) for k, v in best.items()} | ({"total": round(best_total, 2)} if best else {})


def scrape(port: int) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if set(sample.labels) <= {"Protocol"} and not sample.name.endswith("_created"):
                out[sample.name] = out.get(sample.name, 0.0) + sample.value  # summed over protocols
            elif set(sample.labels) == {"le"}:  # a histogram's cumulative buckets
                out[f"{sample.name}|{sample.labels['le']}"] = sample.value
    return out


def latency_summary(
    metric: str, before: dict[str, dict[str, float]], after: dict[str, dict[str, float]]
) -> dict[str, Any]:
    """A latency histogram of the cluster's own, summed over processes and over the run: the
    bucket bounds p50 and p99 fall under, and the share within 50 ms."""
    prefix = f"{metric}_bucket|"
    counts: dict[float, float] = {}
    for name in after:
        for key, value in after[name].items():
            if key.startswith(prefix):
                le = float(key[len(prefix) :])
                counts[le] = counts.get(le, 0) + value - before[name].get(key, 0)
    total = counts.get(float("inf"), 0)
    if not total:
        return {}

    def bound(share: float) -> float | None:
        le = next(le for le in sorted(counts) if counts[le] >= share * total)
        return None if le == float("inf") else le * 1000

    return {
        "observed": int(total),
        "p50_at_most_ms": bound(0.5),
        "p99_at_most_ms": bound(0.99),
        "share_within_50ms": round(counts.get(0.05, 0) / total, 4),
    }


def py_spy_top(pid: int, seconds: float, out: Path, rate: int = 100) -> subprocess.Popen[bytes] | None:
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not os.path.exists(exe):
        return None
    return subprocess.Popen(
        [exe, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", str(rate)]
        + ["--format", "raw", "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def summarize_raw(path: Path, top: int = 12) -> list[str]:
    """py-spy's raw (collapsed stacks) output → the functions with the most self samples."""
    if not path.exists():
        return []
    self_samples: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        frames = stack.split(";")
        n = int(count)
        total += n
        self_samples[frames[-1]] = self_samples.get(frames[-1], 0) + n
    ranked = sorted(self_samples.items(), key=lambda kv: -kv[1])[:top]
    return [f"{100 * n / total:5.1f}% {name}" for name, n in ranked]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gateways", type=int, default=2)
    parser.add_argument("--routers", type=int, default=2)
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rooms", type=int, default=1)
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--duration", type=float, default=20)
    parser.add_argument("--senders", type=int, default=0)
    parser.add_argument("--latency-clients", type=int, default=0)
    parser.add_argument("--connect-concurrency", type=int, default=200)
    parser.add_argument("--procs", type=int, default=1, help="load generator worker processes (loadtest --procs)")
    parser.add_argument("--connection-rate", type=int, default=10, help="PARLEY_CONNECTION_RATE_PER_SECOND")
    parser.add_argument("--max-connections", type=int, default=50_000, help="PARLEY_MAX_CONNECTIONS (the quota)")
    parser.add_argument(
        "--transient-actions", action="store_true", help="PARLEY_DURABLE_ACTIONS=false (no fsync per action)"
    )
    parser.add_argument(
        "--loadgen-nice",
        type=int,
        default=0,
        help="run the generator at this niceness (e.g. 10): on a shared box the cluster gets the CPU first, "
        "as with a generator on other machines; compare the server-side latency, not the generator's",
    )
    parser.add_argument("--profile", action="store_true", help="py-spy gateway 0 and router 0 while sending")
    parser.add_argument("--profile-dir", type=Path, help="keep py-spy's raw stacks (gw0.raw, router0.raw) here")
    parser.add_argument(
        "--redis-cluster", type=int, default=0, metavar="N", help="run on a throwaway Redis Cluster of N masters"
    )
    parser.add_argument("--redis-url", default=os.environ.get("PARLEY_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--amqp-url", default=os.environ.get("PARLEY_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"))
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        run(args, stack)


def run(args: argparse.Namespace, stack: contextlib.ExitStack) -> None:
    settings = throwaway_settings(args.shards)
    redis_url, redis_nodes = args.redis_url, None
    if args.redis_cluster:
        from parley.testing.redis_cluster import redis_cluster

        redis_nodes = stack.enter_context(redis_cluster(args.redis_cluster))
        settings = settings.with_(redis_cluster=True)
        redis_url = redis_nodes.redis_url
    cluster = Cluster(
        settings,
        redis_url,
        args.amqp_url,
        extra_env={
            "PARLEY_LOG_LEVEL": "warning",
            "PARLEY_CONNECTION_RATE_PER_SECOND": str(args.connection_rate),
            "PARLEY_MAX_CONNECTIONS": str(args.max_connections),
            "PARLEY_DURABLE_ACTIONS": "false" if args.transient_actions else "true",
            "PARLEY_PING_INTERVAL": "60",
        },
    )
    gateways = [f"gw{i}" for i in range(args.gateways)]
    routers = [f"router{i}" for i in range(args.routers)]
    result: dict[str, object] = {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}}
    if args.profile_dir is not None:
        args.profile_dir.mkdir(parents=True, exist_ok=True)
    tmp = args.profile_dir or Path(tempfile.mkdtemp(prefix="parley-bench-"))
    try:
        start_processes(cluster, gateways, routers)
        command = loadtest_command(
            cluster,
            gateways,
            {
                "clients": args.clients,
                "rooms": args.rooms,
                "rate": args.rate,
                "duration": args.duration,
                "senders": args.senders,
                "latency-clients": args.latency_clients,
                "connect-concurrency": args.connect_concurrency,
                "procs": args.procs,
            },
        )
        env = loadtest_env(cluster)
        before = {name: scrape(cluster.ports[name]) for name in gateways}
        routers_before = {name: scrape(cluster.ports[name]) for name in routers}
        rss_before = {name: rss_mib(cluster.processes[name].pid) for name in gateways}
        services = service_pids()
        if redis_nodes is not None:  # the cluster's masters instead of the shared Redis
            services.pop("redis", None)
            services |= {f"redis{i}": redis_nodes.processes[port].pid for i, port in enumerate(redis_nodes.ports)}
        loadgen = subprocess.Popen(
            ["nice", "-n", str(args.loadgen_nice), *command] if args.loadgen_nice else command,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
        )
        cpu_samples: list[tuple[float, dict[str, float]]] = []

        def sample_cpu() -> None:
            cpu: dict[str, float] = {}
            with contextlib.suppress(OSError):
                for name, process in cluster.processes.items():
                    cpu[name] = cpu_seconds(process.pid)
                for name, pid in services.items():
                    cpu[name] = cpu_seconds(pid)
                cpu["loadgen"] = tree_cpu_seconds(loadgen.pid)
                cpu_samples.append((time.monotonic(), cpu))

        peak = dict.fromkeys(cluster.processes, 0.0)
        idle_rss: dict[str, float] = {}
        profilers: dict[str, subprocess.Popen[bytes] | None] = {}
        started = time.monotonic()
        while loadgen.poll() is None:
            sample_cpu()
            for name, process in cluster.processes.items():
                peak[name] = max(peak[name], rss_mib(process.pid))
            if args.profile and not profilers and time.monotonic() - started > 3:
                seconds = max(args.duration - 4, 2)
                profilers = {
                    name: py_spy_top(cluster.processes[name].pid, seconds, tmp / f"{name}.raw")
                    for name in (gateways[0], routers[0])
                }
            if args.rate == 0 and time.monotonic() - started > 3:
                try:
                    connections = sum(scrape(cluster.ports[n]).get("ConcurrentChatConnections", 0) for n in gateways)
                except OSError:  # a gateway busy with a connect storm answers /metrics late; ask again
                    connections = 0
                if connections >= args.clients * 0.99:
                    idle_rss = {n: rss_mib(cluster.processes[n].pid) for n in gateways}
            time.sleep(0.5)
        # where the machine's cores went in the busiest 5 s of the run (normally the sending phase)
        result["cores_used_busiest_5s"] = busiest_window(cpu_samples)
        report = json.loads(loadgen.stdout.read() if loadgen.stdout else b"{}")
        after = {name: scrape(cluster.ports[name]) for name in gateways}
        result["loadtest"] = report
        deliveries = sum(
            after[n].get("MessagingDeliveries_total", 0) - before[n].get("MessagingDeliveries_total", 0)
            for n in gateways
        )
        result["server_deliveries"] = deliveries
        # where latency accrues without the generator's queueing: accept at a gateway → write at
        # the gateways, and accept → the router deciding it (bus lag)
        result["server_send_to_deliver"] = latency_summary("parley_send_to_deliver_seconds", before, after)
        result["broker_confirm"] = latency_summary("parley_bus_confirm_seconds", before, after)
        routers_after = {name: scrape(cluster.ports[name]) for name in routers}
        result["router_action_age"] = latency_summary("parley_router_action_age_seconds", routers_before, routers_after)
        result["server_deliveries_per_s"] = (
            round(deliveries / report["duration_s"], 1) if report.get("duration_s") else None
        )
        published = {
            k: sum(after[n].get(k, 0) - before[n].get(k, 0) for n in gateways)
            for k in ("parley_bus_actions_per_publish_sum", "parley_bus_actions_per_publish_count")
        }
        if published["parley_bus_actions_per_publish_count"]:
            # how well the gateways' shard publishes batched: broker messages per action = 1 / this
            result["actions_per_broker_message"] = round(
                published["parley_bus_actions_per_publish_sum"] / published["parley_bus_actions_per_publish_count"], 2
            )
        result["peak_rss_mib"] = {k: round(v, 1) for k, v in peak.items()}
        if idle_rss:
            per_conn_kib = (sum(idle_rss.values()) - sum(rss_before.values())) * 1024 / max(report["connections"], 1)
            result["idle"] = {
                "gateway_rss_mib_before": {k: round(v, 1) for k, v in rss_before.items()},
                "gateway_rss_mib_connected": {k: round(v, 1) for k, v in idle_rss.items()},
                "kib_per_connection": round(per_conn_kib, 1),
                "connections_per_gib": round(1024 * 1024 / per_conn_kib) if per_conn_kib > 0 else None,
            }
        for name, profiler in profilers.items():
            if profiler is not None:
                profiler.wait(timeout=120)
                result[f"profile_{name}"] = summarize_raw(tmp / f"{name}.raw")
    finally:
        cluster.stop()
        cluster.destroy()
        if args.profile_dir is None:
            shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
