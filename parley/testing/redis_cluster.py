"""A throwaway Redis Cluster on loopback for tests, benches and fault runs: ``masters`` masters
(3 by default) and no replicas, each a ``redis-server --cluster-enabled yes`` on a free port in a
temporary directory, joined by ``redis-cli --cluster create`` and torn down after.

No persistence unless asked (``persistent``); ``cluster-node-timeout`` is short so a restarted
node is taken back quickly. Never touches port 6379.

Must not: know parley's keys or settings beyond the environment values it hands out.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis

from parley.testing.redis_servers import kill_all, wait_until

NODE_TIMEOUT_MS = 2000


@dataclass
class RedisClusterNodes:
    dir: Path
    ports: list[int]
    processes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)  # by port
    persistent: bool = False  # an append-only file fsynced on every write: a restart keeps the keys
    password: str | None = field(default=None, repr=False)  # every node's requirepass (and masterauth)

    def client(self, port: int, timeout: float = 2.0, decode_responses: bool = False) -> redis.Redis:
        """A short-lived client of the node on ``port``."""
        return redis.Redis(port=port, password=self.password, socket_timeout=timeout, decode_responses=decode_responses)

    @property
    def redis_url(self) -> str:
        """PARLEY_REDIS_URL with PARLEY_REDIS_CLUSTER=true: a seed node."""
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.ports[0]}/0"

    def start_node(self, port: int) -> None:
        """Start (or restart, with its nodes.conf) the node on ``port``."""
        self.processes[port] = _start(self.dir, port, self.persistent, self.password)
        wait_until(f"redis node {port}", lambda: bool(self.client(port, 1).ping()))

    def kill_node(self, port: int) -> None:
        """kill -9 the node on ``port`` (its slots are unserved until it is started again)."""
        process = self.processes.pop(port)
        process.send_signal(signal.SIGKILL)
        process.wait(5)

    def node_id(self, port: int) -> str:
        with self.client(port, decode_responses=True) as node:
            return str(node.execute_command("CLUSTER", "MYID"))

    def owner(self, slot: int) -> int:
        """The port of the master serving ``slot``."""
        with self.client(next(iter(self.processes))) as node:  # a node that is up
            for start, end, master, *_ in node.execute_command("CLUSTER", "SLOTS"):
                if start <= slot <= end:
                    return int(master[1])
        raise LookupError(f"slot {slot} is not served")

    def move_slot(self, slot: int, to_port: int) -> None:
        """Migrate ``slot`` and its keys to the master on ``to_port`` (live resharding, as
        ``redis-cli --cluster reshard`` does it for one slot)."""
        from_port = self.owner(slot)
        if from_port == to_port:
            return
        source, target = self.node_id(from_port), self.node_id(to_port)
        with self.client(from_port, 5) as old, self.client(to_port, 5) as new:
            new.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source)
            old.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target)
            while keys := old.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
                auth = ("AUTH", self.password) if self.password else ()
                old.execute_command("MIGRATE", "127.0.0.1", to_port, "", 0, 5000, *auth, "KEYS", *keys)
            for port in self.ports:
                with self.client(port, 5) as node:
                    node.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target)

    def masters(self) -> list[int]:
        """The ports of the nodes that serve slots now."""
        with self.client(next(iter(self.processes))) as node:
            return sorted({int(master[1]) for _, _, master, *_ in node.execute_command("CLUSTER", "SLOTS")})

    def wait_replicas_synced(self, timeout: float = 20.0) -> None:
        """Until every replica's link to its master is up (a replica that never synced cannot
        take over)."""

        def synced() -> bool:
            for port in self.processes:
                with self.client(port, 1) as node:
                    info = node.info("replication")
                    if info["role"] == "slave" and info.get("master_link_status") != "up":
                        return False
            return True

        wait_until("replicas synced", synced, timeout)

    def wait_failover(self, port: int, timeout: float = 20.0) -> None:
        """Until a replica serves the slots of the (killed) master on ``port`` and the cluster is ok."""
        wait_until(f"failover of {port}", lambda: port not in self.masters(), timeout)
        self.wait_ok(timeout)

    def wait_ok(self, timeout: float = 20.0) -> None:
        """Until every node reports ``cluster_state:ok``."""
        wait_until("cluster state ok", lambda: all(self._state_ok(port) for port in self.processes), timeout)

    def _state_ok(self, port: int) -> bool:
        with self.client(port, 1) as server:
            return bool(server.cluster("info").get("cluster_state") == "ok")

    def close(self) -> None:
        kill_all(self.processes, self.dir)


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too; Redis refuses ports over 55535."""
    for _ in range(200):
        port = random.randint(20000, 45000)  # below the usual ephemeral range (32768-) as far as possible
        if _port_is_free(port) and _port_is_free(port + 10000):
            return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


def _start(directory: Path, port: int, persistent: bool, password: str | None) -> subprocess.Popen[bytes]:
    auth = ["--requirepass", password, "--masterauth", password] if password else []
    log = open(directory / f"{port}.log", "ab")  # noqa: SIM115 - kept open by the child
    try:
        return subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(directory),
                "--save",
                "",
                "--appendonly",
                "yes" if persistent else "no",
                "--appendfsync",
                "always",
                "--appendfilename",
                f"appendonly-{port}.aof",
                "--appenddirname",
                f"aof-{port}",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                f"nodes-{port}.conf",
                "--cluster-node-timeout",
                str(NODE_TIMEOUT_MS),
                "--repl-diskless-sync-delay",  # a replica syncs at once, so it can take over at once
                "0",
                *auth,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        log.close()


@contextlib.contextmanager
def redis_cluster(
    masters: int = 3, *, replicas: int = 0, persistent: bool = False, password: str | None = None
) -> Iterator[RedisClusterNodes]:
    """Start ``masters`` nodes (and ``replicas`` per master), create the cluster, yield once every
    node says ok; kill all after. ``persistent``: each node keeps an append-only file, so a killed
    node restarts with its keys; ``password``: every node requires it (``redis_url`` carries it).
    With replicas, a killed master's replica takes over after the node timeout (2 s)."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        raise RuntimeError("redis-server and redis-cli are not installed")
    directory = Path(tempfile.mkdtemp(prefix="parley-redis-cluster-"))
    nodes = RedisClusterNodes(
        directory, [cluster_port() for _ in range(masters * (1 + replicas))], persistent=persistent, password=password
    )
    try:
        for port in nodes.ports:
            nodes.start_node(port)
        subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{port}" for port in nodes.ports)]
            + ["--cluster-replicas", str(replicas), "--cluster-yes"]
            + (["-a", password, "--no-auth-warning"] if password else []),
            check=True,
            capture_output=True,
            timeout=60,
        )
        nodes.wait_ok()
        if replicas:
            nodes.wait_replicas_synced()
        yield nodes
    finally:
        nodes.close()
