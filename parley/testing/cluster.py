"""Run parley as separate OS processes (``parley api|gateway|router``), as in production."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import botocore.session
from aiohttp import web
from botocore.config import Config

from api.validation import EXTENSIONS_DATA_PATH
from shared.address_policy import LOOPBACK_NETWORKS
from shared.config import Settings

if TYPE_CHECKING:
    from shared.engine.redis.connect import RedisTarget

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """``app`` served on 127.0.0.1 at a free port (a review handler, say); yields its base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def wait_http(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not come up")
        time.sleep(0.1)


def wait_tcp(port: int, timeout: float = 20.0) -> None:
    """Until something accepts TCP connections on 127.0.0.1:``port``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@dataclass
class Cluster:
    settings: Settings
    redis_url: str
    amqp_url: str
    extra_env: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    log_dir: Path = field(default_factory=lambda: Path(os.environ.get("TMPDIR", "/tmp")))
    root: Path = ROOT  # the checkout whose code the processes run (a benchmark's baseline commit, say)

    def env(self) -> dict[str, str]:
        s = self.settings
        env = dict(os.environ)
        env.update(
            PARLEY_NAMESPACE=s.namespace,
            PARLEY_REDIS_URL=self.redis_url,
            PARLEY_REDIS_CLUSTER="true" if s.redis_cluster else "false",
            PARLEY_AMQP_URL=self.amqp_url,
            PARLEY_AMQP_QUEUE_TYPE=s.amqp_queue_type,
            PARLEY_TOKEN_SECRET=s.token_secret,
            PARLEY_ACCESS_KEY_ID=s.access_key_id,
            PARLEY_SECRET_ACCESS_KEY=s.secret_access_key,
            PARLEY_REGION=s.region,
            PARLEY_SHARDS=str(s.shards),
            PARLEY_API_THROTTLING="false",
            PARLEY_ACCOUNT_SEND_MESSAGE_RATE=str(s.account_send_message_rate),
            PARLEY_ACCOUNT_DELETE_MESSAGE_RATE=str(s.account_delete_message_rate),
            PARLEY_ACCOUNT_DISCONNECT_USER_RATE=str(s.account_disconnect_user_rate),
            PARLEY_LOG_JSON="true",
            PARLEY_REVIEW_ALLOWED_NETWORKS=s.review_allowed_networks,
        )
        env.update(self.extra_env)
        return env

    def start(self, name: str, *args: str, health_port: int | None = None, env: dict[str, str] | None = None) -> None:
        log = open(self.log_dir / f"parley-{self.settings.namespace}-{name}.log", "ab")
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "parley", *args], cwd=self.root, env=self.env() | (env or {}), stdout=log, stderr=log
        )
        if health_port is not None:
            wait_http(f"http://127.0.0.1:{health_port}/healthz")

    def start_api(self) -> int:
        port = self.ports["api"] = free_port()
        self.start("api", "api", "--port", str(port), health_port=port)
        return port

    def start_gateway(self, name: str) -> int:
        port = self.ports[name] = free_port()
        self.start(name, "gateway", "--port", str(port), "--id", name, health_port=port)
        return port

    def start_front(self, name: str, front: str, env: dict[str, str] | None = None) -> int:
        """``parley front <front>`` on a free port, once it accepts connections."""
        port = self.ports[name] = free_port()
        self.start(name, "front", front, "--port", str(port), env=env)
        wait_tcp(port)
        return port

    def start_router(self, name: str) -> None:
        """A router, with its /metrics on ``ports[name]`` (routers have no other listener)."""
        port = self.ports[name] = free_port()
        self.start(name, "router", env={"PARLEY_METRICS_PORT": str(port)})

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        process = self.processes.pop(name)
        process.send_signal(sig)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:  # a graceful stop that hangs must not hang the suite
            process.kill()
            process.wait(timeout=5)

    def stop(self) -> None:
        for name in list(self.processes):
            self.kill(name, signal.SIGTERM)

    def ws_url(self, gateway: str) -> str:
        return f"ws://127.0.0.1:{self.ports[gateway]}/"

    def destroy(self, queues: bool = True) -> None:
        """Delete the namespace's keys, and its queues unless ``queues`` is False (a broker of the
        run's own, thrown away after)."""
        destroy_namespace(self.settings, self.redis_target(), self.amqp_url if queues else None)

    def redis_target(self) -> RedisTarget:
        """Where the processes' Redis is: ``redis_url`` (a Redis Cluster if the settings say so), or
        the master the Sentinel set that ``extra_env`` names (PARLEY_REDIS_SENTINELS) points at now."""
        from shared.engine.redis.connect import RedisTarget

        env, s = self.extra_env, self.settings
        settings = s.with_(
            redis_url=self.redis_url,
            redis_sentinels=env.get("PARLEY_REDIS_SENTINELS", s.redis_sentinels),
            redis_sentinel_master=env.get("PARLEY_REDIS_SENTINEL_MASTER", s.redis_sentinel_master),
        )
        return RedisTarget.from_settings(settings)  # PARLEY_REDIS_CLUSTER from the settings, as env() says

    def parleychat(self) -> Any:
        return parleychat_client(f"http://127.0.0.1:{self.ports['api']}", self.settings)

    def token(self, arn: str, user: str, caps: list[str] | None = None) -> str:
        """A chat token minted through the control plane (SEND_MESSAGE unless ``caps`` says)."""
        return self.ivschat().create_chat_token(
            roomIdentifier=arn,
            userId=user,
            capabilities=caps if caps is not None else ["SEND_MESSAGE"],
            attributes={"displayName": user},
        )["token"]

    def ivschat(self) -> Any:
        return boto3.client(
            "ivschat",
            region_name=self.settings.region,
            endpoint_url=f"http://127.0.0.1:{self.ports['api']}",
            aws_access_key_id=self.settings.access_key_id,
            aws_secret_access_key=self.settings.secret_access_key,
            config=Config(retries={"max_attempts": 1}),
        )


def dev_ivschat(api_port: int) -> Any:
    """boto3's ivschat client for a ``parley dev`` on ``api_port``, with the keys it prints."""
    return boto3.client(
        "ivschat",
        region_name="us-east-1",
        endpoint_url=f"http://127.0.0.1:{api_port}",
        aws_access_key_id="AKIDPARLEYDEV",
        aws_secret_access_key="parley-dev-secret",
        config=Config(retries={"max_attempts": 1}),
    )


@contextlib.contextmanager
def parley_dev() -> Iterator[dict[str, int]]:
    """``parley dev`` as a newcomer runs it (``make run``): a process with no PARLEY_* settings on
    free ports; yields the ports, stops it with Ctrl-C and checks it exited cleanly."""
    ports = {"api": free_port(), "gateway": free_port()}
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    command = ["-m", "parley", "dev", "--api-port", str(ports["api"]), "--gateway-port", str(ports["gateway"])]
    process = subprocess.Popen(
        [sys.executable, *command], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_http(f"http://127.0.0.1:{ports['api']}/healthz")
        wait_http(f"http://127.0.0.1:{ports['gateway']}/healthz")
        yield ports
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0  # graceful shutdown on Ctrl-C


@contextlib.contextmanager
def running_cluster(
    settings: Settings, redis_url: str, amqp_url: str, *, gateways: int = 2, routers: int = 1, **extra_env: str
) -> Iterator[Cluster]:
    """api + gateways gwA, gwB, … + routers router1, … as processes; torn down with the namespace."""
    cluster = Cluster(settings, redis_url, amqp_url, extra_env=dict(extra_env))
    try:
        cluster.start_api()
        for index in range(gateways):
            cluster.start_gateway(f"gw{chr(ord('A') + index)}")
        for index in range(routers):
            cluster.start_router(f"router{index + 1}")
        yield cluster
    finally:
        cluster.stop()
        cluster.destroy()


BENCH_ENV = {"PARLEY_CONNECTION_RATE_PER_SECOND": "100000", "PARLEY_LOG_LEVEL": "warning"}


def new_namespace() -> str:
    """A test namespace of its own (queues and keys under it are deleted after the test)."""
    return "t" + uuid.uuid4().hex[:10]


def suite_settings(namespace: str) -> Settings:
    """What the test suite's processes run with: fixed credentials, no API throttling, 4 shards."""
    return Settings(
        namespace=namespace,
        access_key_id="AKIDPARLEYTEST",
        secret_access_key="parley-test-secret-key",
        token_secret="parley-test-token-secret-0123456789",  # parley api|gateway refuse keys under 32 bytes
        api_throttling=False,
        shards=4,
        log_json=False,
        review_allowed_networks=LOOPBACK_NETWORKS,  # the suite's review handlers listen on 127.0.0.1
    )


def throwaway_settings(shards: int = 16) -> Settings:
    """Settings for a benchmark cluster in a namespace of its own (deleted afterwards)."""
    return Settings(
        namespace="bench" + uuid.uuid4().hex[:8],
        access_key_id="AKIDBENCH",
        secret_access_key="bench-secret",
        token_secret="bench-token-secret-0123456789abcdef",  # 32+ bytes, as parley api|gateway require
        shards=shards,
        # benchmarks measure capacity: the account quotas raised, as an operator would for the load
        account_send_message_rate=1_000_000,
        account_delete_message_rate=1_000_000,
        account_disconnect_user_rate=1_000_000,
    )


def parleychat_client(endpoint_url: str, settings: Settings, secret: str | None = None) -> Any:
    """boto3 client for parley's extension model (``parleychat``), as the README shows users."""
    session = botocore.session.get_session()
    session.get_component("data_loader").search_paths.insert(0, str(EXTENSIONS_DATA_PATH))
    return boto3.Session(botocore_session=session).client(
        "parleychat",
        region_name=settings.region,
        endpoint_url=endpoint_url,
        aws_access_key_id=settings.access_key_id,
        aws_secret_access_key=secret or settings.secret_access_key,
        config=Config(retries={"max_attempts": 1}),
    )


def destroy_namespace(settings: Settings, redis_url: RedisTarget | str, amqp_url: str | None) -> None:
    """Delete a test namespace's queues, exchanges and keys (``redis_url``: a URL, or a Sentinel
    target; ``amqp_url`` None: the keys only, for a broker thrown away with its queues). The keys
    go even when the broker part fails (a cluster with a node down, say); that error is raised."""
    from shared.engine.amqp import AmqpRedisBus
    from shared.engine.amqp.queues import QueueMismatch
    from shared.engine.redis.connect import RedisTarget
    from shared.engine.redis.store import RedisStore

    redis = redis_url  # a URL: Sentinel or Cluster too, as the settings say
    if not isinstance(redis, RedisTarget):
        redis = RedisTarget.from_settings(settings.with_(redis_url=redis))

    async def destroy_queues(url: str, queue_type: str = settings.amqp_queue_type) -> None:
        bus = AmqpRedisBus(url, redis, settings.namespace, shards=settings.shards, queue_type=queue_type)
        try:
            await bus.start()
        except QueueMismatch:  # made by a process with the other queue type (a benchmark's baseline)
            await bus.close()
            other = "classic" if queue_type == "quorum" else "quorum"
            if queue_type != settings.amqp_queue_type:
                raise
            return await destroy_queues(url, other)
        try:
            await bus.destroy()
        finally:
            await bus.close()

    async def destroy() -> None:
        try:
            if amqp_url is not None:
                await destroy_queues(amqp_url)
        finally:
            store = RedisStore(redis, settings.namespace)
            await store.start()
            await store.destroy()
            await store.close()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(destroy())
    else:  # called from async code (a test body): run it on a thread with its own loop
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, destroy()).result()
