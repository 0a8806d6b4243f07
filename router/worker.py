"""The router's loop: consume shard actions, decide per room in order, publish, then ack.

Each shard's consumer hands actions over one at a time in queue order; they are queued per
room, and each room with work has one drain task, so rooms proceed concurrently while one
room's actions are decided and published strictly in order. A drain takes everything pending
for its room as one batch: one Store round trip to skip redeliveries, one publish, then acks.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import secrets
from collections import deque
from collections.abc import Awaitable
from typing import Any

import structlog

from router.account import AccountRates
from router.decide import Outcome, RoomState, decide, reviewed
from router.dedupe import DEFAULT_WINDOW_MS, ShardDedupe, TrackedAck
from router.members import MemberCache
from router.ports import RouterBus, RouterStore
from router.presence import PresenceSweeper
from router.rooms import RoomCache
from router.shards import owned_shards
from shared import metrics
from shared.clock import now_ms
from shared.config import Settings
from shared.engine.actions import Ack, ShardConsumer
from shared.engine.fanout import Subscription
from shared.features import inbox
from shared.protocol.envelope import (
    NOT_LOGGED,
    ActionEnvelope,
    ConnectionNotice,
    ControlNotice,
    ControlTopic,
    DeliveryItem,
    Kind,
    RoomDelivery,
)
from shared.protocol.models import Room
from shared.protocol.review import FallbackReviewer, Reviewer

log = structlog.get_logger("router")

MAX_BATCH = 256
ROUTERS_GROUP = "routers"
HEARTBEAT_S = 1.0
ROUTER_TTL_MS = 5000


class Router:
    def __init__(
        self,
        settings: Settings,
        store: RouterStore,
        bus: RouterBus,
        *,
        router_id: str | None = None,
        all_shards: bool = False,
        reviewer: Reviewer | None = None,
        dedupe_window_ms: int = DEFAULT_WINDOW_MS,
    ) -> None:
        self.settings = settings
        self.store = store
        self.bus = bus
        self.router_id = router_id or f"router-{secrets.token_hex(4)}"
        self._all_shards = all_shards  # embedded mode: one router, no membership to agree on
        self.reviewer = reviewer or FallbackReviewer()
        self._rooms = RoomCache(store)
        self._members = MemberCache(store)  # parley extension: members-only rooms
        self._sweeper = PresenceSweeper(store, bus)  # parley extension: LEFT for dead gateways
        self._account = AccountRates(  # account-wide quotas, this router's share of them
            settings.account_send_message_rate,
            settings.account_delete_message_rate,
            settings.account_disconnect_user_rate,
        )
        self._states: dict[str, RoomState] = {}
        self._pending: dict[str, deque[tuple[ActionEnvelope, Ack, bool]]] = {}
        self._draining: dict[str, asyncio.Task[None]] = {}
        self._consumers: dict[int, ShardConsumer] = {}
        # Redelivery de-duplication per consumed shard: when its oldest done marks may go.
        self._dedupe: dict[int, ShardDedupe] = {}
        self._dedupe_window_ms = dedupe_window_ms
        self._rotations: asyncio.Task[None] | None = None
        self._control: Subscription | None = None
        self._membership: asyncio.Task[None] | None = None
        self._stopping = False

    # --- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        self._control = await self.bus.fanout.subscribe(self.router_id, None, None, self._on_control)
        self._sweeper.start()
        if self._all_shards:
            await self._rebalance(set(range(self.bus.actions.shards)))
        else:
            await self._heartbeat_and_rebalance()
            self._membership = asyncio.create_task(self._membership_loop(), name="router-membership")
        self._rotations = asyncio.create_task(self._rotation_loop(), name="router-done-marks")
        log.info("router started", router_id=self.router_id, shards=sorted(self._consumers))

    async def stop(self) -> None:
        self._stopping = True
        for task in (self._membership, self._rotations):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._sweeper.stop()
        await self._rebalance(set())
        with contextlib.suppress(Exception):  # leave at once so others take the shards now
            await self.store.counters.report(ROUTERS_GROUP, self.router_id, 0, 1)
        for task in list(self._draining.values()):
            task.cancel()
        await asyncio.gather(*self._draining.values(), return_exceptions=True)
        if self._control is not None:
            await self._control.close()

    @property
    def shards(self) -> set[int]:
        return set(self._consumers)

    async def _membership_loop(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            self._forget_idle_rooms()
            try:
                await self._heartbeat_and_rebalance()
            except Exception:  # the Store may be briefly unreachable; keep what we have
                log.exception("router membership update failed")

    def _forget_idle_rooms(self) -> None:
        """Drop per-room state nobody needs (no work queued, rate window empty), so a router
        that has seen millions of rooms holds only the active ones."""
        now = now_ms()
        idle = [
            room_id for room_id, state in self._states.items() if room_id not in self._pending and state.rate.idle(now)
        ]
        for room_id in idle:
            del self._states[room_id]

    async def _heartbeat_and_rebalance(self) -> None:
        await self.store.counters.report(ROUTERS_GROUP, self.router_id, 1, ROUTER_TTL_MS)
        live = list(await self.store.counters.reports(ROUTERS_GROUP))
        self._account.share(len(live))
        await self._rebalance(owned_shards(self.router_id, live, self.bus.actions.shards))

    async def _rebalance(self, wanted: set[int]) -> None:
        # the gauge follows each shard as it goes or comes: acquiring several (a channel and a
        # queue declare each) takes a while, and this router consumes the first ones meanwhile
        for shard in sorted(set(self._consumers) - wanted):
            await self._consumers.pop(shard).stop(settle=functools.partial(self._settle, shard))
            self._dedupe.pop(shard, None)  # what it did not ack is the next owner's to check
            metrics.ROUTER_OWNED_SHARDS.set(len(self._consumers))
            log.info("shard released", router_id=self.router_id, shard=shard)
        for shard in sorted(wanted - set(self._consumers)):
            self._dedupe[shard] = ShardDedupe(shard, self._dedupe_window_ms)
            self._consumers[shard] = await self.bus.actions.consume_shard(shard, self._on_action)
            metrics.ROUTER_OWNED_SHARDS.set(len(self._consumers))
            log.info("shard acquired", router_id=self.router_id, shard=shard)

    async def _settle(self, shard: int) -> None:
        """A released shard, before its unacked actions go back to the broker: drop its rooms'
        actions not yet started (unacked, so its next router gets them) and let the batches in
        flight finish, so their done marks are written before their redelivered copies reach
        the next router (which would otherwise publish them a second time)."""
        in_flight = []
        for room_id, pending in self._pending.items():
            if self.bus.actions.shard_of(room_id) != shard:
                continue
            metrics.ROUTER_PENDING_ACTIONS.dec(len(pending))
            pending.clear()
            if (task := self._draining.get(room_id)) is not None:
                in_flight.append(task)
        if in_flight:
            await asyncio.wait(in_flight)

    async def _rotation_loop(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            try:
                await self._rotate_done_marks()
            except Exception:  # the Store may be briefly unreachable; rotate on a later tick
                log.exception("router done-mark rotation failed")

    async def _rotate_done_marks(self) -> None:
        """Drop each consumed shard's oldest done-mark generation once nothing may come back
        that it holds (``router/dedupe.py``): the marks follow the redelivery window, not the rate."""
        now = now_ms()
        for shard, dedupe in list(self._dedupe.items()):
            if dedupe.rotation_due(now) and dedupe.generation is not None:
                current = await self.store.done_marks.rotate(shard, dedupe.generation)
                if self._dedupe.get(shard) is dedupe:
                    dedupe.rotated(current, now)

    def _on_control(self, data: bytes) -> None:
        try:
            notice = ControlNotice.decode(data)
        except Exception:
            log.warning("undecodable control notice dropped")
            return
        if notice.topic == ControlTopic.ROOM_CHANGED:
            self._rooms.invalidate(notice.subject)
        elif notice.topic == ControlTopic.MEMBERS_CHANGED:
            self._members.invalidate(notice.subject)

    # --- per-room ordering ----------------------------------------------------------------
    async def _on_action(self, action: ActionEnvelope, ack: Ack, redelivered: bool) -> None:
        room_id = action.room_id
        pending = self._pending.get(room_id)
        if pending is None:
            pending = self._pending[room_id] = deque()
        dedupe = self._dedupe.get(self.bus.actions.shard_of(room_id))
        if dedupe is not None:
            ack = dedupe.delivered(redelivered, ack, now_ms())
        pending.append((action, ack, redelivered))
        metrics.ROUTER_PENDING_ACTIONS.inc()
        if room_id not in self._draining:
            self._draining[room_id] = asyncio.create_task(self._drain(room_id))

    async def _drain(self, room_id: str) -> None:
        pending = self._pending[room_id]
        try:
            while pending and not self._stopping:
                batch = [pending.popleft() for _ in range(min(len(pending), MAX_BATCH))]
                await self._process_with_retry(room_id, batch)
                metrics.ROUTER_PENDING_ACTIONS.dec(len(batch))
        finally:
            del self._draining[room_id]
            if not pending:
                del self._pending[room_id]
            elif not self._stopping:  # arrived while we were finishing
                self._draining[room_id] = asyncio.create_task(self._drain(room_id))

    async def _process_with_retry(self, room_id: str, batch: list[tuple[ActionEnvelope, Ack, bool]]) -> None:
        delay = 0.05
        while not self._stopping:
            try:
                await self._process(room_id, batch)
                return
            except Exception:
                # Redis or the broker is unavailable: keep the batch (and the room's order) and
                # retry; nothing is acked, so a crash meanwhile redelivers it. Part of it may have
                # been published (a reply lost after Redis ran the pipeline), so the retry checks
                # the done marks as a redelivery would.
                batch = [(action, ack, True) for action, ack, _ in batch]
                log.exception("room batch failed; retrying", room_id=room_id, actions=len(batch))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _process(self, room_id: str, batch: list[tuple[ActionEnvelope, Ack, bool]]) -> None:
        state = self._states.get(room_id)
        room = await self._rooms.get(room_id)
        if state is None:
            state = self._states[room_id] = RoomState(room)
        state.configure(room)

        shard = self.bus.actions.shard_of(room_id)
        dedupe = self._dedupe.get(shard)
        if dedupe is None:  # not consumed through _rebalance (a direct call): same rules
            dedupe = self._dedupe[shard] = ShardDedupe(shard, self._dedupe_window_ms)
        if dedupe.generation is None:  # read after this consumer's first delivery, see router/dedupe.py
            dedupe.loaded(await self.store.done_marks.generation(shard), now_ms())
        frame_ids = [action.frame_id for action, _, _ in batch]
        # Only a redelivered action can have been published before (by a router that died
        # before acking it); first deliveries skip the Store round trip.
        if any(redelivered for _, _, redelivered in batch):
            already = await self.store.done_marks.check(shard, dedupe.generation or 0, frame_ids)
        else:
            already = [False] * len(batch)

        decided: list[tuple[ActionEnvelope, Outcome]] = []
        refused = await self._members.refusals(room, [action for action, _, _ in batch])  # members-only rooms
        for (action, _, _), seen in zip(batch, already, strict=True):
            if seen:
                continue
            metrics.count_request(action.protocol, action.kind)
            if action.received_ms:
                metrics.ROUTER_ACTION_AGE_SECONDS.observe(max(now_ms() - action.received_ms, 0) / 1000)
            decided.append((action, refused.get(action.frame_id) or decide(action, state, self._account)))
        if room is not None and any(outcome.needs_review for _, outcome in decided):
            decided = await self._review(room, decided)

        items: list[DeliveryItem] = []
        errors: list[tuple[str, ConnectionNotice]] = []
        for _, outcome in decided:
            if outcome.delivery is not None:
                items.append(outcome.delivery)
            if outcome.error is not None:
                errors.append((outcome.gateway_id, outcome.error))

        metrics.ROUTER_BATCH_SIZE.observe(len(batch))
        # One ordered round of writes (Store and Bus share one Redis pipeline, see
        # shared/engine/redis/pipeline.py): started in order now, awaited in order below. History
        # first: a client catching up subscribes, then reads history, so anything published
        # after that read was already live for it (no gap). Then the room publish, the senders'
        # errors, and the done marks, which must never exist for an unpublished action.
        writes: list[Awaitable[Any]] = []
        log_delivery = b""
        if room is not None and items:
            writes += self._record_history(room, decided)
            if room.inbox_per_user or room.member_log:  # the seed fronts' rooms; never an IVS room's hot path
                writes += await self._keep_per_user(room, decided)
        if items:
            delivery = RoomDelivery(room_id, items).encode()
            writes.append(self.bus.fanout.publish_rooms([(room_id, delivery)]))
            if room is not None and room.logging_configuration_identifiers:
                # Client events (parley extension) are never logged.
                logged = [item for item in items if item.log_type != NOT_LOGGED]
                if logged:
                    log_delivery = delivery if len(logged) == len(items) else RoomDelivery(room_id, logged).encode()
        writes += [self.bus.fanout.publish_gateway(gateway_id, notice.encode()) for gateway_id, notice in errors]
        if not log_delivery:
            if not self.store.ordered_across_keys:  # Redis Cluster: the marks' shard is another slot
                await _in_order(writes)
                writes = []
            writes.append(self._mark_done(dedupe, batch, frame_ids))
        await _in_order(writes)
        if log_delivery:
            # Chat logs: queued durably (publisher confirm) before the done marks and the acks.
            await self.bus.logs.publish(room_id, log_delivery)
            await self._mark_done(dedupe, batch, frame_ids)
        for _, ack, _ in batch:
            await ack()

    def _mark_done(
        self, dedupe: ShardDedupe, batch: list[tuple[ActionEnvelope, Ack, bool]], frame_ids: list[str]
    ) -> Awaitable[None]:
        """Queue the batch's done marks in the shard's current generation (skipped redeliveries
        too: marked anew, they stay findable if they come back once more)."""
        generation = dedupe.generation or 0
        for _, ack, _ in batch:
            if isinstance(ack, TrackedAck):
                ack.marked(generation)
        return self.store.done_marks.mark(shard=dedupe.shard, generation=generation, ids=frame_ids)

    def _record_history(self, room: Room, decided: list[tuple[ActionEnvelope, Outcome]]) -> list[Awaitable[Any]]:
        """The batch's history writes, started in batch order (a delete of a message from this
        very batch works too); the caller awaits them in order."""
        if room.history_max_messages <= 0:
            return []
        max_age_ms = room.history_max_age_seconds * 1000
        writes: list[Awaitable[Any]] = []
        appended: list[tuple[str, bytes]] = []
        for action, outcome in decided:
            if outcome.delivery is None:
                continue
            if action.kind == Kind.SEND_MESSAGE and not action.recipient:  # direct messages: never kept
                appended.append((action.frame_id, outcome.delivery.frame))
            elif action.kind == Kind.DELETE_MESSAGE:  # deleted messages leave the history
                if appended:
                    writes.append(self.store.history.append(room.id, appended, room.history_max_messages, max_age_ms))
                    appended = []
                writes.append(self.store.history.remove(room.id, action.message_id))
        if appended:
            writes.append(self.store.history.append(room.id, appended, room.history_max_messages, max_age_ms))
        return writes

    async def _keep_per_user(self, room: Room, decided: list[tuple[ActionEnvelope, Outcome]]) -> list[Awaitable[Any]]:
        """The batch's inbox and member-log writes (``shared.features.inbox``), started in order;
        a ``member_log`` room's members are read first, once per batch that needs them (those at
        delivery time)."""
        delivered = [(action, outcome.delivery.frame) for action, outcome in decided if outcome.delivery is not None]
        members: list[str] = []
        if inbox.needs_members(room, (action for action, _ in delivered)):
            members = await self.store.members.page(room.id, None, inbox.log_bounds(self.settings).max_members)
        history = self.store.history
        return [
            history.append(write.key, write.items, write.max_messages, write.max_age_ms)
            if isinstance(write, inbox.Append)
            else history.remove(write.key, write.message_id)
            for write in inbox.plan(room, delivered, members, inbox.log_bounds(self.settings))
        ]

    async def _review(
        self, room: Room, decided: list[tuple[ActionEnvelope, Outcome]]
    ) -> list[tuple[ActionEnvelope, Outcome]]:
        """Review the batch's messages together (one bus request); the results keep the batch's order."""
        pending = [(index, action) for index, (action, outcome) in enumerate(decided) if outcome.needs_review]
        verdicts = await self.reviewer.review_many(room, [action for _, action in pending])
        result = list(decided)
        for (index, action), verdict in zip(pending, verdicts, strict=True):
            result[index] = (action, reviewed(action, verdict))
        return result


async def _in_order(writes: list[Awaitable[Any]]) -> None:
    """Await writes that were started in order. After a failure the rest are still awaited
    (their outcome no longer matters, but nothing is left dangling), then the failure is raised."""
    for index, write in enumerate(writes):
        try:
            await write
        except BaseException:
            for rest in writes[index + 1 :]:
                with contextlib.suppress(Exception):
                    await rest
            raise
