"""``parley loadtest``: drive simulated chat clients through real gateways and report what came back.

It creates rooms and chat tokens through the control plane (SigV4-signed with botocore, keys
from ``PARLEY_ACCESS_KEY_ID`` / ``PARLEY_SECRET_ACCESS_KEY`` or ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY``), opens ``--clients`` WebSockets spread over ``--rooms`` rooms and
the ``--gateway`` URLs, then sends SEND_MESSAGE at ``--rate`` messages/s in total for
``--duration`` seconds from the sending clients, and counts every MESSAGE every client gets.

Each message carries its client send time, so latency is measured client to client (send →
receive through gateway, bus, router, bus, gateway). Every client of a room, the sender
included, must get every accepted message of the room; what did not arrive after a drain
period is reported as lost. Errors are counted by ErrorCode (a rejected message is not lost).

``--procs N`` splits the clients (client i goes to worker i mod N, so every worker holds clients
of every room) and the senders with their share of the rate over N spawned worker processes, each
with its own event loop (uvloop); this process keeps the control plane, starts the workers'
connects and sends together, decides the drain from the workers' snapshots (a message sent
through one worker must reach the clients of its room in every worker) and merges their reports:
counts and errors are summed, latency histograms merged, connects/s and sent/s taken over the
slowest worker. ``--procs 1`` runs the same worker coroutine in this process. The receive path
keeps frames as bytes: MESSAGE and ERROR are matched by prefix, the send time is sliced out of
MESSAGE frames of timing clients (``--latency-clients``) and only ERROR frames are JSON-decoded.

Only loopback targets unless ``--allow-remote``; the run is bounded (``--duration`` at most
``MAX_DURATION_S``, plus bounded setup and drain). One progress line per second on stderr; a
final report on stdout, as JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import ipaddress
import json
import math
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from parley import wsclient

MAX_DURATION_S = 3600.0
SETUP_TIMEOUT_S = 300.0
MESSAGE_MARK = '{"Type":"MESSAGE"'
ERROR_MARK = '{"Type":"ERROR"'
LATENCY_MARK = "lt|"
MESSAGE_PREFIX = MESSAGE_MARK.encode()
ERROR_PREFIX = ERROR_MARK.encode()
LATENCY_PREFIX = LATENCY_MARK.encode()


# --- latency histogram: 1% log buckets, constant memory --------------------------------------
class LatencyHistogram:
    GROWTH = math.log(1.01)

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.total = 0
        self.max_ms = 0.0

    def add(self, ms: float) -> None:
        ms = max(ms, 0.0)
        index = int(math.log1p(ms * 10) / self.GROWTH)  # 0.1 ms floor, 1% relative precision
        self.counts[index] = self.counts.get(index, 0) + 1
        self.total += 1
        if ms > self.max_ms:
            self.max_ms = ms

    def merge(self, other: LatencyHistogram) -> None:
        for index, count in other.counts.items():
            self.counts[index] = self.counts.get(index, 0) + count
        self.total += other.total
        self.max_ms = max(self.max_ms, other.max_ms)

    def percentile(self, p: float) -> float | None:
        if not self.total:
            return None
        rank = max(1, math.ceil(self.total * p / 100))
        seen = 0
        for index in sorted(self.counts):
            seen += self.counts[index]
            if seen >= rank:
                return round(min(math.expm1((index + 1) * self.GROWTH) / 10, self.max_ms), 2)
        return round(self.max_ms, 2)


# --- control plane client: SigV4 with botocore, HTTP with aiohttp ---------------------------
class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code = status, code


class IvsChatApi:
    """The few IVS Chat operations the load test needs, SigV4-signed like boto3 does."""

    def __init__(self, endpoint: str, access_key: str, secret_key: str, region: str) -> None:
        from botocore.credentials import Credentials

        self.endpoint = endpoint.rstrip("/")
        self.region = region
        self.credentials = Credentials(access_key, secret_key)
        self._session: Any = None

    async def __aenter__(self) -> IvsChatApi:
        import aiohttp

        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._session.close()

    def signed_headers(self, operation: str, body: bytes) -> dict[str, str]:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        request = AWSRequest(
            method="POST",
            url=f"{self.endpoint}/{operation}",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        SigV4Auth(self.credentials, "ivschat", self.region).add_auth(request)
        return dict(request.headers.items())

    async def call(self, operation: str, params: dict[str, Any], *, retries: int = 8) -> dict[str, Any]:
        body = json.dumps(params).encode()
        delay = 0.1
        for attempt in range(retries + 1):
            headers = self.signed_headers(operation, body)
            async with self._session.post(f"{self.endpoint}/{operation}", data=body, headers=headers) as response:
                payload = await response.read()
                if response.status < 300:
                    return json.loads(payload) if payload else {}
                code = response.headers.get("x-amzn-ErrorType", "").split(":", 1)[0] or str(response.status)
                if response.status == 429 and attempt < retries:  # ThrottlingException: IVS's TPS limits
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 2.0)
                    continue
                raise ApiError(response.status, code, payload.decode(errors="replace")[:200])
        raise AssertionError("unreachable")


# --- the run -------------------------------------------------------------------------------
@dataclass
class Options:
    api: str = "http://127.0.0.1:8081"
    gateways: list[str] = field(default_factory=lambda: ["ws://127.0.0.1:8080"])
    clients: int = 100
    rooms: int = 10
    rate: float = 100.0  # SEND_MESSAGE per second, all senders together
    duration: float = 10.0
    senders: int = 0  # 0: enough that each sends at most 5/s (the per-connection quota is 10/s)
    room_rate: int = 100  # the rooms' maximumMessageRatePerSecond (IVS allows 1-100)
    message_bytes: int = 32
    connect_concurrency: int = 200
    drain: float = 5.0
    latency_clients: int = 0  # 0: every client measures latency; N: only the first N clients
    keep_rooms: bool = False
    allow_remote: bool = False
    access_key: str = ""
    secret_key: str = ""
    region: str = "us-east-1"
    progress: bool = True
    procs: int = 1  # worker processes sharing the clients and the rate


@dataclass
class ClientState:
    index: int
    room: int
    ws: wsclient.LeanClient | None = None
    received: int = 0
    measure: bool = True
    token: str = ""
    sender: bool = False


@dataclass
class Stats:
    sent: int = 0
    delivered: int = 0
    connect_failures: dict[str, int] = field(default_factory=dict)
    errors_by_code: dict[str, int] = field(default_factory=dict)
    disconnects: dict[str, int] = field(default_factory=dict)
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    window: LatencyHistogram = field(default_factory=LatencyHistogram)


def check_targets(urls: list[str], allow_remote: bool) -> None:
    """Refuse anything but loopback addresses unless explicitly allowed."""
    if allow_remote:
        return
    for url in urls:
        host = urlsplit(url).hostname
        if not host:
            raise SystemExit(f"parley loadtest: no host in {url!r}")
        try:
            infos = socket.getaddrinfo(host, None)
        except socket.gaierror as exc:
            raise SystemExit(f"parley loadtest: cannot resolve {host!r}: {exc}") from exc
        for info in infos:
            address = ipaddress.ip_address(info[4][0].split("%", 1)[0])
            if not address.is_loopback:
                raise SystemExit(
                    f"parley loadtest: {url} resolves to {address}, not loopback; pass --allow-remote to load it"
                )


def _count(counter: dict[str, int], key: str, n: int = 1) -> None:
    counter[key] = counter.get(key, 0) + n


def _merge_counts(into: dict[str, int], other: dict[str, int]) -> None:
    for key, n in other.items():
        _count(into, key, n)


# --- one worker: its share of the clients and of the rate, on its own event loop ------------
# The coordinator and the workers talk through a queue (worker → coordinator: tuples
# ``(kind, worker_id, payload)``) and three events (connect, start, stop). Within one process
# (``--procs 1``) these are a SimpleQueue and threading.Events; across processes the
# multiprocessing equivalents. Both are polled, so the same coroutine serves both cases.
SNAPSHOT_INTERVAL_S = 0.25


@dataclass
class WorkerSpec:
    worker: int
    gateways: list[str]
    rooms: int
    clients: list[tuple[int, int, str, bool, bool]]  # index, room, token, measure, sender
    rate: float  # this worker's share
    duration: float
    message_bytes: int
    connect_concurrency: int


class Worker:
    def __init__(self, spec: WorkerSpec, out: Any, connect: Any, start: Any, stop: Any) -> None:
        self.spec = spec
        self.out, self.connect_event, self.start_event, self.stop_event = out, connect, start, stop
        self.stats = Stats()
        self.clients = [
            ClientState(index, room, token=token, measure=measure, sender=sender)
            for index, room, token, measure, sender in spec.clients
        ]
        self.room_sent = [0] * spec.rooms
        self.room_rejected = [0] * spec.rooms
        self.open_connections = 0
        self.connect_seconds = 0.0
        self.send_seconds = 0.0
        self.delivered_in_window = 0

    def _put(self, kind: str, payload: Any) -> None:
        self.out.put((kind, self.spec.worker, payload))

    @staticmethod
    async def _wait(event: Any) -> None:
        while not event.is_set():
            await asyncio.sleep(0.01)

    async def _connect_all(self) -> None:
        limit = asyncio.Semaphore(max(self.spec.connect_concurrency, 1))
        gateways = self.spec.gateways

        async def open_one(client: ClientState) -> None:
            url = gateways[client.index % len(gateways)]
            async with limit:
                try:
                    client.ws = await wsclient.connect(
                        url, client.token, functools.partial(self._on_message, client), timeout=30
                    )
                except wsclient.HandshakeFailed as exc:
                    _count(self.stats.connect_failures, str(exc.status or "HandshakeFailed"))
                    return
                except (OSError, TimeoutError) as exc:
                    _count(self.stats.connect_failures, type(exc).__name__)
                    return
            self.open_connections += 1
            client.ws.closed.add_done_callback(functools.partial(self._on_closed, client))

        started = time.perf_counter()
        await asyncio.gather(*(open_one(c) for c in self.clients))
        self.connect_seconds = time.perf_counter() - started

    def _on_message(self, client: ClientState, raw: bytes) -> None:
        """Receive path kept cheap: frames stay bytes, MESSAGE is matched by prefix and only the
        latency mark is sliced out (no JSON decoding); only ERROR frames are decoded."""
        stats = self.stats
        if raw.startswith(MESSAGE_PREFIX):
            client.received += 1
            stats.delivered += 1
            if client.measure:
                mark = raw.find(LATENCY_PREFIX)
                if mark >= 0:
                    end = raw.find(b"|", mark + 3)
                    latency = time.time() * 1000 - float(raw[mark + 3 : end])
                    stats.latency.add(latency)
                    stats.window.add(latency)
        elif raw.startswith(ERROR_PREFIX):
            frame = json.loads(raw)
            _count(stats.errors_by_code, str(frame.get("ErrorCode")))
            request_id = frame.get("RequestId") or ""
            if request_id.startswith("r") and "." in request_id:  # r<room>.<n>
                with contextlib.suppress(ValueError, IndexError):
                    self.room_rejected[int(request_id[1 : request_id.index(".")])] += 1

    def _on_closed(self, client: ClientState, _: asyncio.Future[None]) -> None:
        self.open_connections -= 1
        reason = client.ws.abnormal_close
        if reason is not None:
            _count(self.stats.disconnects, reason)

    async def _send(self, senders: list[ClientState], deadline: float) -> None:
        padding = "x" * max(self.spec.message_bytes - 24, 0)
        interval = 1.0 / self.spec.rate
        started = time.perf_counter()
        sent = 0
        while (now := time.perf_counter()) < deadline:
            due = min(int((now - started) / interval) + 1, sent + 10_000)
            while sent < due:
                client = senders[sent % len(senders)]
                content = f"{LATENCY_MARK}{time.time() * 1000:.3f}|{padding}"
                with contextlib.suppress(Exception):  # a closed sender shows up as a disconnect
                    client.ws.send_text(
                        f'{{"Action":"SEND_MESSAGE","RequestId":"r{client.room}.{sent}","Content":"{content}"}}'
                    )
                    self.room_sent[client.room] += 1
                sent += 1
                self.stats.sent += 1
            await asyncio.sleep(0.001)
        self.send_seconds = time.perf_counter() - started

    def _snapshot(self) -> dict[str, Any]:
        s = self.stats
        window, s.window = s.window, LatencyHistogram()
        min_received: dict[int, int] = {}
        for c in self.clients:
            if c.ws is not None and c.received < min_received.get(c.room, c.received + 1):
                min_received[c.room] = c.received
        return {
            "open": self.open_connections,
            "sent": s.sent,
            "delivered": s.delivered,
            "errors": sum(s.errors_by_code.values()) + sum(s.disconnects.values()),
            "window": (window.counts, window.total, window.max_ms),
            "room_sent": self.room_sent,
            "room_rejected": self.room_rejected,
            "min_received": min_received,
        }

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(SNAPSHOT_INTERVAL_S)
            self._put("snapshot", self._snapshot())

    async def run(self) -> None:
        self._put("ready", None)
        await self._wait(self.connect_event)
        await self._connect_all()
        senders = [c for c in self.clients if c.sender and c.ws is not None]
        self._put("connected", {"connect_seconds": self.connect_seconds})
        reporter = asyncio.create_task(self._report())
        try:
            await self._wait(self.start_event)
            if senders and self.spec.rate > 0:
                await self._send(senders, time.perf_counter() + min(self.spec.duration, MAX_DURATION_S))
            else:
                await asyncio.sleep(min(self.spec.duration, MAX_DURATION_S))
                self.send_seconds = min(self.spec.duration, MAX_DURATION_S)
            self.delivered_in_window = self.stats.delivered
            self._put("sent", self._snapshot())
            await self._wait(self.stop_event)
        finally:
            reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporter
            still_open = self.open_connections
            await asyncio.gather(*(c.ws.close() for c in self.clients if c.ws is not None), return_exceptions=True)
        s = self.stats
        self._put(
            "final",
            {
                "senders": len(senders),
                "connections": sum(1 for c in self.clients if c.ws is not None),
                "open_at_end": still_open,
                "connect_failures": s.connect_failures,
                "connect_seconds": self.connect_seconds,
                "send_seconds": self.send_seconds,
                "sent": s.sent,
                "delivered": s.delivered,
                "delivered_in_window": self.delivered_in_window,
                "room_sent": self.room_sent,
                "room_rejected": self.room_rejected,
                "received": [(c.room, c.received) for c in self.clients if c.ws is not None],
                "latency": (s.latency.counts, s.latency.total, s.latency.max_ms),
                "errors_by_code": s.errors_by_code,
                "disconnects": s.disconnects,
            },
        )


def _histogram(state: tuple[dict[int, int], int, float]) -> LatencyHistogram:
    histogram = LatencyHistogram()
    histogram.counts, histogram.total, histogram.max_ms = dict(state[0]), state[1], state[2]
    return histogram


def _worker_process(spec: WorkerSpec, out: Any, connect: Any, start: Any, stop: Any) -> None:
    """Entry point of a spawned worker process: its own (uv)loop, errors reported, not lost."""
    from parley.runtime import run as run_loop

    _raise_nofile(len(spec.clients) + 256)
    worker = Worker(spec, out, connect, start, stop)
    try:
        run_loop(worker.run())
    except BaseException as exc:  # noqa: BLE001 - report anything to the coordinator
        out.put(("failed", spec.worker, f"{type(exc).__name__}: {exc}"))
        raise


# --- the coordinator: control plane, workers, merged report --------------------------------
class LoadTest:
    def __init__(self, options: Options) -> None:
        self.o = options
        self.room_arns: list[str] = []
        self.snapshots: dict[int, dict[str, Any]] = {}

    async def _create_rooms(self, api: IvsChatApi) -> None:
        async def create(index: int) -> str:
            room = await api.call(
                "CreateRoom",
                {
                    "name": f"loadtest-{index}",
                    "maximumMessageRatePerSecond": self.o.room_rate,
                    "tags": {"loadtest": "1"},
                },
            )
            return room["arn"]

        self.room_arns = list(await asyncio.gather(*(create(i) for i in range(self.o.rooms))))

    async def _tokens(self, api: IvsChatApi, clients: list[ClientState]) -> None:
        limit = asyncio.Semaphore(50)

        async def token(client: ClientState) -> None:
            async with limit:
                result = await api.call(
                    "CreateChatToken",
                    {
                        "roomIdentifier": self.room_arns[client.room],
                        "userId": f"load-{client.index}",
                        "capabilities": ["SEND_MESSAGE"],
                        "sessionDurationInMinutes": 180,
                    },
                )
                client.token = result["token"]

        await asyncio.gather(*(token(c) for c in clients))

    def _specs(self, clients: list[ClientState]) -> list[WorkerSpec]:
        o = self.o
        procs = max(1, min(o.procs, len(clients)))
        total_senders = sum(1 for c in clients if c.sender)
        specs = []
        for w in range(procs):
            mine = clients[w::procs]
            senders = sum(1 for c in mine if c.sender)
            specs.append(
                WorkerSpec(
                    worker=w,
                    gateways=o.gateways,
                    rooms=o.rooms,
                    clients=[(c.index, c.room, c.token, c.measure, c.sender) for c in mine],
                    rate=o.rate * senders / total_senders if total_senders else 0.0,
                    duration=o.duration,
                    message_bytes=o.message_bytes,
                    connect_concurrency=math.ceil(o.connect_concurrency / procs),
                )
            )
        return specs

    async def _collect(self, queue: Any, until: str, count: int, alive: Any, timeout: float) -> dict[int, Any]:
        """Poll the workers' queue (recording snapshots, printing progress) until ``count``
        messages of kind ``until`` arrived."""
        import queue as queue_module

        got: dict[int, Any] = {}
        deadline = time.perf_counter() + timeout
        while len(got) < count:
            try:
                kind, worker, payload = queue.get_nowait()
            except queue_module.Empty:
                if time.perf_counter() > deadline:
                    raise TimeoutError(
                        f"parley loadtest: workers did not report {until!r} in {timeout:.0f} s"
                    ) from None
                alive()
                self._tick()
                await asyncio.sleep(0.01)
                continue
            if kind == "failed":
                raise RuntimeError(f"parley loadtest: worker {worker} failed: {payload}")
            if kind in ("snapshot", "sent"):
                self.snapshots[worker] = payload
                self._window.merge(_histogram(payload["window"]))
            if kind == until:
                got[worker] = payload
        return got

    def _tick(self) -> None:
        if not self.o.progress or not self.snapshots or time.perf_counter() < self._next_progress:
            return
        self._next_progress += 1.0
        snaps = self.snapshots.values()
        sent, delivered = sum(s["sent"] for s in snaps), sum(s["delivered"] for s in snaps)
        window, self._window = self._window, LatencyHistogram()
        p99 = window.percentile(99)
        line = (
            f"conns {sum(s['open'] for s in snaps):>6}  sent/s {sent - self._last[0]:>7}  "
            f"delivered/s {delivered - self._last[1]:>8}  "
            f"p99 {'-' if p99 is None else f'{p99:.1f} ms':>9}  "
            f"errors {sum(s['errors'] for s in snaps):>5}"
        )
        self._last = (sent, delivered)
        tty = sys.stderr.isatty()
        print(("\r" + line) if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True)

    def _all_delivered(self, procs: int) -> bool:
        if len(self.snapshots) < procs:
            return False
        snaps = list(self.snapshots.values())
        for room in range(self.o.rooms):
            expected = sum(s["room_sent"][room] - s["room_rejected"][room] for s in snaps)
            for s in snaps:
                if s["min_received"].get(room, expected) < expected:
                    return False
        return True

    async def run(self) -> dict[str, Any]:
        o = self.o
        if o.rooms < 1 or o.clients < o.rooms:
            raise SystemExit("parley loadtest: need --rooms >= 1 and --clients >= --rooms")
        clients = [ClientState(i, i % o.rooms) for i in range(o.clients)]
        for client in clients[o.latency_clients or o.clients :]:
            client.measure = False
        senders_wanted = o.senders or max(o.rooms, math.ceil(o.rate / 5))
        for client in clients[: min(senders_wanted, o.clients)]:
            client.sender = True
        self._window = LatencyHistogram()
        self._last = (0, 0)
        self._next_progress = math.inf

        async with IvsChatApi(o.api, o.access_key, o.secret_key, o.region) as api:
            setup_started = time.perf_counter()
            try:
                async with asyncio.timeout(SETUP_TIMEOUT_S):
                    await self._create_rooms(api)
                    await self._tokens(api, clients)
                token_seconds = time.perf_counter() - setup_started
                specs = self._specs(clients)
                del clients
                report = await self._drive(specs, token_seconds)
            finally:
                if not o.keep_rooms:
                    for arn in self.room_arns:
                        with contextlib.suppress(Exception):
                            await api.call("DeleteRoom", {"identifier": arn})
        return report

    async def _drive(self, specs: list[WorkerSpec], token_seconds: float) -> dict[str, Any]:
        import queue as queue_module
        import threading

        o, procs = self.o, len(specs)
        processes: list[Any] = []
        tasks: list[asyncio.Task[None]] = []
        if procs == 1:  # in this process and loop: no spawn cost, same code path
            out: Any = queue_module.SimpleQueue()
            connect, start, stop = threading.Event(), threading.Event(), threading.Event()
            tasks = [asyncio.create_task(Worker(specs[0], out, connect, start, stop).run())]
        else:
            import multiprocessing

            ctx = multiprocessing.get_context("spawn")
            out = ctx.Queue()
            connect, start, stop = ctx.Event(), ctx.Event(), ctx.Event()
            processes = [
                ctx.Process(target=_worker_process, args=(spec, out, connect, start, stop), daemon=True)
                for spec in specs
            ]
            for process in processes:
                process.start()

        def alive() -> None:
            for task in tasks:
                if task.done() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            for process in processes:
                if process.exitcode not in (None, 0):
                    raise RuntimeError(f"parley loadtest: worker process exited with {process.exitcode}")

        duration = min(o.duration, MAX_DURATION_S)
        try:
            await self._collect(out, "ready", procs, alive, SETUP_TIMEOUT_S)
            connect.set()
            connected = await self._collect(out, "connected", procs, alive, SETUP_TIMEOUT_S)
            await asyncio.sleep(0.5)  # let gateways finish subscribing the rooms
            start.set()
            self._next_progress = time.perf_counter() + 1.0
            await self._collect(out, "sent", procs, alive, duration + 60)
            drain_started = time.perf_counter()
            drain_deadline = drain_started + o.drain
            while not self._all_delivered(procs) and time.perf_counter() < drain_deadline:
                with contextlib.suppress(TimeoutError):  # snapshots arrive every 0.25 s
                    await self._collect(out, "snapshot", procs, alive, 0.3)
            drain_seconds = min(time.perf_counter() - drain_started, o.drain)
            stop.set()
            finals = await self._collect(out, "final", procs, alive, 120)
        finally:
            stop.set()
            connect.set()
            start.set()
            for task in tasks:
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(task, 120)
            for process in processes:
                await asyncio.to_thread(process.join, 30)
                if process.is_alive():
                    process.terminate()
            if o.progress and sys.stderr.isatty():
                print(file=sys.stderr)
        return self._merge(list(finals.values()), connected, token_seconds, drain_seconds)

    def _merge(
        self, finals: list[dict[str, Any]], connected: dict[int, Any], token_seconds: float, drain_seconds: float
    ) -> dict[str, Any]:
        o = self.o
        rooms = o.rooms
        room_sent = [sum(f["room_sent"][r] for f in finals) for r in range(rooms)]
        room_rejected = [sum(f["room_rejected"][r] for f in finals) for r in range(rooms)]
        expected = lost = 0
        for f in finals:
            for room, received in f["received"]:
                want = room_sent[room] - room_rejected[room]
                expected += want
                lost += max(want - received, 0)
        latency = LatencyHistogram()
        connect_failures: dict[str, int] = {}
        errors_by_code: dict[str, int] = {}
        disconnects: dict[str, int] = {}
        for f in finals:
            latency.merge(_histogram(f["latency"]))
            _merge_counts(connect_failures, f["connect_failures"])
            _merge_counts(errors_by_code, f["errors_by_code"])
            _merge_counts(disconnects, f["disconnects"])
        connections = sum(f["connections"] for f in finals)
        connect_seconds = max(c["connect_seconds"] for c in connected.values())
        send_seconds = max(f["send_seconds"] for f in finals)
        sent = sum(f["sent"] for f in finals)
        return {
            "clients": o.clients,
            "rooms": rooms,
            "gateways": len(o.gateways),
            "procs": len(finals),
            "senders": sum(f["senders"] for f in finals),
            "connections": connections,
            "connections_open_at_end": sum(f["open_at_end"] for f in finals),
            "connect_failures": connect_failures,
            "token_seconds": round(token_seconds, 3),
            "connect_seconds": round(connect_seconds, 3),
            "connects_per_s": round(connections / connect_seconds, 1) if connect_seconds else None,
            "duration_s": round(send_seconds, 3),
            "target_rate": o.rate,
            "sent": sent,
            "sent_per_s": round(sent / send_seconds, 1) if send_seconds else 0,
            "accepted": sum(room_sent) - sum(room_rejected),
            "deliveries": sum(f["delivered"] for f in finals),
            "deliveries_expected": expected,
            "deliveries_per_s": (
                round(sum(f["delivered_in_window"] for f in finals) / send_seconds, 1) if send_seconds else 0
            ),
            "drain_s": round(drain_seconds, 3),
            "latency_ms": {
                "samples": latency.total,
                "p50": latency.percentile(50),
                "p95": latency.percentile(95),
                "p99": latency.percentile(99),
                "max": round(latency.max_ms, 2) if latency.total else None,
            },
            "errors_by_code": errors_by_code,
            "disconnects": disconnects,
            "lost": lost,
        }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api", default=Options.api, help="control-plane URL (default %(default)s)")
    parser.add_argument(
        "--gateway",
        action="append",
        dest="gateways",
        help="gateway ws:// URL; repeat for several (default ws://127.0.0.1:8080)",
    )
    parser.add_argument(
        "--clients", type=int, default=Options.clients, help="WebSocket connections (default %(default)s)"
    )
    parser.add_argument(
        "--rooms", type=int, default=Options.rooms, help="rooms the clients spread over (default %(default)s)"
    )
    parser.add_argument(
        "--rate", type=float, default=Options.rate, help="SEND_MESSAGE/s in total (default %(default)s)"
    )
    parser.add_argument(
        "--duration", type=float, default=Options.duration, help=f"seconds of sending (max {MAX_DURATION_S:.0f})"
    )
    parser.add_argument("--senders", type=int, default=0, help="sending clients (default: enough for <= 5 msg/s each)")
    parser.add_argument("--room-rate", type=int, default=Options.room_rate, help="rooms' maximumMessageRatePerSecond")
    parser.add_argument("--message-bytes", type=int, default=Options.message_bytes)
    parser.add_argument("--connect-concurrency", type=int, default=Options.connect_concurrency)
    parser.add_argument("--drain", type=float, default=Options.drain, help="seconds to wait for the tail after sending")
    parser.add_argument(
        "--latency-clients", type=int, default=0, help="only the first N clients time messages (0: all)"
    )
    parser.add_argument("--keep-rooms", action="store_true", help="do not delete the rooms afterwards")
    parser.add_argument("--allow-remote", action="store_true", help="allow non-loopback targets")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    parser.add_argument("--no-progress", action="store_true", help="no per-second progress line")
    parser.add_argument(
        "--procs",
        type=int,
        default=Options.procs,
        help="worker processes sharing the clients and the rate, each with its own event loop (default 1)",
    )


def options_from_args(args: argparse.Namespace) -> Options:
    access_key = os.environ.get("PARLEY_ACCESS_KEY_ID") or os.environ.get("AWS_ACCESS_KEY_ID", "")
    secret_key = os.environ.get("PARLEY_SECRET_ACCESS_KEY") or os.environ.get("AWS_SECRET_ACCESS_KEY", "")
    if not access_key or not secret_key:
        raise SystemExit(
            "parley loadtest: set PARLEY_ACCESS_KEY_ID and PARLEY_SECRET_ACCESS_KEY (the api's SigV4 keys)"
        )
    if args.procs < 1:
        raise SystemExit("parley loadtest: --procs must be >= 1")
    if args.duration <= 0 or args.duration > MAX_DURATION_S:
        raise SystemExit(f"parley loadtest: --duration must be in (0, {MAX_DURATION_S:.0f}]")
    return Options(
        api=args.api,
        gateways=args.gateways or ["ws://127.0.0.1:8080"],
        clients=args.clients,
        rooms=args.rooms,
        rate=args.rate,
        duration=args.duration,
        senders=args.senders,
        room_rate=args.room_rate,
        message_bytes=args.message_bytes,
        connect_concurrency=args.connect_concurrency,
        drain=args.drain,
        latency_clients=args.latency_clients,
        keep_rooms=args.keep_rooms,
        allow_remote=args.allow_remote,
        access_key=access_key,
        secret_key=secret_key,
        region=os.environ.get("PARLEY_REGION") or os.environ.get("AWS_REGION", "us-east-1"),
        progress=not args.no_progress,
        procs=args.procs,
    )


async def run(options: Options) -> dict[str, Any]:
    check_targets([options.api, *options.gateways], options.allow_remote)
    _raise_nofile(options.clients + 256)
    hard_cap = min(options.duration, MAX_DURATION_S) + SETUP_TIMEOUT_S + options.drain + 60
    async with asyncio.timeout(hard_cap):
        return await LoadTest(options).run()


def format_report(report: dict[str, Any]) -> str:
    lat = report["latency_ms"]
    lines = [
        f"connections   {report['connections']}/{report['clients']} over {report['rooms']} rooms, "
        f"{report['gateways']} gateway(s); connect {report['connect_seconds']} s ({report['connects_per_s']}/s)",
        f"sent          {report['sent']} in {report['duration_s']} s "
        f"({report['sent_per_s']}/s, target {report['target_rate']})",
        f"deliveries    {report['deliveries']} of {report['deliveries_expected']} expected "
        f"({report['deliveries_per_s']}/s during sending)",
        f"latency ms    p50 {lat['p50']}  p95 {lat['p95']}  p99 {lat['p99']}  max {lat['max']}  "
        f"({lat['samples']} samples)",
        f"errors        {report['errors_by_code'] or 'none'}; connect failures {report['connect_failures'] or 'none'}; "
        f"disconnects {report['disconnects'] or 'none'}",
        f"lost          {report['lost']}",
    ]
    return "\n".join(lines)


def _raise_nofile(wanted: int) -> None:
    with contextlib.suppress(Exception):
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < wanted:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(wanted, soft), hard), hard))


def main(args: argparse.Namespace) -> None:
    from parley.runtime import run as run_loop

    options = options_from_args(args)
    result: dict[str, Any] = {}

    async def go() -> None:
        result.update(await run(options))

    run_loop(go())
    print(json.dumps(result) if args.json else format_report(result), flush=True)
