"""Chat logging end to end: real WebSocket clients and boto3 against parley, logs written by the
logger sink to a real local S3-compatible server (moto_server) and to files, read back with
``parley logs``; a destination going down and coming back; a sink SIGKILLed mid-stream."""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from logger_sink import layout, readback
from parley.embedded import Node
from parley.testing.chatclient import ChatClient
from parley.testing.cluster import ROOT, Cluster, free_port, wait_http
from shared import metrics
from shared.config import Settings
from shared.engine.memory import MemoryBus, MemoryStore
from tests.nodes import BACKENDS, started_node

KEY_RE = re.compile(
    r"AWSLogs/123456789012/IVSChatLogs/1\.0/us-east-1/room_(?P<room>[A-Za-z0-9]{12})/\d{4}/\d{2}/\d{2}/\d{2}/"
    r"123456789012_IVSChatLogs_1\.0_us-east-1_room_(?P=room)_\d{8}T\d{4}Z_[0-9a-f]{8}\.log\.gz"
)


class MotoServer:
    """``moto_server`` (moto[server]) on a fixed 127.0.0.1 port; can be stopped and restarted."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_http(f"{self.url}/moto-api/data.json", timeout=20)

    def stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=10)
            self._process = None

    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL_S3": self.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
        }

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}),
        )


@pytest.fixture
def moto(monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoServer]:
    server = MotoServer()
    server.start()
    for name, value in server.env().items():
        monkeypatch.setenv(name, value)
    try:
        yield server
    finally:
        server.stop()


def _ivschat(port: int, settings: Settings) -> Any:
    return boto3.client(
        "ivschat",
        region_name=settings.region,
        endpoint_url=f"http://127.0.0.1:{port}",
        aws_access_key_id=settings.access_key_id,
        aws_secret_access_key=settings.secret_access_key,
        config=Config(retries={"max_attempts": 1}),
    )


async def _call(fn: Any, **kwargs: Any) -> Any:
    """boto3 is blocking; the api it calls runs on this test's event loop."""
    return await asyncio.to_thread(fn, **kwargs)


def _log_settings(settings: Settings, log_dir: Path) -> Settings:
    return settings.with_(
        log_dir=str(log_dir), log_batch_seconds=0.2, log_retry_max_seconds=0.5, connection_rate_per_second=1000
    )


@pytest.fixture(params=BACKENDS)
async def node(request: pytest.FixtureRequest, settings: Settings, tmp_path: Path) -> AsyncIterator[Node]:
    async with started_node(request, _log_settings(settings, tmp_path / "logs"), api=True, logger=True) as started:
        yield started


def _ws(node: Node) -> str:
    assert node.gateway is not None
    return f"ws://127.0.0.1:{node.gateway.port}/"


