"""A throwaway 3-node RabbitMQ cluster on loopback for fault runs: three :class:`OwnRabbit` nodes
(each its own node name, AMQP and distribution ports, state in its own temporary directory)
sharing one Erlang cookie, the second and third joined to the first with ``rabbitmqctl
join_cluster``; torn down after.

Owns: forming the cluster, the comma-separated ``PARLEY_AMQP_URL`` for it, killing a node
(SIGKILL of its ``beam.smp``) and reading, from a surviving node, where connections and quorum
queue leaders are.

Must not: touch the machine's shared node (rabbit@<host> on 5672/25672): every ``rabbitmqctl``
call names one of these nodes (``-n``), and their ports are free loopback ports.
"""

from __future__ import annotations

import concurrent.futures
import os
import secrets
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field

from parley.testing.engines import OwnRabbit

NODES = 3


@dataclass
class RabbitCluster:
    nodes: list[OwnRabbit] = field(default_factory=lambda: [OwnRabbit() for _ in range(NODES)])
    killed: set[str] = field(default_factory=set)  # node names

    @property
    def url(self) -> str:
        """PARLEY_AMQP_URL: every node, the first one first (where every process connects)."""
        return ",".join(node.url for node in self.nodes)

    def start(self, timeout: float = 90.0) -> float:
        """Boot the nodes side by side, join the 2nd and 3rd to the 1st; returns the seconds taken."""
        began = time.monotonic()
        cookie = secrets.token_hex(16)  # the same for every node and its rabbitmqctl (HOME is its tmp)
        for node in self.nodes:
            path = node.tmp / ".erlang.cookie"
            path.write_text(cookie)
            os.chmod(path, 0o400)
        with concurrent.futures.ThreadPoolExecutor(len(self.nodes)) as pool:
            list(pool.map(lambda node: node.start(timeout), self.nodes))
        first = self.nodes[0].node
        for node in self.nodes[1:]:
            node.ctl("stop_app")
            node.ctl("join_cluster", first)
            node.ctl("start_app")
            node.ctl("await_startup", "--timeout", "30", timeout=35)
        running = self.nodes[0].ctl("eval", "length(rabbit_nodes:all_running()).")
        if int(running) != len(self.nodes):
            raise RuntimeError(f"{running} of {len(self.nodes)} RabbitMQ nodes running after the joins")
        return time.monotonic() - began

    def alive(self) -> OwnRabbit:
        """A node not killed (to ask about the cluster)."""
        return next(node for node in self.nodes if node.node not in self.killed)

    def connections(self) -> Counter[str]:
        """Client connections per node name (rabbitmqctl asks every running node)."""
        out = self.alive().ctl("list_connections", "--no-table-headers", "pid")
        # a connection's pid is <node.N.N.N> (these node names have no dot)
        return Counter(line.strip().strip("<>").rsplit(".", 3)[0] for line in out.splitlines() if line.strip())

    def quorum_leaders(self) -> Counter[str]:
        """Quorum queues per leader node (an empty leader: none elected yet)."""
        out = self.alive().ctl("list_queues", "--no-table-headers", "type", "leader", timeout=60)
        rows = [line.split() for line in out.splitlines()]
        return Counter(row[1] if len(row) > 1 else "" for row in rows if row and row[0] == "quorum")

    def kill(self, node: OwnRabbit) -> None:
        """kill -9 the node's Erlang VM: its connections drop, its ports refuse, no goodbye."""
        pid = node.beam_pid()
        self.killed.add(node.node)
        os.kill(pid, signal.SIGKILL)
        if node.process is not None:
            try:
                node.process.wait(timeout=10)
            except subprocess.TimeoutExpired:  # the beam is gone; its wrapper script may linger
                node.process.kill()
                node.process.wait(timeout=5)

    def wait_leaders(self, away_from: str, timeout: float = 30.0) -> float:
        """Until every quorum queue has a leader other than ``away_from``; seconds that took."""
        began = time.monotonic()
        while True:
            try:
                leaders = self.quorum_leaders()
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
                leaders = Counter({"": 1})
            if leaders and not (set(leaders) & {away_from, ""}):
                return time.monotonic() - began
            if time.monotonic() - began > timeout:
                raise TimeoutError(f"quorum queues still led by {dict(leaders)} after {timeout} s")
            time.sleep(0.5)

    def stop(self) -> None:
        for node in self.nodes:
            if node.node in self.killed:
                node.process = None  # already reaped; OwnRabbit.stop only removes its directory
            node.stop()
