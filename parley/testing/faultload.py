"""Steady chat traffic through a distributed cluster while a fault happens, and what it cost.

Owns: one room's load (a sender on one gateway, a receiver on each), well-behaved reconnects (a
client whose socket dies reconnects to the other gateway with a fresh token and fills its gap with
GET_HISTORY), and the tally: sent, accepted, errors by code, missed live / after catch-up,
accepted but absent from history at the end, duplicates and recovery times.

Must not: cause faults itself (the caller does, between :meth:`FaultLoad.start` and
:meth:`FaultLoad.finish`) or touch engines directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from parley.testing.chatclient import ChatClient
from parley.testing.cluster import Cluster

PREFIX = "seq:"


def seq_of(frame: dict[str, Any]) -> int | None:
    content = frame.get("Content", "")
    return int(content[len(PREFIX) :]) if isinstance(content, str) and content.startswith(PREFIX) else None


@dataclass
class Peer:
    """One client of the room, reconnecting across gateways when its socket dies."""

    name: str
    gateways: list[str]  # preferred first; reconnects go round the list
    caps: list[str]
    client: ChatClient | None = None
    live: Counter[str] = field(default_factory=Counter)  # message Id -> deliveries (live and history)
    live_seqs: set[int] = field(default_factory=set)
    caught_seqs: set[int] = field(default_factory=set)  # from GET_HISTORY after a reconnect
    arrivals: list[float] = field(default_factory=list)  # monotonic time of each live MESSAGE
    ids: dict[int, str] = field(default_factory=dict)  # seq -> message Id, as delivered
    last_id: str = ""
    reconnects: int = 0


@dataclass
class Tally:
    sent: int
    accepted: set[int]
    errors: Counter[str]
    missed_live: dict[str, int]
    missed_after: dict[str, int]
    missed_seqs: dict[str, set[int]]  # accepted and never delivered, live or by catch-up
    sent_at: dict[int, float]  # seq -> when it was sent (monotonic)
    duplicates: int
    send_recovery: float | None
    delivery_recovery: float | None
    reconnects: int
    accepted_ids: list[str]
    # accepted (echoed) but absent from the room's history at the end: a lost write only when the
    # room's history holds every message sent (historyMaxMessages, 50 by default, trims the rest)
    not_in_history: set[int]


class FaultLoad:
    def __init__(self, cluster: Cluster, room_arn: str, rate: float = 8.0) -> None:
        self.cluster, self.room_arn, self.rate = cluster, room_arn, rate
        self.sender = Peer("sender", ["gwA", "gwB"], ["SEND_MESSAGE"])
        self.receivers = [Peer("recvA", ["gwA", "gwB"], []), Peer("recvB", ["gwB", "gwA"], [])]
        self.pending: dict[str, tuple[int, float]] = {}  # RequestId -> (seq, sent at)
        self.accepted: dict[int, tuple[str, float, float]] = {}  # seq -> (message Id, sent at, echoed at)
        self.errors: Counter[str] = Counter()
        self.sent = 0
        self.sent_at: dict[int, float] = {}
        self.fault_end: float | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.sending = True

    async def _connect(self, peer: Peer, deadline: float) -> None:
        attempt = 0
        while True:
            gateway = peer.gateways[attempt % len(peer.gateways)]
            attempt += 1
            try:
                token = await asyncio.to_thread(self.cluster.token, self.room_arn, peer.name, peer.caps)
                peer.client = await ChatClient.open(self.cluster.ws_url(gateway), token)
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.3)

    async def _catch_up(self, peer: Peer) -> None:
        """GET_HISTORY after the last Id seen, page by page, into ``caught_seqs``."""
        assert peer.client is not None
        while peer.last_id:
            request_id = await peer.client.send("GET_HISTORY", After=peer.last_id, Limit=100)
            page = await peer.client.expect(Type="HISTORY", RequestId=request_id, timeout=10)
            for message in page["Messages"]:
                self._delivered(peer, message, live=False)
            if len(page["Messages"]) < 100:
                return

    def _delivered(self, peer: Peer, frame: dict[str, Any], live: bool) -> None:
        seq = seq_of(frame)
        if seq is None:
            return
        peer.live[frame["Id"]] += 1
        peer.ids[seq] = frame["Id"]
        peer.last_id = frame["Id"]
        (peer.live_seqs if live else peer.caught_seqs).add(seq)
        if live:
            peer.arrivals.append(time.monotonic())

    async def _read(self, peer: Peer) -> None:
        """Read frames forever; on a dead socket reconnect elsewhere and catch up."""
        while True:
            assert peer.client is not None
            try:
                frame = await peer.client.recv(timeout=3600)
            except Exception:
                peer.client = None
                peer.reconnects += 1
                await self._connect(peer, time.monotonic() + 30)
                await self._catch_up(peer)
                continue
            if frame.get("Type") == "MESSAGE":
                pending = self.pending.pop(frame.get("RequestId", ""), None)
                if pending is not None:
                    self.accepted[pending[0]] = (frame["Id"], pending[1], time.monotonic())
                if peer is not self.sender:
                    self._delivered(peer, frame, live=True)
            elif frame.get("Type") == "ERROR" and frame.get("RequestId") in self.pending:
                self.pending.pop(frame["RequestId"])
                self.errors[str(frame.get("ErrorCode"))] += 1

    async def _produce(self) -> None:
        seq = 0
        while self.sending:
            self.sent += 1
            client = self.sender.client
            if client is None:
                self.errors["no connection"] += 1
            else:
                request_id = f"r{seq}"
                self.pending[request_id] = (seq, self.sent_at.setdefault(seq, time.monotonic()))
                try:
                    await client.send_message(f"{PREFIX}{seq}", RequestId=request_id)
                except Exception:
                    pass  # the reader notices the dead socket; this one stays pending (no reply)
            seq += 1
            await asyncio.sleep(1 / self.rate)

    async def start(self) -> None:
        deadline = time.monotonic() + 20
        for peer in [self.sender, *self.receivers]:
            await self._connect(peer, deadline)
        await asyncio.sleep(0.3)  # both gateways' room subscriptions settle
        self.tasks = [asyncio.create_task(self._read(p)) for p in [self.sender, *self.receivers]]
        self.tasks.append(asyncio.create_task(self._produce()))

    def mark_fault_end(self) -> None:
        self.fault_end = time.monotonic()

    async def finish(self, quiet: float = 3.0, unanswered: float = 10.0, timeout: float = 30.0) -> Tally:
        """Stop sending; wait until nothing arrives for ``quiet`` s and every send is answered (or
        ``unanswered`` s passed: a send on a socket that died never is), at most ``timeout``; tally."""
        self.sending = False
        stopped = time.monotonic()
        deadline = stopped + timeout
        while time.monotonic() < deadline:
            now = time.monotonic()
            last = max([stopped] + [t for p in self.receivers for t in p.arrivals])
            answered = not self.pending or now - stopped > unanswered
            if now - last > quiet and answered and all(p.client is not None for p in self.receivers):
                break
            await asyncio.sleep(0.2)
        history = await self._history()
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(BaseException):
                await task
        for peer in [self.sender, *self.receivers]:
            if peer.client is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(peer.client.close(), 5)
        return self._tally(history)

    async def _history(self) -> dict[int, str]:
        """Every message the room's history keeps (seq -> Id), read by a fresh client."""
        kept: dict[int, str] = {}
        first = min(self.accepted, default=None)
        if first is None:
            return kept
        probe = Peer("probe", ["gwB", "gwA"], [])
        await self._connect(probe, time.monotonic() + 15)
        probe.last_id = kept[first] = self.accepted[first][0]
        await self._catch_up(probe)
        assert probe.client is not None
        await probe.client.close()
        return kept | probe.ids

    def _tally(self, history: dict[int, str]) -> Tally:
        accepted = set(self.accepted) | set(history)
        end = self.fault_end or 0.0
        sends_after = [echoed for _, sent_at, echoed in self.accepted.values() if sent_at >= end]
        firsts = [min((t for t in p.arrivals if t >= end), default=end - 1) for p in self.receivers]
        resumed = self.fault_end is not None and min(firsts) >= end  # every receiver got something after
        self.errors["no reply"] += sum(1 for seq, _ in self.pending.values() if seq not in accepted)
        if not self.errors["no reply"]:
            del self.errors["no reply"]
        ids = [history.get(seq) or self.accepted[seq][0] for seq in sorted(accepted)]
        return Tally(
            sent=self.sent,
            accepted=accepted,
            errors=self.errors,
            missed_live={p.name: len(accepted - p.live_seqs) for p in self.receivers},
            missed_after={p.name: len(accepted - p.live_seqs - p.caught_seqs) for p in self.receivers},
            missed_seqs={p.name: accepted - p.live_seqs - p.caught_seqs for p in self.receivers},
            sent_at=self.sent_at,
            duplicates=sum(n - 1 for p in self.receivers for n in p.live.values() if n > 1),
            send_recovery=min(sends_after) - end if sends_after and self.fault_end else None,
            delivery_recovery=max(firsts) - end if resumed else None,
            reconnects=sum(p.reconnects for p in [self.sender, *self.receivers]),
            accepted_ids=ids,
            not_in_history=accepted - set(history),
        )
