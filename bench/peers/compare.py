"""parley beside Socket.IO 4.8 + @socket.io/redis-adapter 8, on the same box, in one run.

Each system runs as it would be deployed on two cores:

* **Socket.IO**: 2 Node processes (``bench/peers/socketio/server.cjs``) plus Redis;
* **parley**: api, 2 gateways and 2 routers (``PARLEY_SHARDS=4``, durable actions, review, logs
  and history as they ship) plus RabbitMQ and Redis.

Both are driven by the same Node ``ws`` generator (``bench/peers/socketio/loadgen.mjs``, ``--procs``
worker processes): one sender per room paced at the room's rate, 100-byte bodies carrying the send
time, every received frame JSON-parsed, and clients spread over the two server processes so that
every room crosses processes. Server CPU is read from /proc for every server process (Redis and
RabbitMQ included) over the send and drain, never from the generator's view. Loads and runs are
interleaved, so both systems see the same machine state.

    bench/peers/socketio/install.sh            # once: npm ci (pinned by package-lock.json)
    .venv/bin/python -m bench.peers.compare --load both --runs 3

Prints one line per run and a table (deliveries/s, p50/p99, server CPU-s per process, deliveries
per server CPU-s, lost, and parley ÷ Socket.IO); ``--json`` prints the raw results instead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.cluster_bench import cpu_seconds, py_spy_top, rss_mib
from bench.peers.profile_split import report
from parley.loadtest.control_plane import IvsChatApi
from parley.testing.cluster import Cluster, free_port, throwaway_settings, wait_tcp

PEER_DIR = Path(__file__).resolve().parent / "socketio"
ROOT = PEER_DIR.parents[2]
BODY_BYTES = 100


@dataclass(frozen=True)
class Load:
    name: str
    rooms: int
    members: int  # clients per room
    rate: float  # messages/s per room

    @property
    def clients(self) -> int:
        return self.rooms * self.members


LOADS = {
    "big": Load("1 room x 1000, 50 msg/s", rooms=1, members=1000, rate=50),
    "small": Load("100 rooms x 20, 12 msg/s each", rooms=100, members=20, rate=12),
}


@dataclass
class ClientSpec:
    url: str
    room: int
    sender: bool
    subprotocol: str | None = None


@dataclass
class Result:
    system: str
    load: str
    run: int
    sent: int = 0
    accepted: int = 0
    delivered: int = 0
    lost: int = 0
    duplicates: int = 0
    seconds: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)  # server CPU-s per process over the window
    peak_rss_mib: dict[str, float] = field(default_factory=dict)
    p50_ms: float | None = None
    p99_ms: float | None = None

    @property
    def server_cpu_s(self) -> float:
        return sum(self.cpu.values())

    @property
    def per_cpu_s(self) -> float:
        return self.delivered / self.server_cpu_s if self.server_cpu_s else 0.0


# --- engines ---------------------------------------------------------------------------------------
def listener_pid(port: int) -> int | None:
    """The pid of the process listening on TCP ``port`` (Redis, RabbitMQ), from /proc, or None."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(fields[9])
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    return int(pid)
        except OSError:
            continue
    return None


def engine_pids(redis_url: str, amqp_url: str, *, amqp: bool) -> dict[str, int]:
    from urllib.parse import urlsplit

    pids = {"redis": listener_pid(urlsplit(redis_url).port or 6379)}
    if amqp:
        pids["rabbitmq"] = listener_pid(urlsplit(amqp_url).port or 5672)
    missing = [name for name, pid in pids.items() if pid is None]
    if missing:
        raise SystemExit(f"compare: cannot find the pid of {missing} (their CPU must be counted)")
    return {name: pid for name, pid in pids.items() if pid is not None}


