"""Control-plane read deadlines and the per-client connection cap, on real sockets.

Each test serves the real control-plane app through ``ApiServer.start`` (what ``parley api`` and
``parley dev`` both run, via ``Node``) with ~1 s bounds, then plays a slow, silent or greedy
client and checks the server closed the socket. The last tests run ``parley api`` and ``parley dev``
as processes to check their wiring reads the PARLEY_API_* settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from parley.embedded import ApiServer
from parley.testing.cluster import Cluster, free_port, wait_http
from shared.config import Settings
from shared.engine.memory import MemoryBus, MemoryStore

ROOT = Path(__file__).resolve().parent.parent
HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
CAP = 4
SLACK = 2.0  # scheduling leeway on a loaded test machine; the bounds under test are 1 s


@contextlib.asynccontextmanager
async def running_api(settings: Settings) -> AsyncIterator[ApiServer]:
    store, bus = MemoryStore(), MemoryBus(settings.shards)
    await store.start()
    await bus.start()
    server = ApiServer(settings, store, bus)
    await server.start(host="127.0.0.1", port=0)
    try:
        yield server
    finally:
        await server.stop()
        await bus.close()
        await store.close()


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[ApiServer]:
    """Deadlines of 1 s, cap of 4."""
    limited = settings.with_(
        api_header_timeout=HEADER_TIMEOUT, api_body_timeout=BODY_TIMEOUT, api_max_connections_per_client=CAP
    )
    async with running_api(limited) as server:
        yield server


@pytest.fixture
async def capped_api(settings: Settings) -> AsyncIterator[ApiServer]:
    """Cap of 4, deadlines far away: a connection closed within seconds was refused, not timed out."""
    capped = settings.with_(api_header_timeout=60, api_body_timeout=60, api_max_connections_per_client=CAP)
    async with running_api(capped) as server:
        yield server


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def read_until_closed(reader: asyncio.StreamReader, within: float) -> bytes:
    """Everything the server sent before closing; raises TimeoutError if it is still open ``within`` s on."""
    chunks = []
    async with asyncio.timeout(within):
        try:
            while chunk := await reader.read(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
    return b"".join(chunks)


async def healthz(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    """One keep-alive GET /healthz on an open connection; its status line."""
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: parley\r\n\r\n")
    status = await asyncio.wait_for(reader.readline(), 5)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    await reader.readexactly(length)
    return status


# --- read deadlines ----------------------------------------------------------------------------
async def test_a_silent_connection_is_closed_at_the_header_deadline(api: ApiServer) -> None:
    reader, writer = await connect(api.port)
    assert await read_until_closed(reader, HEADER_TIMEOUT + SLACK) == b""
    writer.close()


async def test_a_request_head_that_never_completes_is_closed(api: ApiServer) -> None:
    reader, writer = await connect(api.port)
    writer.write(b"POST /CreateRoom HTTP/1.1\r\nHost: parley\r\nContent-Type: application/json\r\n")
    assert await read_until_closed(reader, HEADER_TIMEOUT + SLACK) == b""
    writer.close()


class Trickle:
    """Writes ``data`` one byte per ``every`` s in the background, as a slowloris client does."""

    def __init__(self, writer: asyncio.StreamWriter, data: bytes, every: float = 0.5) -> None:
        self.sent = 0
        self._task = asyncio.create_task(self._run(writer, data, every))

    async def _run(self, writer: asyncio.StreamWriter, data: bytes, every: float) -> None:
        with contextlib.suppress(OSError):  # the server hung up
            for byte in data:
                writer.write(bytes([byte]))
                await writer.drain()
                self.sent += 1
                await asyncio.sleep(every)

    def stop(self) -> None:
        self._task.cancel()


async def test_a_slowloris_trickling_its_head_is_closed_by_the_deadline_not_an_idle_timer(api: ApiServer) -> None:
    reader, writer = await connect(api.port)
    head = b"GET /healthz HTTP/1.1\r\nHost: parley\r\nX-Padding: " + b"a" * 40 + b"\r\n\r\n"
    trickle = Trickle(writer, head)  # a byte every 0.5 s: never idle for the 1 s bound; ~40 s to finish
    try:
        assert await read_until_closed(reader, HEADER_TIMEOUT + SLACK) == b""
        assert 2 <= trickle.sent < len(head)  # closed while the client was still sending its head
    finally:
        trickle.stop()
        writer.close()


async def test_a_body_that_never_completes_is_closed_without_an_answer(api: ApiServer) -> None:
    # Headers complete, 10 of 100 body bytes: the request reached the handler, which waits for the rest.
    reader, writer = await connect(api.port)
    writer.write(
        b"POST /CreateRoom HTTP/1.1\r\nHost: parley\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n" + b'{"name": "'
    )
    assert await read_until_closed(reader, BODY_TIMEOUT + SLACK) == b""
    writer.close()


async def test_a_body_trickled_byte_by_byte_is_closed_at_the_body_deadline(api: ApiServer) -> None:
    reader, writer = await connect(api.port)
    writer.write(b"POST /CreateRoom HTTP/1.1\r\nHost: parley\r\nContent-Length: 100\r\n\r\n")
    trickle = Trickle(writer, b" " * 100)
    try:
        assert await read_until_closed(reader, BODY_TIMEOUT + SLACK) == b""
        assert 2 <= trickle.sent < 100
    finally:
        trickle.stop()
        writer.close()


async def test_a_keep_alive_connection_idle_past_the_deadline_is_closed(api: ApiServer) -> None:
    reader, writer = await connect(api.port)
    assert b" 200 " in await healthz(reader, writer)
    assert await read_until_closed(reader, HEADER_TIMEOUT + SLACK) == b""
    writer.close()


# --- per-client connection cap -----------------------------------------------------------------
async def test_the_connection_over_the_per_client_cap_is_closed_at_once_and_the_others_work(
    capped_api: ApiServer,
) -> None:
    api = capped_api
    held = [await connect(api.port) for _ in range(CAP)]
    for reader, writer in held:
        assert b" 200 " in await healthz(reader, writer)
    reader, writer = await connect(api.port)
    assert await read_until_closed(reader, SLACK) == b""  # on accept, long before the 60 s deadline
    writer.close()
    for reader, writer in held:  # the held ones still answer
        assert b" 200 " in await healthz(reader, writer)
    held_reader, held_writer = held.pop()
    held_writer.close()
    await read_until_closed(held_reader, SLACK)
    await asyncio.sleep(0.1)  # the server sees the close
    reader, writer = await connect(api.port)  # a freed slot admits a new connection
    assert b" 200 " in await healthz(reader, writer)
    for _, w in [*held, (reader, writer)]:
        w.close()


# --- real clients are unaffected --------------------------------------------------------------
async def test_boto3_works_including_after_its_pooled_connection_was_closed_idle(api: ApiServer) -> None:
    ivschat = boto3.client(
        "ivschat",
        region_name=api.settings.region,
        endpoint_url=f"http://127.0.0.1:{api.port}",
        aws_access_key_id=api.settings.access_key_id,
        aws_secret_access_key=api.settings.secret_access_key,
        config=Config(retries={"max_attempts": 1}),  # no retry may hide a dropped request
    )
    room = await asyncio.to_thread(ivschat.create_room, name="limits")
    await asyncio.sleep(HEADER_TIMEOUT + 0.5)  # the server closes the idle pooled connection
    assert (await asyncio.to_thread(ivschat.get_room, identifier=room["arn"]))["name"] == "limits"
    tags = {f"key{i}": "v" * 200 for i in range(40)}  # an 8 KB body, sent at once, is not cut off
    tagged = await asyncio.to_thread(ivschat.create_room, name="tagged", tags=tags)
    assert (await asyncio.to_thread(ivschat.get_room, identifier=tagged["arn"]))["tags"] == tags


# --- parley api and parley dev read the settings ------------------------------------------------
PROCESS_HEADER_TIMEOUT = 2.0
LIMIT_ENV = {
    "PARLEY_API_HEADER_TIMEOUT": str(PROCESS_HEADER_TIMEOUT),
    "PARLEY_API_BODY_TIMEOUT": "1",
    "PARLEY_API_MAX_CONNECTIONS_PER_CLIENT": "2",
}


async def check_served_limits(port: int) -> None:
    silent = await connect(port)
    assert await read_until_closed(silent[0], PROCESS_HEADER_TIMEOUT + SLACK) == b""
    silent[1].close()
    held = [await connect(port) for _ in range(2)]
    for reader, writer in held:
        assert b" 200 " in await healthz(reader, writer)
    reader, writer = await connect(port)
    assert await read_until_closed(reader, PROCESS_HEADER_TIMEOUT / 2) == b""  # refused, not timed out
    for reader, writer in held:  # the admitted ones still work
        assert b" 200 " in await healthz(reader, writer)
    for _, w in [*held, (reader, writer)]:
        w.close()


@pytest.mark.e2e
async def test_parley_api_applies_the_limits(settings: Settings, redis_url: str, amqp_url: str) -> None:
    cluster = Cluster(settings, redis_url, amqp_url, extra_env=LIMIT_ENV)
    try:
        port = cluster.start_api()
        await check_served_limits(port)
    finally:
        cluster.stop()
        cluster.destroy()


@contextlib.contextmanager
def parley_dev(env: dict[str, str]) -> Iterator[int]:
    port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    command = [sys.executable, "-m", "parley", "dev", "--api-port", str(port), "--gateway-port", str(free_port())]
    log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"parley-dev-{port}.log", "wb")
    process = subprocess.Popen(command, cwd=ROOT, env=base | env, stdout=log, stderr=log)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        yield port
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=15)
        log.close()
        assert code == 0, f"parley dev exited {code}; see {log.name}"


@pytest.mark.e2e
async def test_parley_dev_applies_the_limits() -> None:
    with parley_dev(LIMIT_ENV) as port:
        await check_served_limits(port)


def test_unbounded_settings_are_refused() -> None:
    from api.limits import ServerLimits

    with pytest.raises(ValueError, match="PARLEY_API_HEADER_TIMEOUT"):
        ServerLimits.from_settings(Settings(api_header_timeout=0))
    with pytest.raises(ValueError, match="PARLEY_API_BODY_TIMEOUT"):
        ServerLimits.from_settings(Settings(api_body_timeout=-1))
    assert ServerLimits.from_settings(Settings(api_max_connections_per_client=0)).max_connections_per_client == 0
