"""The consumer loop: queued deliveries → records → per-stream batches → durable writes → acks.

One :class:`Stream` per (destination, room stream); each has at most one writer task, so a
stream's batches are written in order while streams proceed independently. A failing
destination retries with exponential backoff in its own writer and never stalls the others
(S3 additionally parks objects in its spool, so it does not even hold acks back).

A delivery is acked only when every batch holding its records was durably written, so a crash
loses nothing; what was written but not yet acked is written again after a restart (bounded by
``PARLEY_LOG_PREFETCH``; S3 objects are named by content hash, so those overwrite themselves).
"""

from __future__ import annotations

import asyncio
import secrets
import time

import structlog

from logger_sink.batching import Batch, BatchLimits, Countdown
from logger_sink.configs import ConfigResolver
from logger_sink.destinations import (
    CLOUDWATCH,
    FIREHOSE,
    S3,
    Destination,
    DestinationError,
    S3Destination,
    cloudwatch_destination,
    count_failure,
    firehose_destination,
)
from logger_sink.layout import spool_dir
from logger_sink.ports import LoggerSinkBus, LoggerSinkStore
from logger_sink.records import records_from_delivery
from logger_sink.s3 import OTHER
from shared import metrics
from shared.config import Settings
from shared.engine.actions import Ack
from shared.engine.fanout import Subscription
from shared.engine.logstream import LogConsumer
from shared.protocol.envelope import ControlNotice, ControlTopic
from shared.protocol.ids import logging_configuration_arn
from shared.protocol.models import LoggingConfiguration

log = structlog.get_logger("logger_sink")

IDLE_STREAM_S = 300.0
STOP_FLUSH_S = 5.0


class Stream:
    __slots__ = ("destination", "room_id", "batch", "writer", "used")

    def __init__(self, destination: Destination, room_id: str) -> None:
        self.destination = destination
        self.room_id = room_id
        self.batch: Batch | None = None
        self.writer: asyncio.Task[None] | None = None
        self.used = time.monotonic()