# --- the systems under test ------------------------------------------------------------------------
class SocketIo:
    name = "socketio"

    def __init__(self, redis_url: str, processes: int = 2) -> None:
        self.redis_url = redis_url
        self.key = f"bench-sio-{uuid.uuid4().hex[:8]}"  # the adapter's channels, apart from anyone else's
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.ports: list[int] = []
        self.count = processes

    def start(self) -> None:
        for index in range(self.count):
            port = free_port()
            self.processes[f"sio{index}"] = subprocess.Popen(
                ["node", str(PEER_DIR / "server.cjs"), str(port), self.redis_url, self.key],
                cwd=PEER_DIR,
                stdout=subprocess.DEVNULL,
            )
            self.ports.append(port)
        for port in self.ports:
            wait_tcp(port)

    def stop(self) -> None:
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            process.wait(timeout=10)

    def clients(self, load: Load) -> list[ClientSpec]:
        return [
            ClientSpec(
                url=f"ws://127.0.0.1:{self.ports[server]}/socket.io/?EIO=4&transport=websocket&room=r{room}",
                room=room,
                sender=sender,
            )
            for room, server, sender in placement(load, len(self.ports))
        ]


class Parley:
    def __init__(self, redis_url: str, amqp_url: str, baseline: str | None = None, queue_type: str = "") -> None:
        """This tree's parley, or with ``baseline`` (a commit) that commit's, from a worktree of it."""
        self.name = ("parley" if baseline is None else f"parley@{baseline}") + (f"({queue_type})" if queue_type else "")
        self.baseline = baseline
        self.cluster = Cluster(
            throwaway_settings(shards=4),
            redis_url,
            amqp_url,
            extra_env={
                "PARLEY_LOG_LEVEL": "warning",
                "PARLEY_CONNECTION_RATE_PER_SECOND": "100000",
                "PARLEY_PING_INTERVAL": "60",
            }
            | ({"PARLEY_AMQP_QUEUE_TYPE": queue_type} if queue_type else {}),
        )
        self.gateways = ["gw0", "gw1"]

    @property
    def processes(self) -> dict[str, subprocess.Popen[bytes]]:
        return self.cluster.processes

    def start(self) -> None:
        if self.baseline is not None:
            self.cluster.root = Path(tempfile.mkdtemp(prefix="parley-baseline-"))
            subprocess.run(
                ["git", "worktree", "add", "--detach", "-q", str(self.cluster.root), self.baseline],
                cwd=ROOT,
                check=True,
            )
        self.cluster.start_api()
        for name in self.gateways:
            self.cluster.start_gateway(name)
        for name in ("router0", "router1"):
            self.cluster.start_router(name)
        time.sleep(2.0)  # the routers agree on shard ownership

    def stop(self) -> None:
        self.cluster.stop()
        self.cluster.destroy()
        if self.baseline is not None:
            subprocess.run(["git", "worktree", "remove", "--force", str(self.cluster.root)], cwd=ROOT, check=False)

    def clients(self, load: Load) -> list[ClientSpec]:
        return asyncio.run(self._clients(load))

    async def _clients(self, load: Load) -> list[ClientSpec]:
        settings = self.cluster.settings
        api = IvsChatApi(
            f"http://127.0.0.1:{self.cluster.ports['api']}",
            settings.access_key_id,
            settings.secret_access_key,
            settings.region,
        )
        limit = asyncio.Semaphore(50)
        async with api:
            arns = [
                (await api.call("CreateRoom", {"name": f"peer-{room}", "maximumMessageRatePerSecond": 100}))["arn"]
                for room in range(load.rooms)
            ]

            async def client(index: int, room: int, server: int, sender: bool) -> ClientSpec:
                async with limit:
                    token = await api.call(
                        "CreateChatToken",
                        {"roomIdentifier": arns[room], "userId": f"peer-{index}", "capabilities": ["SEND_MESSAGE"]},
                    )
                return ClientSpec(self.cluster.ws_url(self.gateways[server]), room, sender, token["token"])

            return list(
                await asyncio.gather(
                    *(client(i, *where) for i, where in enumerate(placement(load, len(self.gateways))))
                )
            )


def placement(load: Load, servers: int) -> Iterator[tuple[int, int, bool]]:
    """(room, server, sender) for each client: a room's members alternate between the servers, so
    every message crosses processes in both systems; the room's first member sends."""
    for room in range(load.rooms):
        for member in range(load.members):
            yield room, (room + member) % servers, member == 0


# --- one run ---------------------------------------------------------------------------------------
def percentile(histogram: dict[float, int], share: float) -> float | None:
    total = sum(histogram.values())
    if not total:
        return None
    seen = 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= share * total:
            return round(bucket, 1)
    return None


