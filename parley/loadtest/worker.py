"""One load test worker: its share of the clients and of the rate, on one event loop.

Owns: the chat connections (through :mod:`parley.loadtest.wsclient`), the send loop, the
receive path and what the worker reports over its :class:`~parley.loadtest.channel.Channel`.
The receive path keeps frames as bytes: MESSAGE and ERROR are matched by prefix, the send time
is sliced out of MESSAGE frames of timing clients and only ERROR frames are JSON-decoded.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
from dataclasses import dataclass

from parley.loadtest import wsclient
from parley.loadtest.channel import Channel, Connected, Event, Final, Snapshot
from parley.loadtest.histogram import LatencyHistogram
from parley.loadtest.options import MAX_DURATION_S
from parley.loadtest.stats import Stats, count
from shared.clock import precise_now_ms

MESSAGE_MARK = '{"Type":"MESSAGE"'
ERROR_MARK = '{"Type":"ERROR"'
LATENCY_MARK = "lt|"
MESSAGE_PREFIX = MESSAGE_MARK.encode()
ERROR_PREFIX = ERROR_MARK.encode()
LATENCY_PREFIX = LATENCY_MARK.encode()
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


@dataclass
class ClientState:
    index: int
    room: int
    ws: wsclient.LeanClient | None = None
    received: int = 0
    measure: bool = True
    token: str = ""
    sender: bool = False


class Worker:
    def __init__(self, spec: WorkerSpec, channel: Channel) -> None:
        self.spec = spec
        self.channel = channel
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

    def _put(self, kind: str, payload: None | Connected | Snapshot | Final) -> None:
        self.channel.out.put((kind, self.spec.worker, payload))

    @staticmethod
    async def _wait(event: Event) -> None:
        while not event.is_set():
            await asyncio.sleep(0.01)

    async def _connect_all(self) -> None:
        limit = asyncio.Semaphore(max(self.spec.connect_concurrency, 1))
        gateways = self.spec.gateways

        async def open_one(client: ClientState) -> None:
            url = gateways[client.index % len(gateways)]
            async with limit:
                try:
                    client.ws = ws = await wsclient.connect(
                        url, client.token, functools.partial(self._on_message, client), timeout=30
                    )
                except wsclient.HandshakeFailed as exc:
                    count(self.stats.connect_failures, str(exc.status or "HandshakeFailed"))
                    return
                except (OSError, TimeoutError) as exc:
                    count(self.stats.connect_failures, type(exc).__name__)
                    return
            self.open_connections += 1
            ws.closed.add_done_callback(functools.partial(self._on_closed, ws))

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
                    latency = precise_now_ms() - float(raw[mark + 3 : end])
                    stats.latency.add(latency)
                    stats.window.add(latency)
        elif raw.startswith(ERROR_PREFIX):
            frame = json.loads(raw)
            count(stats.errors_by_code, str(frame.get("ErrorCode")))
            request_id = frame.get("RequestId") or ""
            if request_id.startswith("r") and "." in request_id:  # r<room>.<n>
                with contextlib.suppress(ValueError, IndexError):
                    self.room_rejected[int(request_id[1 : request_id.index(".")])] += 1

    def _on_closed(self, ws: wsclient.LeanClient, _: asyncio.Future[None]) -> None:
        self.open_connections -= 1
        reason = ws.abnormal_close
        if reason is not None:
            count(self.stats.disconnects, reason)

    async def _send(self, senders: list[tuple[int, wsclient.LeanClient]], deadline: float) -> None:
        padding = "x" * max(self.spec.message_bytes - 24, 0)
        interval = 1.0 / self.spec.rate
        started = time.perf_counter()
        sent = 0
        while (now := time.perf_counter()) < deadline:
            due = min(int((now - started) / interval) + 1, sent + 10_000)
            while sent < due:
                room, ws = senders[sent % len(senders)]
                content = f"{LATENCY_MARK}{precise_now_ms():.3f}|{padding}"
                with contextlib.suppress(Exception):  # a closed sender shows up as a disconnect
                    ws.send_text(f'{{"Action":"SEND_MESSAGE","RequestId":"r{room}.{sent}","Content":"{content}"}}')
                    self.room_sent[room] += 1
                sent += 1
                self.stats.sent += 1
            await asyncio.sleep(0.001)
        self.send_seconds = time.perf_counter() - started

    def _snapshot(self) -> Snapshot:
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
            "window": window.state(),
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
        await self._wait(self.channel.connect)
        await self._connect_all()
        senders = [(c.room, c.ws) for c in self.clients if c.sender and c.ws is not None]
        self._put("connected", {"connect_seconds": self.connect_seconds})
        reporter = asyncio.create_task(self._report())
        try:
            await self._wait(self.channel.start)
            if senders and self.spec.rate > 0:
                await self._send(senders, time.perf_counter() + min(self.spec.duration, MAX_DURATION_S))
            else:
                await asyncio.sleep(min(self.spec.duration, MAX_DURATION_S))
                self.send_seconds = min(self.spec.duration, MAX_DURATION_S)
            self.delivered_in_window = self.stats.delivered
            self._put("sent", self._snapshot())
            await self._wait(self.channel.stop)
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
                "latency": s.latency.state(),
                "errors_by_code": s.errors_by_code,
                "disconnects": s.disconnects,
            },
        )
