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

Only loopback targets unless ``--allow-remote``; the run is bounded (``--duration`` at most
``MAX_DURATION_S``, plus bounded setup and drain). One progress line per second on stderr; a
final report on stdout, as JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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

MAX_DURATION_S = 3600.0
SETUP_TIMEOUT_S = 300.0
MESSAGE_MARK = '{"Type":"MESSAGE"'
ERROR_MARK = '{"Type":"ERROR"'
LATENCY_MARK = "lt|"


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


@dataclass
class ClientState:
    index: int
    room: int
    ws: Any = None
    received: int = 0
    measure: bool = True


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


class LoadTest:
    def __init__(self, options: Options) -> None:
        self.o = options
        self.stats = Stats()
        self.clients: list[ClientState] = []
        self.room_arns: list[str] = []
        self.room_sent = [0] * options.rooms
        self.room_rejected = [0] * options.rooms
        self.room_clients = [0] * options.rooms
        self.request_room: dict[str, int] = {}
        self.open_connections = 0
        self.connect_seconds = 0.0
        self.send_seconds = 0.0

    # --- setup ---------------------------------------------------------------------------
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

    async def _tokens(self, api: IvsChatApi) -> list[str]:
        limit = asyncio.Semaphore(50)

        async def token(client: ClientState) -> str:
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
                return result["token"]

        return list(await asyncio.gather(*(token(c) for c in self.clients)))

    async def _connect_all(self, tokens: list[str]) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidStatus

        limit = asyncio.Semaphore(self.o.connect_concurrency)

        async def open_one(client: ClientState, token: str) -> None:
            url = self.o.gateways[client.index % len(self.o.gateways)]
            async with limit:
                try:
                    client.ws = await connect(
                        url,
                        subprotocols=[token],  # type: ignore[list-item]
                        open_timeout=30,
                        compression=None,
                        ping_interval=None,
                        max_queue=None,
                    )
                except InvalidStatus as exc:
                    self._count(self.stats.connect_failures, str(exc.response.status_code))
                    return
                except (OSError, TimeoutError) as exc:
                    self._count(self.stats.connect_failures, type(exc).__name__)
                    return
            self.open_connections += 1
            self.room_clients[client.room] += 1

        started = time.perf_counter()
        await asyncio.gather(*(open_one(c, t) for c, t in zip(self.clients, tokens, strict=True)))
        self.connect_seconds = time.perf_counter() - started

    @staticmethod
    def _count(counter: dict[str, int], key: str, n: int = 1) -> None:
        counter[key] = counter.get(key, 0) + n

    # --- traffic -------------------------------------------------------------------------
    async def _read(self, client: ClientState) -> None:
        ws, stats = client.ws, self.stats
        try:
            async for raw in ws:
                if raw.startswith(MESSAGE_MARK):
                    client.received += 1
                    stats.delivered += 1
                    if client.measure:
                        mark = raw.find(LATENCY_MARK)
                        if mark >= 0:
                            end = raw.find("|", mark + 3)
                            latency = time.time() * 1000 - float(raw[mark + 3 : end])
                            stats.latency.add(latency)
                            stats.window.add(latency)
                elif raw.startswith(ERROR_MARK):
                    frame = json.loads(raw)
                    self._count(stats.errors_by_code, str(frame.get("ErrorCode")))
                    room = self.request_room.get(frame.get("RequestId") or "")
                    if room is not None:
                        self.room_rejected[room] += 1
        except Exception as exc:  # ConnectionClosed and friends
            code = getattr(getattr(exc, "rcvd", None), "code", None)
            self._count(stats.disconnects, str(code) if code else type(exc).__name__)
        finally:
            self.open_connections -= 1

    async def _send(self, senders: list[ClientState], deadline: float) -> None:
        padding = "x" * max(self.o.message_bytes - 24, 0)
        interval = 1.0 / self.o.rate
        started = time.perf_counter()
        sent = 0
        while (now := time.perf_counter()) < deadline:
            due = min(int((now - started) / interval) + 1, sent + 10_000)
            while sent < due:
                client = senders[sent % len(senders)]
                request_id = f"m{sent}"
                content = f"{LATENCY_MARK}{time.time() * 1000:.3f}|{padding}"
                self.request_room[request_id] = client.room
                with contextlib.suppress(Exception):  # a closed sender shows up as a disconnect
                    await client.ws.send(
                        f'{{"Action":"SEND_MESSAGE","RequestId":"{request_id}","Content":"{content}"}}'
                    )
                    self.room_sent[client.room] += 1
                sent += 1
                self.stats.sent += 1
            await asyncio.sleep(0.001)
        self.send_seconds = time.perf_counter() - started

    async def _progress(self) -> None:
        tty = sys.stderr.isatty()
        last_sent = last_delivered = 0
        while True:
            await asyncio.sleep(1.0)
            s = self.stats
            window, s.window = s.window, LatencyHistogram()
            p99 = window.percentile(99)
            line = (
                f"conns {self.open_connections:>6}  sent/s {s.sent - last_sent:>7}  "
                f"delivered/s {s.delivered - last_delivered:>8}  "
                f"p99 {'-' if p99 is None else f'{p99:.1f} ms':>9}  "
                f"errors {sum(s.errors_by_code.values()) + sum(s.disconnects.values()):>5}"
            )
            last_sent, last_delivered = s.sent, s.delivered
            print(("\r" + line) if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True)

    def _expected(self, client: ClientState) -> int:
        return self.room_sent[client.room] - self.room_rejected[client.room]

    def _all_delivered(self) -> bool:
        return all(c.received >= self._expected(c) for c in self.clients if c.ws is not None)

    async def run(self) -> dict[str, Any]:
        o = self.o
        if o.rooms < 1 or o.clients < o.rooms:
            raise SystemExit("parley loadtest: need --rooms >= 1 and --clients >= --rooms")
        self.clients = [ClientState(i, i % o.rooms) for i in range(o.clients)]
        for client in self.clients[o.latency_clients or o.clients :]:
            client.measure = False
        senders_wanted = o.senders or max(o.rooms, math.ceil(o.rate / 5))
        senders = self.clients[: min(senders_wanted, o.clients)]

        async with IvsChatApi(o.api, o.access_key, o.secret_key, o.region) as api:
            setup_started = time.perf_counter()
            async with asyncio.timeout(SETUP_TIMEOUT_S):
                await self._create_rooms(api)
                tokens = await self._tokens(api)
                token_seconds = time.perf_counter() - setup_started
                await self._connect_all(tokens)
            readers = [asyncio.create_task(self._read(c)) for c in self.clients if c.ws is not None]
            senders = [c for c in senders if c.ws is not None]
            progress = asyncio.create_task(self._progress()) if o.progress else None
            try:
                await asyncio.sleep(0.5)  # let gateways finish subscribing the rooms
                if senders and o.rate > 0:
                    await self._send(senders, time.perf_counter() + min(o.duration, MAX_DURATION_S))
                else:
                    await asyncio.sleep(min(o.duration, MAX_DURATION_S))
                    self.send_seconds = min(o.duration, MAX_DURATION_S)
                delivered_in_window = self.stats.delivered
                drain_deadline = time.perf_counter() + o.drain
                while not self._all_delivered() and time.perf_counter() < drain_deadline:
                    await asyncio.sleep(0.05)
                drain_seconds = o.drain - max(drain_deadline - time.perf_counter(), 0)
            finally:
                if progress is not None:
                    progress.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await progress
                    if sys.stderr.isatty():
                        print(file=sys.stderr)
                still_open = self.open_connections
                await asyncio.gather(*(c.ws.close() for c in self.clients if c.ws is not None), return_exceptions=True)
                await asyncio.gather(*readers, return_exceptions=True)
                if not o.keep_rooms:
                    for arn in self.room_arns:
                        with contextlib.suppress(Exception):
                            await api.call("DeleteRoom", {"identifier": arn})

        s = self.stats
        expected = sum(self._expected(c) for c in self.clients if c.ws is not None)
        lost = sum(max(self._expected(c) - c.received, 0) for c in self.clients if c.ws is not None)
        connected = sum(1 for c in self.clients if c.ws is not None)
        return {
            "clients": o.clients,
            "rooms": o.rooms,
            "gateways": len(o.gateways),
            "senders": len(senders),
            "connections": connected,
            "connections_open_at_end": still_open,
            "connect_failures": s.connect_failures,
            "token_seconds": round(token_seconds, 3),
            "connect_seconds": round(self.connect_seconds, 3),
            "connects_per_s": round(connected / self.connect_seconds, 1) if self.connect_seconds else None,
            "duration_s": round(self.send_seconds, 3),
            "target_rate": o.rate,
            "sent": s.sent,
            "sent_per_s": round(s.sent / self.send_seconds, 1) if self.send_seconds else 0,
            "accepted": sum(self.room_sent) - sum(self.room_rejected),
            "deliveries": s.delivered,
            "deliveries_expected": expected,
            "deliveries_per_s": round(delivered_in_window / self.send_seconds, 1) if self.send_seconds else 0,
            "drain_s": round(drain_seconds, 3),
            "latency_ms": {
                "samples": s.latency.total,
                "p50": s.latency.percentile(50),
                "p95": s.latency.percentile(95),
                "p99": s.latency.percentile(99),
                "max": round(s.latency.max_ms, 2) if s.latency.total else None,
            },
            "errors_by_code": s.errors_by_code,
            "disconnects": s.disconnects,
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


def options_from_args(args: argparse.Namespace) -> Options:
    access_key = os.environ.get("PARLEY_ACCESS_KEY_ID") or os.environ.get("AWS_ACCESS_KEY_ID", "")
    secret_key = os.environ.get("PARLEY_SECRET_ACCESS_KEY") or os.environ.get("AWS_SECRET_ACCESS_KEY", "")
    if not access_key or not secret_key:
        raise SystemExit(
            "parley loadtest: set PARLEY_ACCESS_KEY_ID and PARLEY_SECRET_ACCESS_KEY (the api's SigV4 keys)"
        )
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
