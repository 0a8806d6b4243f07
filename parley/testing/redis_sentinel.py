"""A throwaway Redis Sentinel set on loopback for tests and fault runs: a master, one replica and
one sentinel, each a ``redis-server`` on a free port in a temporary directory, torn down after.

No persistence (``--save "" --appendonly no``); the sentinel fails over quickly (down after
``DOWN_AFTER_MS``, quorum 1). Never touches port 6379.

Must not: know parley's keys or settings beyond the environment values it hands out.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis

from parley.testing.cluster import free_port
from parley.testing.redis_servers import kill_all, ping, wait_until

MASTER_NAME = "parley-test"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 3000


@dataclass
class SentinelSet:
    dir: Path
    master_port: int
    replica_port: int
    sentinel_port: int
    processes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)  # by port
    name: str = MASTER_NAME

    @property
    def sentinels(self) -> str:
        """PARLEY_REDIS_SENTINELS for this set."""
        return f"127.0.0.1:{self.sentinel_port}"

    @property
    def redis_url(self) -> str:
        """PARLEY_REDIS_URL under Sentinel: only its db (and credentials) count."""
        return "redis://sentinel-named-master/0"

    def master_address(self) -> tuple[str, int]:
        """The master the sentinel names now."""
        with redis.Redis(port=self.sentinel_port, socket_timeout=2, decode_responses=True) as sentinel:
            host, port = sentinel.sentinel_get_master_addr_by_name(self.name)
        return str(host), int(port)

    def replication_lag(self) -> int:
        """Bytes of the master's replication stream the replica has not received yet (each asked
        in turn, so a busy master shows a little more than there is)."""
        host, port = self.master_address()
        replica = next(p for p in self.processes if p not in (port, self.sentinel_port))
        with redis.Redis(host=host, port=port, socket_timeout=2) as master:
            sent = int(master.info("replication")["master_repl_offset"])
        with redis.Redis(port=replica, socket_timeout=2) as follower:
            received = int(follower.info("replication")["slave_repl_offset"])
        return sent - received

    def kill_master(self) -> int:
        """kill -9 the current master; its port."""
        _, port = self.master_address()
        process = self.processes.pop(port)
        process.send_signal(signal.SIGKILL)
        process.wait(5)
        return port

    def wait_failover(self, old_port: int, timeout: float = 15.0) -> tuple[str, int]:
        """Until the sentinel names a master other than ``old_port`` that answers as a master."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(redis.RedisError):
                host, port = self.master_address()
                if port != old_port:
                    with redis.Redis(host=host, port=port, socket_timeout=1) as master:
                        if master.info("replication")["role"] == "master":
                            return host, port
            if time.monotonic() > deadline:
                raise TimeoutError(f"the sentinel promoted no replica within {timeout} s")
            time.sleep(0.05)

    def close(self) -> None:
        kill_all(self.processes, self.dir)


def _start(directory: Path, port: int, *args: str) -> subprocess.Popen[bytes]:
    log = open(directory / f"{port}.log", "wb")  # noqa: SIM115 - kept open by the child
    try:
        return subprocess.Popen(
            ["redis-server", *args, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        log.close()


def _replica_up(port: int) -> bool:
    with redis.Redis(port=port, socket_timeout=1) as replica:
        return replica.info("replication").get("master_link_status") == "up"


def _sentinel_sees_replica(sentinel_port: int, name: str, replica_port: int) -> bool:
    with redis.Redis(port=sentinel_port, socket_timeout=1) as sentinel:
        replicas = sentinel.sentinel_slaves(name)
    return any(int(r["port"]) == replica_port and not r["is_sdown"] for r in replicas)


@contextlib.contextmanager
def sentinel_set() -> Iterator[SentinelSet]:
    """Start master, replica and sentinel; yield once the sentinel sees the replica; kill all after."""
    if shutil.which("redis-server") is None:
        raise RuntimeError("redis-server is not installed")
    directory = Path(tempfile.mkdtemp(prefix="parley-sentinel-"))
    setup = SentinelSet(directory, free_port(), free_port(), free_port())
    # no persistence; a replica syncs at once (not after the default 5 s diskless-sync delay)
    plain = ("--save", "", "--appendonly", "no", "--repl-diskless-sync-delay", "0")
    try:
        setup.processes[setup.master_port] = _start(directory, setup.master_port, *plain)
        wait_until("master", lambda: ping(setup.master_port))
        setup.processes[setup.replica_port] = _start(
            directory, setup.replica_port, *plain, "--replicaof", "127.0.0.1", str(setup.master_port)
        )
        wait_until("replica", lambda: _replica_up(setup.replica_port))
        conf = directory / "sentinel.conf"
        conf.write_text(
            f"sentinel monitor {setup.name} 127.0.0.1 {setup.master_port} 1\n"
            f"sentinel down-after-milliseconds {setup.name} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {setup.name} {FAILOVER_TIMEOUT_MS}\n"
        )
        os.chmod(conf, 0o600)
        setup.processes[setup.sentinel_port] = _start(directory, setup.sentinel_port, str(conf), "--sentinel")
        wait_until("sentinel", lambda: _sentinel_sees_replica(setup.sentinel_port, setup.name, setup.replica_port))
        yield setup
    finally:
        setup.close()