async def _until(check: Any, timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await asyncio.to_thread(check)
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def _s3_records(s3: Any, bucket: str) -> list[dict[str, Any]]:
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", ()))
    records: list[dict[str, Any]] = []
    for key in keys:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        records.extend(json.loads(line) for line in gzip.decompress(body).splitlines())
    return records


def _file_records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


async def test_room_logs_reach_every_destination_exactly_as_clients_saw_them(node: Node, moto: MotoServer) -> None:
    assert node.api is not None
    settings = node.settings
    ivs = _ivschat(node.api.port, settings)
    s3 = moto.client()
    s3.create_bucket(Bucket="chat-logs")
    s3_cfg = await _call(ivs.create_logging_configuration, destinationConfiguration={"s3": {"bucketName": "chat-logs"}})
    cw_cfg = await _call(
        ivs.create_logging_configuration, destinationConfiguration={"cloudWatchLogs": {"logGroupName": "/ivs/c#1"}}
    )
    fh_cfg = await _call(
        ivs.create_logging_configuration, destinationConfiguration={"firehose": {"deliveryStreamName": "fh.1"}}
    )
    room = await _call(
        ivs.create_room,
        maximumMessageLength=20,
        maximumMessageRatePerSecond=100,
        loggingConfigurationIdentifiers=[s3_cfg["arn"], cw_cfg["arn"], fh_cfg["arn"]],
    )
    quiet = await _call(
        ivs.create_room,
    )  # no logging configuration: nothing of it may be logged
    with pytest.raises(ivs.exceptions.ConflictException):
        await _call(ivs.delete_logging_configuration, identifier=s3_cfg["arn"])

    async def token(room_arn: str, user: str, caps: list[str]) -> str:
        return (await _call(ivs.create_chat_token, roomIdentifier=room_arn, userId=user, capabilities=caps))["token"]

    alice = await ChatClient.open(_ws(node), await token(room["arn"], "alice", ["SEND_MESSAGE"]))
    bob = await ChatClient.open(_ws(node), await token(room["arn"], "bob", ["SEND_MESSAGE"]))
    other = await ChatClient.open(_ws(node), await token(quiet["arn"], "carol", ["SEND_MESSAGE"]))
    await other.send_message("not logged")
    await other.expect(Type="MESSAGE")
    first = None
    for n in range(6):
        await alice.send_message(f"m{n}", Attributes={"n": str(n)})
        echoed = await alice.expect(Type="MESSAGE")
        first = first or echoed
    await alice.send_message("x" * 21)  # ERROR 400 to alice only: never logged
    assert (await alice.expect(Type="ERROR"))["ErrorCode"] == 400
    await bob.send_message('quote " and é')
    await alice.expect(Type="MESSAGE")
    await _call(ivs.send_event, roomIdentifier=room["arn"], eventName="app:poll", attributes={"q": "1"})
    await alice.expect(Type="EVENT", EventName="app:poll")
    assert first is not None
    await _call(ivs.delete_message, roomIdentifier=room["arn"], id=first["Id"], reason="oops")
    await alice.expect(Type="EVENT", EventName="aws:DELETE_MESSAGE")
    await _call(ivs.disconnect_user, roomIdentifier=room["arn"], userId="bob", reason="bye")
    await alice.expect(Type="EVENT", EventName="aws:DISCONNECT_USER")
    seen = [f for f in alice.frames if f["Type"] in ("MESSAGE", "EVENT")]
    assert len(seen) == 10

    log_dir = Path(settings.log_dir)
    cw_path = layout.cloudwatch_path(log_dir, "/ivs/c#1", room["id"])
    fh_path = layout.firehose_path(log_dir, "fh.1")
    await _until(lambda: len(_file_records(cw_path)) >= 10, what="cloudWatchLogs file")
    await _until(lambda: len(_file_records(fh_path)) >= 10, what="firehose file")
    await _until(lambda: len(_s3_records(s3, "chat-logs")) >= 10, what="S3 objects")
    await asyncio.sleep(0.5)  # anything extra (a duplicate, the quiet room) would have landed by now

    for records in (_file_records(cw_path), _file_records(fh_path), _s3_records(s3, "chat-logs")):
        assert [list(r["payload"].items()) for r in records] == [list(f.items()) for f in seen]  # exact, in order
        assert [r["type"] for r in records] == [f["Type"] for f in seen]
        assert all(list(r) == ["event_timestamp", "type", "version", "payload"] for r in records)
        assert all(r["version"] == "1.0" and r["event_timestamp"] == r["payload"]["SendTime"] for r in records)

    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="chat-logs")["Contents"]]
    assert keys and all(KEY_RE.fullmatch(k) and f"room_{room['id']}" in k for k in keys), keys
    raw = s3.get_object(Bucket="chat-logs", Key=keys[0])["Body"].read()
    assert raw[:2] == b"\x1f\x8b"  # gzip
    assert (
        cw_path.relative_to(log_dir).as_posix() == f"cloudwatch/%2Fivs%2Fc#1/aws/IVSChatLogs/1.0/room_{room['id']}.log"
    )

    # parley logs: from the file destination and from S3, the same ordered records
    from_file = readback.merge(readback.read_file(cw_path))
    prefix = layout.s3_room_prefix(settings.account_id, settings.region, room["id"])
    from_s3 = readback.merge(readback.read_s3(s3, "chat-logs", prefix))
    assert [json.loads(line) for line in from_file] == [json.loads(line) for line in from_s3] == _file_records(cw_path)
    since = seen[7]["SendTime"]  # the SendEvent, a control-plane round trip after the last message
    window = readback.merge(readback.read_s3(s3, "chat-logs", prefix), since_ms=_ms(since))
    expected = [f["Id"] for f in seen if _ms(f["SendTime"]) >= _ms(since)]  # frames can share a millisecond
    assert 0 < len(expected) < len(seen)
    assert [json.loads(line)["payload"]["Id"] for line in window] == expected

    for client in (alice, bob, other):
        await client.close()


