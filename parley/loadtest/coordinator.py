"""The load test's coordinator: rooms and tokens through the control plane, then the workers.

Owns: creating (and afterwards deleting) the rooms and chat tokens, splitting the clients and
the rate into :class:`~parley.loadtest.worker.WorkerSpec` s (client i goes to worker i mod N, so
every worker holds clients of every room), starting the workers' connects and sends together,
and deciding the drain from their snapshots: a message sent through one worker must reach the
clients of its room in every worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import queue
import time
from typing import Any

from parley.loadtest.channel import Connected, Final, Snapshot
from parley.loadtest.control_plane import IvsChatApi
from parley.loadtest.options import MAX_DURATION_S, SETUP_TIMEOUT_S, Options
from parley.loadtest.pool import WorkerPool
from parley.loadtest.progress import Progress
from parley.loadtest.report import build_report
from parley.loadtest.worker import ClientState, WorkerSpec


class LoadTest:
    def __init__(self, options: Options) -> None:
        self.o = options
        self.room_arns: list[str] = []
        self.snapshots: dict[int, Snapshot] = {}
        self.progress = Progress(options.progress)

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
            arn: str = room["arn"]
            return arn

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

    async def _collect(self, pool: WorkerPool, until: str, count: int, timeout: float) -> dict[int, Any]:
        """Poll the workers' queue (recording snapshots, printing progress) until ``count``
        messages of kind ``until`` arrived; their payloads by worker."""
        got: dict[int, Any] = {}
        deadline = time.perf_counter() + timeout
        while len(got) < count:
            try:
                kind, worker, payload = pool.channel.out.get_nowait()
            except queue.Empty:
                if time.perf_counter() > deadline:
                    raise TimeoutError(
                        f"parley loadtest: workers did not report {until!r} in {timeout:.0f} s"
                    ) from None
                pool.check_alive()
                self.progress.tick(self.snapshots.values())
                await asyncio.sleep(0.01)
                continue
            if kind == "failed":
                raise RuntimeError(f"parley loadtest: worker {worker} failed: {payload}")
            if kind in ("snapshot", "sent"):
                self.snapshots[worker] = payload
                self.progress.record(payload)
            if kind == until:
                got[worker] = payload
        return got

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
        o, procs = self.o, len(specs)
        pool = WorkerPool(specs)
        channel = pool.channel
        duration = min(o.duration, MAX_DURATION_S)
        try:
            await self._collect(pool, "ready", procs, SETUP_TIMEOUT_S)
            channel.connect.set()
            connected: dict[int, Connected] = await self._collect(pool, "connected", procs, SETUP_TIMEOUT_S)
            await asyncio.sleep(0.5)  # let gateways finish subscribing the rooms
            channel.start.set()
            self.progress.start()
            await self._collect(pool, "sent", procs, duration + 60)
            drain_started = time.perf_counter()
            drain_deadline = drain_started + o.drain
            while not self._all_delivered(procs) and time.perf_counter() < drain_deadline:
                with contextlib.suppress(TimeoutError):  # snapshots arrive every 0.25 s
                    await self._collect(pool, "snapshot", procs, 0.3)
            drain_seconds = min(time.perf_counter() - drain_started, o.drain)
            channel.stop.set()
            finals: dict[int, Final] = await self._collect(pool, "final", procs, 120)
        finally:
            await pool.close()
            self.progress.finish()
        return build_report(o, list(finals.values()), connected.values(), token_seconds, drain_seconds)
