"""Engines of a test's own: a ``redis-server`` and a RabbitMQ node on free loopback ports, in a
temporary directory, that a fault scenario may pause, stall, restart or kill.

Owns: starting and stopping those processes and the fault actions on them (``CLIENT PAUSE``,
``CLIENT KILL TYPE pubsub``, ``stop_app``/``start_app``, SIGSTOP/SIGCONT of the broker).

Must not: touch the machine's shared Redis (6379) or RabbitMQ (5672): every action here goes
to the engine this module started, by its own port or node name.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from parley.testing.cluster import free_port, wait_tcp

RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")  # the Debian package's scripts, run as the current user
CTL_PORTS = 8  # distribution ports a node's rabbitmqctl calls may take (one per call running)


def free_port_range(count: int, low: int = 20000, high: int = 32000) -> int:
    """The first of ``count`` consecutive loopback ports free now, below the kernel's ephemeral
    range (32768-60999 here), so that no outgoing connection takes one of them later."""
    for _ in range(200):
        base = random.randrange(low, high - count)
        try:
            with contextlib.ExitStack() as held:
                for port in range(base, base + count):
                    sock = held.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise RuntimeError(f"no {count} consecutive free ports in {low}-{high}")


def stalled(pid: int, seconds: float) -> None:
    """SIGSTOP ``pid`` for ``seconds``, then SIGCONT (a process that is there but answers nothing)."""
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(seconds)
    finally:
        os.kill(pid, signal.SIGCONT)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@dataclass
class OwnRedis:
    """A throwaway ``redis-server`` (no persistence) on a free port."""

    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    tmp: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="parley-redis-")))

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> float:
        """Start it; returns the seconds it took to accept connections."""
        began = time.monotonic()
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no", "--daemonize", "no", "--dir", str(self.tmp)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_tcp(self.port, timeout=10)
        return time.monotonic() - began

    def cli(self, *args: str) -> str:
        out = subprocess.run(
            ["redis-cli", "-p", str(self.port), *args], capture_output=True, timeout=10, check=True, text=True
        )
        return out.stdout.strip()

    def pause(self, milliseconds: int) -> None:
        """``CLIENT PAUSE ms ALL``: every client's commands wait (returns at once)."""
        self.cli("CLIENT", "PAUSE", str(milliseconds), "ALL")

    def kill_pubsub(self) -> int:
        """``CLIENT KILL TYPE pubsub``: drop every subscriber connection; returns how many."""
        return int(self.cli("CLIENT", "KILL", "TYPE", "pubsub") or 0)

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process)
            self.process = None
        shutil.rmtree(self.tmp, ignore_errors=True)


@dataclass
class OwnRabbit:
    """A throwaway RabbitMQ node (no plugins) on free ports, its state in a temporary directory."""

    node: str = field(default_factory=lambda: f"bench-{uuid.uuid4().hex[:6]}@localhost")
    port: int = field(default_factory=free_port)
    dist_port: int = field(default_factory=free_port)
    # rabbitmqctl's own distribution ports: by default every CLI call on the machine shares
    # 35672-35682, inside the ephemeral range; with all of them taken every call fails
    # ("Distribution failed ... nodistribution") and a booted node looks as if it never started
    ctl_ports: int = field(default_factory=lambda: free_port_range(CTL_PORTS))
    process: subprocess.Popen[bytes] | None = None
    tmp: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="parley-rabbit-")))

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def env(self) -> dict[str, str]:
        return dict(os.environ) | {
            "HOME": str(self.tmp),  # the Erlang cookie lives here, shared by server and rabbitmqctl
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CTL_DIST_PORT_MIN": str(self.ctl_ports),
            "RABBITMQ_CTL_DIST_PORT_MAX": str(self.ctl_ports + CTL_PORTS - 1),
            "RABBITMQ_MNESIA_BASE": str(self.tmp / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.tmp / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.tmp / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.tmp / "rabbitmq"),
        }

    def start(self, timeout: float = 60.0) -> float:
        """Start the node and wait until it is booted; returns the seconds that took."""
        (self.tmp / "enabled_plugins").write_text("[].\n")
        began = time.monotonic()
        log = open(self.tmp / "server.out", "ab")
        self.process = subprocess.Popen(
            [str(RABBIT_BIN / "rabbitmq-server")], cwd=self.tmp, env=self.env(), stdout=log, stderr=log
        )
        deadline = began + timeout
        while True:  # await_startup fails until the node has registered with epmd
            if self.process.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited {self.process.returncode}; see {self.tmp}/server.out")
            try:
                self.ctl("await_startup", "--timeout", "10", timeout=15)
                return time.monotonic() - began
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
                if time.monotonic() > deadline:
                    said = (error.stderr or error.stdout or "") if isinstance(error.stderr, str) else ""
                    raise TimeoutError(
                        f"RabbitMQ node {self.node} did not answer rabbitmqctl in {timeout} s "
                        f"(last: {said.strip()[:300] or error}); see {self.tmp}"
                    ) from None
                time.sleep(0.3)

    def ctl(self, *args: str, timeout: float = 30.0) -> str:
        out = subprocess.run(
            [str(RABBIT_BIN / "rabbitmqctl"), "-n", self.node, "-q", *args],
            env=self.env(),
            capture_output=True,
            timeout=timeout,
            check=True,
            text=True,
        )
        return out.stdout.strip()

    def beam_pid(self) -> int:
        """The OS pid of the node's Erlang VM (``beam.smp``), for SIGSTOP/SIGKILL."""
        return int(self.ctl("eval", "os:getpid().").strip('"'))

    def restart_app(self, down_seconds: float = 1.0) -> None:
        """``stop_app``, ``down_seconds`` down, ``start_app``: every connection is closed, durable
        queues and their persistent messages survive."""
        self.ctl("stop_app")
        time.sleep(down_seconds)
        self.ctl("start_app")
        self.ctl("await_startup", "--timeout", "30", timeout=35)

    def stall(self, seconds: float) -> None:
        stalled(self.beam_pid(), seconds)

    def stop(self) -> None:
        if self.process is not None:
            try:
                self.ctl("stop", timeout=30)
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
                pass
            _stop(self.process)
            self.process = None
        shutil.rmtree(self.tmp, ignore_errors=True)