class LoggerSink:
    def __init__(
        self, settings: Settings, store: LoggerSinkStore, bus: LoggerSinkBus, *, sink_id: str | None = None
    ) -> None:
        self.settings = settings
        self.store = store
        self.bus = bus
        self.sink_id = sink_id or f"logger-{secrets.token_hex(4)}"
        self.limits = BatchLimits(settings.log_batch_seconds, settings.log_batch_records, settings.log_batch_bytes)
        self._resolver = ConfigResolver(store)
        self._destinations: dict[tuple[str, str, str], Destination] = {}
        self._streams: dict[tuple[int, str], Stream] = {}
        self._consumer: LogConsumer | None = None
        self._control: Subscription | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._flushing = False  # stopping: write every batch now, however young
        self._stopping = False

    # --- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        self._control = await self.bus.fanout.subscribe(self.sink_id, None, None, self._on_control)
        await self._resume_spools()
        self._ticker = asyncio.create_task(self._tick(), name="logger-ticker")
        self._consumer = await self.bus.logs.consume(self._on_delivery, prefetch=self.settings.log_prefetch)
        log.info("logger sink started", sink_id=self.sink_id, log_dir=self.settings.log_dir)

    async def stop(self) -> None:
        # Write what we hold first (and ack it), then give the rest back to the queue.
        self._flushing = True
        for stream in list(self._streams.values()):
            self._kick(stream)
        writers = [s.writer for s in self._streams.values() if s.writer is not None]
        if writers:
            await asyncio.wait(writers, timeout=STOP_FLUSH_S)
        self._stopping = True
        if self._consumer is not None:
            await self._consumer.stop()
        tasks = [s.writer for s in self._streams.values() if s.writer is not None]
        if self._ticker is not None:
            tasks.append(self._ticker)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for destination in self._destinations.values():
            await destination.close()
        if self._control is not None:
            await self._control.close()

    def _on_control(self, data: bytes) -> None:
        try:
            notice = ControlNotice.decode(data)
        except Exception:
            return
        if notice.topic == ControlTopic.ROOM_CHANGED:
            self._resolver.invalidate_room(notice.subject)
        elif notice.topic == ControlTopic.LOGGING_CONFIGURATION_CHANGED:
            self._resolver.invalidate_configs()

    # --- destinations ---------------------------------------------------------------------
    def _destination(self, config: LoggingConfiguration) -> Destination | None:
        ((kind, options),) = config.destination.items() if len(config.destination) == 1 else ((None, {}),)
        name = {S3: "bucketName", CLOUDWATCH: "logGroupName", FIREHOSE: "deliveryStreamName"}.get(kind or "")
        if name is None or not options.get(name):
            return None
        key = (config.arn, kind or "", options[name])
        destination = self._destinations.get(key)
        if destination is None:
            destination = self._destinations[key] = self._make_destination(config.arn, kind or "", options[name])
        return destination

    def _make_destination(self, arn: str, kind: str, name: str) -> Destination:
        s = self.settings
        if kind == S3:
            return S3Destination(
                arn,
                name,
                account=s.account_id,
                region=s.region,
                log_dir=s.log_dir,
                retry_max_seconds=s.log_retry_max_seconds,
                spool_max_bytes=s.log_spool_max_bytes,
            )
        if kind == CLOUDWATCH:
            return cloudwatch_destination(arn, s.log_dir, name)
        return firehose_destination(arn, s.log_dir, name)

    async def _resume_spools(self) -> None:
        """Objects a previous process parked for S3 (``spool/s3/<configId>/<bucket>/``)."""
        root = spool_dir(self.settings.log_dir, "x", "x").parent.parent
        if not root.is_dir():
            return
        for config_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            for bucket_dir in sorted(p for p in config_dir.iterdir() if p.is_dir()):
                arn = logging_configuration_arn(self.settings.region, self.settings.account_id, config_dir.name)
                key = (arn, S3, bucket_dir.name)
                if key not in self._destinations:
                    self._destinations[key] = self._make_destination(arn, S3, bucket_dir.name)
                await self._destinations[key].resume()

    # --- consuming ------------------------------------------------------------------------
    async def _on_delivery(self, room_id: str, data: bytes, ack: Ack) -> None:
        try:
            decoded_room, records = records_from_delivery(data)
        except Exception as exc:  # noqa: BLE001 - garbage must not stop the sink
            log.warning("undecodable log delivery dropped", size=len(data), error=type(exc).__name__)
            await ack()
            return
        room_id = decoded_room or room_id
        configs = await self._configs(room_id) if records else []
        countdown = Countdown(ack)
        for config in configs:
            destination = self._destination(config)
            if destination is None:
                continue
            stream = self._stream(destination, room_id)
            if stream.batch is None:
                stream.batch = Batch(opened=time.monotonic())
            stream.batch.add(records, countdown)
            if stream.batch.full(self.limits):
                self._kick(stream)
        await countdown.seal()  # acks at once when nothing is to be written (no ACTIVE config)

    async def _configs(self, room_id: str) -> list[LoggingConfiguration]:
        delay = 0.1
        while True:
            try:
                return await self._resolver.for_room(room_id)
            except Exception:
                # The Store is briefly unreachable: wait (the delivery stays unacked meanwhile).
                if self._stopping:
                    raise
                log.exception("logging configuration lookup failed; retrying", room_id=room_id)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings.log_retry_max_seconds)

    def _stream(self, destination: Destination, room_id: str) -> Stream:
        key = (id(destination), destination.stream_key(room_id))
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = Stream(destination, room_id)
        stream.used = time.monotonic()
        return stream

    # --- writing --------------------------------------------------------------------------
    def _kick(self, stream: Stream) -> None:
        if stream.writer is None or stream.writer.done():
            stream.writer = asyncio.create_task(self._write_loop(stream))

    async def _write_loop(self, stream: Stream) -> None:
        destination = stream.destination
        while True:
            batch = stream.batch
            if batch is None or not (self._flushing or batch.due(self.limits, time.monotonic())):
                return
            stream.batch = None
            delay = 0.1
            while True:
                try:
                    await destination.write(stream.room_id, batch)
                    break
                except Exception as exc:  # noqa: BLE001 - a writer must outlive any failure
                    kind = exc.kind if isinstance(exc, DestinationError) else OTHER
                    count_failure(destination.arn, kind)
                    log.warning(
                        "log destination failed; retrying",
                        destination=destination.kind,
                        config=destination.arn,
                        error=str(exc) if isinstance(exc, DestinationError) else type(exc).__name__,
                        retry_in=delay,
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.settings.log_retry_max_seconds)
            metrics.LOG_RECORDS_WRITTEN.labels(destination.kind).inc(len(batch.records))
            for waiter in batch.waiters:
                await waiter.done()

    async def _tick(self) -> None:
        interval = max(min(self.limits.seconds / 4, 0.1), 0.01)
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for key, stream in list(self._streams.items()):
                if stream.batch is not None and stream.batch.due(self.limits, now):
                    self._kick(stream)
                elif stream.batch is None and stream.writer is None and now - stream.used > IDLE_STREAM_S:
                    del self._streams[key]
                elif stream.writer is not None and stream.writer.done():
                    stream.writer = None