def _ms(iso: str) -> int:
    from shared.protocol.timestamps import parse_iso

    return parse_iso(iso)


def _count(counter: Any, arn: str) -> float:
    return counter.labels(arn)._value.get()


async def test_s3_down_then_back_counts_errors_retries_and_delivers(
    settings: Settings, tmp_path: Path, moto: MotoServer
) -> None:
    settings = _log_settings(settings, tmp_path / "logs")
    node = Node(settings, MemoryStore(), MemoryBus(settings.shards), router_all_shards=True, logger=True)
    await node.start(api_port=0, gateway_port=0)
    try:
        assert node.api is not None
        ivs = _ivschat(node.api.port, settings)
        s3 = moto.client()
        s3.create_bucket(Bucket="flaky")
        cfg = await _call(ivs.create_logging_configuration, destinationConfiguration={"s3": {"bucketName": "flaky"}})
        room = await _call(
            ivs.create_room, maximumMessageRatePerSecond=100, loggingConfigurationIdentifiers=[cfg["arn"]]
        )
        token = (
            await _call(ivs.create_chat_token, roomIdentifier=room["arn"], userId="u", capabilities=["SEND_MESSAGE"])
        )["token"]
        client = await ChatClient.open(_ws(node), token)
        await client.send_message("before")
        await client.expect(Type="MESSAGE")
        await _until(lambda: len(_s3_records(s3, "flaky")) == 1, what="first object")

        errors = _count(metrics.LOG_DESTINATION_ERRORS, cfg["arn"])
        moto.stop()
        started = time.monotonic()
        for n in range(3):  # chat never waits for the sink
            await client.send_message(f"during{n}")
            await client.expect(Type="MESSAGE", timeout=2)
        assert time.monotonic() - started < 3
        await _until(lambda: _count(metrics.LOG_DESTINATION_ERRORS, cfg["arn"]) > errors + 1, what="errors counted")
        spool = tmp_path / "logs" / "spool"
        assert list(spool.rglob("*.log.gz")), "failed objects are parked durably"

        not_found = _count(metrics.LOG_DESTINATION_RESOURCE_NOT_FOUND_ERRORS, cfg["arn"])
        moto.start()  # a fresh server: the bucket is gone until we create it again
        s3 = moto.client()
        await _until(
            lambda: _count(metrics.LOG_DESTINATION_RESOURCE_NOT_FOUND_ERRORS, cfg["arn"]) > not_found,
            what="NoSuchBucket counted",
        )
        s3.create_bucket(Bucket="flaky")
        records = await _until(lambda: len(_s3_records(s3, "flaky")) >= 3 and _s3_records(s3, "flaky"), what="retry")
        assert [r["payload"]["Content"] for r in records] == ["during0", "during1", "during2"]
        await _until(lambda: not list(spool.rglob("*.log.gz")), what="spool drained")
        await client.close()
    finally:
        await node.stop()


# --- multi-process: a logger sink SIGKILLed mid-stream ------------------------------------------
@pytest.fixture
def cluster(settings: Settings, redis_url: str, amqp_url: str, tmp_path: Path, moto: MotoServer) -> Iterator[Cluster]:
    env = {
        **moto.env(),
        "PARLEY_CONNECTION_RATE_PER_SECOND": "1000",
        "PARLEY_LOG_DIR": str(tmp_path / "logs"),
        "PARLEY_LOG_BATCH_SECONDS": "0.2",
        "PARLEY_LOG_BATCH_RECORDS": "20",
        "PARLEY_LOG_RETRY_MAX_SECONDS": "0.5",
        "PARLEY_LOG_PREFETCH": "50",
    }
    cluster = Cluster(settings, redis_url, amqp_url, extra_env=env, log_dir=tmp_path)
    try:
        cluster.start_api()
        cluster.start_gateway("gw")
        cluster.start_router("router")
        yield cluster
    finally:
        cluster.stop()
        cluster.destroy()


