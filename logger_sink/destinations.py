"""Destinations: where one logging configuration's batches are durably written.

- ``cloudWatchLogs {logGroupName}`` and ``firehose {deliveryStreamName}``: JSON-lines files
  under ``PARLEY_LOG_DIR`` (``layout``), appended with write + flush + fsync.
- ``s3 {bucketName}``: one gzip object per batch with IVS's key layout. When PutObject fails the
  object is parked in a local spool (fsynced) and uploaded later with exponential backoff, so an
  unreachable bucket neither loses records nor holds the queue (and every other destination)
  back. Only a full spool pushes back: then ``write`` fails and the batch stays unacked.

Every failure counts LogDestinationErrors and, where it applies, the ResourceNotFound or
AccessDenied metric, labelled with the configuration's ARN.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import os
import secrets
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from logger_sink import layout, s3
from logger_sink.batching import Batch
from shared import metrics

log = structlog.get_logger("logger_sink")

S3 = "s3"
CLOUDWATCH = "cloudWatchLogs"
FIREHOSE = "firehose"


class DestinationError(Exception):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind  # s3.NOT_FOUND | s3.ACCESS_DENIED | s3.OTHER


def count_failure(arn: str, kind: str) -> None:
    metrics.LOG_DESTINATION_ERRORS.labels(arn).inc()
    if kind == s3.NOT_FOUND:
        metrics.LOG_DESTINATION_RESOURCE_NOT_FOUND_ERRORS.labels(arn).inc()
    elif kind == s3.ACCESS_DENIED:
        metrics.LOG_DESTINATION_ACCESS_DENIED_ERROR.labels(arn).inc()


class Destination(ABC):
    kind: str

    def __init__(self, arn: str) -> None:
        self.arn = arn  # the logging configuration's ARN: the metrics' LoggingConfiguration label

    @abstractmethod
    def stream_key(self, room_id: str) -> str:
        """Records of one stream are batched together and written in order."""

    @abstractmethod
    async def write(self, room_id: str, batch: Batch) -> None:
        """Durably write ``batch`` (records of ``room_id``, or of the stream) or raise
        :class:`DestinationError`."""

    async def resume(self) -> None:  # noqa: B027 - optional hook
        """Pick up work a previous process left (the S3 spool)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Stop background work."""


# --- files -------------------------------------------------------------------------------------
_locks: dict[Path, asyncio.Lock] = {}
_tail_checked: set[Path] = set()


def _append(path: Path, data: bytes, check_tail: bool) -> None:
    """Append and fsync. A process killed mid-append can leave a torn last line: the first
    append of a process starts on a fresh line so the torn one stays alone (readers skip it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    created = not path.exists()
    if check_tail and not created and path.stat().st_size > 0:
        with open(path, "rb") as existing:
            existing.seek(-1, os.SEEK_END)
            if existing.read(1) != b"\n":
                data = b"\n" + data
    with open(path, "ab") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    if created:  # the new directory entry must survive a crash too
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _file_error(exc: OSError) -> DestinationError:
    if isinstance(exc, PermissionError):
        return DestinationError(s3.ACCESS_DENIED, type(exc).__name__)
    if isinstance(exc, FileNotFoundError | NotADirectoryError):
        return DestinationError(s3.NOT_FOUND, type(exc).__name__)
    return DestinationError(s3.OTHER, type(exc).__name__)


class FileDestination(Destination):
    """cloudWatchLogs (a file per room stream) or firehose (one file per delivery stream)."""

    def __init__(self, arn: str, kind: str, path_of: Callable[[str], Path]) -> None:
        super().__init__(arn)
        self.kind = kind
        self._path_of = path_of  # room_id -> file

    def stream_key(self, room_id: str) -> str:
        return str(self._path_of(room_id))

    async def write(self, room_id: str, batch: Batch) -> None:
        path = self._path_of(room_id)
        lock = _locks.setdefault(path, asyncio.Lock())  # two configs may share a log group
        async with lock:
            check_tail = path not in _tail_checked
            try:
                await asyncio.to_thread(_append, path, batch.body, check_tail)
            except OSError as exc:
                raise _file_error(exc) from exc
            _tail_checked.add(path)


def cloudwatch_destination(arn: str, log_dir: str, log_group: str) -> FileDestination:
    return FileDestination(arn, CLOUDWATCH, lambda room_id: layout.cloudwatch_path(log_dir, log_group, room_id))


def firehose_destination(arn: str, log_dir: str, delivery_stream: str) -> FileDestination:
    path = layout.firehose_path(log_dir, delivery_stream)
    return FileDestination(arn, FIREHOSE, lambda _room_id: path)


# --- S3 ----------------------------------------------------------------------------------------
class S3Destination(Destination):
    kind = S3

    def __init__(
        self,
        arn: str,
        bucket: str,
        *,
        account: str,
        region: str,
        log_dir: str,
        retry_max_seconds: float = 30.0,
        spool_max_bytes: int = 1 << 30,
        client_factory: Callable[[], Any] | None = None,
    ) -> None:
        super().__init__(arn)
        self.bucket = bucket
        self._account = account
        self._region = region
        self._spool = layout.spool_dir(log_dir, arn.rsplit("/", 1)[-1], bucket)
        self._retry_max = retry_max_seconds
        self._spool_max = spool_max_bytes
        self._client_factory = client_factory or (lambda: s3.make_client(region))
        self._client: Any = None
        self._spooled = False  # objects are parked: new ones queue behind them, in order
        self._spool_bytes = 0
        self._spool_gen = 0
        self._drainer: asyncio.Task[None] | None = None

    def stream_key(self, room_id: str) -> str:
        return room_id

    @property
    def spooled(self) -> bool:
        return self._spooled

    async def _put(self, key: str, body: bytes) -> None:
        if self._client is None:
            self._client = await asyncio.to_thread(self._client_factory)
        try:
            await asyncio.to_thread(
                self._client.put_object, Bucket=self.bucket, Key=key, Body=body, ContentType="application/x-gzip"
            )
        except (ClientError, BotoCoreError) as exc:
            raise DestinationError(s3.classify(exc), type(exc).__name__) from exc

    async def write(self, room_id: str, batch: Batch) -> None:
        body = batch.body
        key = layout.s3_key(self._account, self._region, room_id, batch.first_ms, layout.object_hash(body))
        data = gzip.compress(body, mtime=0)
        if not self._spooled:
            try:
                await self._put(key, data)
                return
            except DestinationError as exc:
                count_failure(self.arn, exc.kind)
                log.warning("log destination failed; spooling", destination=S3, config=self.arn, error=str(exc))
        if self._spool_bytes + len(data) > self._spool_max:
            raise DestinationError(s3.OTHER, "spool full")
        self._spooled = True
        try:
            await asyncio.to_thread(self._park, key, data)
        except OSError as exc:
            raise DestinationError(s3.OTHER, f"spool: {type(exc).__name__}") from exc
        self._spool_bytes += len(data)
        self._spool_gen += 1
        self._start_drain()

    # --- the spool ------------------------------------------------------------------------
    def _park(self, key: str, data: bytes) -> None:
        path = self._spool / key
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tmp-{secrets.token_hex(4)}")
        with open(tmp, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _parked(self) -> list[tuple[str, Path]]:
        if not self._spool.exists():
            return []
        found = [
            (path.relative_to(self._spool).as_posix(), path)
            for path in self._spool.rglob("*.log.gz")
            if not path.name.startswith(".tmp-")
        ]
        return sorted(found)  # keys sort by time

    async def resume(self) -> None:
        parked = await asyncio.to_thread(self._parked)
        if parked:
            self._spooled = True
            self._spool_bytes = sum(path.stat().st_size for _, path in parked)
            log.info("resuming spooled log objects", config=self.arn, objects=len(parked))
            self._start_drain()

    def _start_drain(self) -> None:
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain(), name=f"s3-spool-{self.bucket}")

    async def _drain(self) -> None:
        delay = 0.2
        while True:
            generation = self._spool_gen
            parked = await asyncio.to_thread(self._parked)
            if not parked:
                if generation == self._spool_gen:  # nothing was parked while we listed
                    self._spooled = False
                    self._spool_bytes = 0
                    return
                continue
            for key, path in parked:
                data = await asyncio.to_thread(path.read_bytes)
                try:
                    await self._put(key, data)
                except DestinationError as exc:
                    count_failure(self.arn, exc.kind)
                    log.warning("log destination still failing", destination=S3, config=self.arn, retry_in=delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self._retry_max)
                    break
                delay = 0.2
                with contextlib.suppress(FileNotFoundError):  # another sink on this host took it
                    await asyncio.to_thread(path.unlink)
                self._spool_bytes = max(self._spool_bytes - len(data), 0)

    async def close(self) -> None:
        if self._drainer is not None:
            self._drainer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drainer