def run_once(system: SocketIo | Parley, engines: dict[str, int], load: Load, index: int, args: Any) -> Result:
    clients = system.clients(load)
    rates = {room: load.rate for room in range(load.rooms)}
    workdir = Path(tempfile.mkdtemp(prefix="parley-peer-"))
    workers: list[subprocess.Popen[str]] = []
    for number in range(args.procs):
        config = {
            "protocol": "socketio" if isinstance(system, SocketIo) else "ivs",
            "clients": [vars(c) for c in clients[number :: args.procs]],
            "rates": rates,
            "duration": args.duration,
            "body": BODY_BYTES,
            "connectConcurrency": 100,
            "drainTimeout": 5,  # seconds without a delivery before what is missing counts as lost
        }
        path = workdir / f"worker{number}.json"
        path.write_text(json.dumps(config))
        workers.append(
            subprocess.Popen(
                ["node", str(PEER_DIR / "loadgen.mjs"), str(path)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                bufsize=1,
            )
        )

    def read(worker: subprocess.Popen[str], event: str) -> dict[str, Any]:
        assert worker.stdout is not None
        line = worker.stdout.readline()
        if not line:
            raise RuntimeError(f"load generator exited (rc {worker.wait()}) before {event!r}")
        record: dict[str, Any] = json.loads(line)
        if record.get("event") != event:
            raise RuntimeError(f"load generator said {record!r}, expected {event!r}")
        return record

    def tell(command: dict[str, Any]) -> None:
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write(json.dumps(command) + "\n")
            worker.stdin.flush()

    result = Result(system.name, load.name, index)
    try:
        for worker in workers:
            read(worker, "connected")
        time.sleep(1.0)  # joins and subscriptions settle before the clock starts
        pids = {name: p.pid for name, p in system.processes.items()} | engines
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        tell({"go": True})
        profilers = [
            py_spy_top(
                system.processes[name].pid,
                args.duration - 1,
                args.profile_dir / f"{load_key(load)}-{tag(system)}-run{index}-{name}.raw",
                400,
            )
            for name in profiled(system, args)
        ]
        sent = [read(worker, "sent") for worker in workers]
        accepted: dict[str, int] = {}
        for record in sent:
            result.sent += sum(record["sent"].values())
            for room, count in record["accepted"].items():
                accepted[room] = accepted.get(room, 0) + count
            result.seconds = max(result.seconds, record["seconds"])
        result.accepted = sum(accepted.values())
        tell({"expect": accepted})
        finals = [read(worker, "final") for worker in workers]
        for profiler in profilers:
            if profiler is not None:
                profiler.wait()
        result.cpu = {name: round(cpu_seconds(pid) - cpu_before[name], 2) for name, pid in pids.items()}
        result.peak_rss_mib = {name: round(rss_mib(p.pid), 1) for name, p in system.processes.items()}
    finally:
        for worker in workers:
            worker.kill()
            worker.wait()
    histogram: dict[float, int] = {}
    for final in finals:
        result.delivered += final["received"]
        result.lost += final["lost"]
        result.duplicates += final["duplicates"]
        for code, count in final["errors"].items():
            result.errors[code] = result.errors.get(code, 0) + count
        for bucket, count in final["histogram"].items():
            key = int(bucket) * final["bucket_ms"]
            histogram[key] = histogram.get(key, 0) + count
    result.p50_ms = percentile(histogram, 0.50)
    result.p99_ms = percentile(histogram, 0.99)
    return result


def load_key(load: Load) -> str:
    return next(key for key, known in LOADS.items() if known == load)


def tag(system: SocketIo | Parley) -> str:
    return "tree" if isinstance(system, SocketIo) or system.baseline is None else "baseline"


def profiled(system: SocketIo | Parley, args: Any) -> list[str]:
    """The processes py-spy samples during a run (``--profile-dir``): parley's gw0 and router0."""
    if args.profile_dir is None or not isinstance(system, Parley):
        return []
    args.profile_dir.mkdir(parents=True, exist_ok=True)
    return ["gw0", "router0"]


# --- report ----------------------------------------------------------------------------------------
def line(result: Result) -> str:
    split = " ".join(f"{name} {seconds:.1f}" for name, seconds in result.cpu.items())
    return (
        f"run {result.run} {result.system:8} {result.load}: {result.delivered / result.seconds:,.0f} deliveries/s, "
        f"p50 {result.p50_ms} ms, p99 {result.p99_ms} ms, {result.per_cpu_s:,.0f} deliveries per server CPU-s "
        f"(CPU-s: {split}), lost {result.lost}, duplicates {result.duplicates}, errors {result.errors or 0}"
    )


def table(results: list[Result]) -> str:
    """One row per run and system; each run's figures divided by Socket.IO's (and by the baseline's)."""
    rows = [
        "| load | run | system | deliveries/s | p50/p99 ms | server CPU-s | deliveries per server CPU-s "
        "| ÷ Socket.IO | ÷ baseline | lost |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for load, run in sorted({(r.load, r.run) for r in results}):
        these = [r for r in results if (r.load, r.run) == (load, run)]
        peer = next((r for r in these if r.system == "socketio"), None)
        baseline = next((r for r in these if r.system.startswith("parley@")), None)
        for r in these:
            versus_peer = f"{r.per_cpu_s / peer.per_cpu_s:.2f}×" if peer and peer.per_cpu_s else ""
            versus_base = f"{r.per_cpu_s / baseline.per_cpu_s:.2f}×" if baseline and baseline.per_cpu_s else ""
            rows.append(
                f"| {load} | {run} | {r.system} | {r.delivered / r.seconds:,.0f} | {r.p50_ms}/{r.p99_ms} "
                f"| {r.server_cpu_s:.1f} | {r.per_cpu_s:,.0f} | {versus_peer} | {versus_base} | {r.lost} |"
            )
    return "\n".join(rows)


@contextmanager
def running(system: SocketIo | Parley) -> Iterator[SocketIo | Parley]:
    system.start()
    try:
        yield system
    finally:
        system.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--load", choices=[*LOADS, "both"], default="both")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=15)
    parser.add_argument("--procs", type=int, default=2, help="load generator worker processes")
    parser.add_argument("--only", choices=["socketio", "parley"], help="run one system (profiling)")
    parser.add_argument("--baseline", metavar="REV", help="also run parley at this commit (a worktree of it)")
    parser.add_argument("--queue-type", choices=["quorum", "classic"], help="this tree's PARLEY_AMQP_QUEUE_TYPE")
    parser.add_argument("--no-peer", action="store_true", help="leave Socket.IO out (tree vs --baseline only)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--profile-dir", type=Path, help="py-spy raw stacks of parley's gw0 and router0 per load")
    parser.add_argument("--redis-url", default=os.environ.get("PARLEY_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--amqp-url", default=os.environ.get("PARLEY_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"))
    args = parser.parse_args()
    if not (PEER_DIR / "node_modules" / "socket.io").is_dir():
        raise SystemExit("compare: run bench/peers/socketio/install.sh first (npm ci)")

    loads = list(LOADS.values()) if args.load == "both" else [LOADS[args.load]]
    systems: list[SocketIo | Parley] = []
    if args.only != "parley" and not args.no_peer:
        systems.append(SocketIo(args.redis_url))
    if args.only != "socketio":
        systems.append(Parley(args.redis_url, args.amqp_url, queue_type=args.queue_type))
        if args.baseline:
            systems.append(Parley(args.redis_url, args.amqp_url, args.baseline))
    results: list[Result] = []
    started = [running(system) for system in systems]
    try:
        for context in started:
            context.__enter__()
        for run in range(1, args.runs + 1):
            for load in loads:
                # alternate which system goes first, so neither always runs on a warmer (or noisier) box
                order = systems if run % 2 else systems[::-1]
                for system in order:
                    engines = engine_pids(args.redis_url, args.amqp_url, amqp=isinstance(system, Parley))
                    result = run_once(system, engines, load, run, args)
                    results.append(result)
                    print(line(result), file=sys.stderr, flush=True)
    finally:
        for context in reversed(started):
            context.__exit__(None, None, None)
    if args.json:
        print(json.dumps([vars(r) for r in results], indent=1))
    else:
        print(table(results))
    if args.profile_dir is not None:
        for raw in sorted(args.profile_dir.glob("*.raw")):
            print(report(raw))


if __name__ == "__main__":
    main()