@pytest.mark.e2e
@pytest.mark.integration
async def test_killed_logger_loses_nothing(cluster: Cluster, moto: MotoServer, tmp_path: Path) -> None:
    """Two sinks (one active, one standby); the active one is SIGKILLed while 200 messages stream
    in, then a third starts. Every delivered message is logged (at least once), in order, in both
    destinations of the room."""
    s3 = moto.client()
    s3.create_bucket(Bucket="crash-logs")
    ivs = cluster.ivschat()
    s3_cfg = ivs.create_logging_configuration(destinationConfiguration={"s3": {"bucketName": "crash-logs"}})
    cw_cfg = ivs.create_logging_configuration(destinationConfiguration={"cloudWatchLogs": {"logGroupName": "crash"}})
    room = ivs.create_room(
        maximumMessageRatePerSecond=100, loggingConfigurationIdentifiers=[s3_cfg["arn"], cw_cfg["arn"]]
    )
    cluster.start("logger1", "logger")
    await asyncio.sleep(1.0)  # logger1 registers first: the active consumer
    cluster.start("logger2", "logger")
    token = ivs.create_chat_token(roomIdentifier=room["arn"], userId="s", capabilities=["SEND_MESSAGE"])["token"]
    sender = await ChatClient.open(cluster.ws_url("gw"), token)

    total = 200
    delivered: list[str] = []

    async def produce() -> None:
        for n in range(total):
            await sender.send_message(f"m{n:04d}")
            await asyncio.sleep(0.01)

    async def collect() -> None:
        while len(delivered) < total:
            frame = await sender.recv(timeout=15)
            if frame["Type"] == "MESSAGE" and frame["Id"] not in delivered:
                delivered.append(frame["Id"])

    collector = asyncio.create_task(collect())
    producer = asyncio.create_task(produce())
    await asyncio.sleep(1.0)
    cluster.kill("logger1")  # SIGKILL mid-stream: written-but-unacked batches come back
    await asyncio.sleep(0.5)
    cluster.start("logger3", "logger")
    await producer
    await asyncio.wait_for(collector, 20)
    assert len(delivered) == total

    cw_path = layout.cloudwatch_path(tmp_path / "logs", "crash", room["id"])

    def logged_ids(records: list[dict[str, Any]]) -> list[str]:
        first_seen: list[str] = []
        for record in records:
            if record["payload"]["Id"] not in first_seen:
                first_seen.append(record["payload"]["Id"])
        return first_seen

    await _until(lambda: set(delivered) <= set(logged_ids(_file_records(cw_path))), timeout=20, what="file complete")
    prefix = layout.s3_room_prefix("123456789012", "us-east-1", room["id"])

    def from_s3() -> list[dict[str, Any]]:
        return [json.loads(line) for line in readback.merge(readback.read_s3(s3, "crash-logs", prefix))]

    await _until(lambda: set(delivered) <= set(logged_ids(from_s3())), timeout=20, what="S3 complete")
    # no gaps and no reordering: first appearances follow delivery order exactly
    assert logged_ids(_file_records(cw_path)) == delivered
    assert logged_ids(from_s3()) == delivered
    # `parley logs` over the same file, de-duplicated, is exactly the delivered sequence
    out = subprocess.run(
        [sys.executable, "-m", "parley", "logs", room["arn"], "--log-group", "crash", "--unique"],
        cwd=ROOT,
        env=cluster.env(),
        capture_output=True,
        check=True,
    ).stdout
    assert [json.loads(line)["payload"]["Id"] for line in out.splitlines()] == delivered
    await sender.close()
