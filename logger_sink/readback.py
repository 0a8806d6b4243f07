"""``parley logs``: a room's chat log read back in order, as JSON lines on stdout.

Sources: the room's CloudWatch-Logs-shaped stream file, or its S3 objects (keys listed under
the room prefix in time order, gunzipped, merged). Records are sorted by ``event_timestamp``,
stably (so a room's delivery order breaks ties), and filtered by ``--since``/``--until``.
Logging is at least once: ``--unique`` drops repeated (type, payload Id) records, as the
client SDK drops repeated Ids.
"""

from __future__ import annotations

import argparse
import gzip
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from logger_sink import layout, s3
from logger_sink.records import parse_record
from shared.config import Settings
from shared.protocol.timestamps import parse_iso

HOUR_MS = 3_600_000


def room_id_of(room: str) -> str:
    """A room id from an id or a room ARN."""
    return room.rsplit("/", 1)[-1]


def _lines(data: bytes) -> Iterator[tuple[bytes, dict[str, Any]]]:
    for line in data.splitlines():
        record = parse_record(line)
        if record is not None:  # blank or torn (a crash mid-append) lines are skipped
            yield line, record


def read_file(path: Path) -> list[tuple[bytes, dict[str, Any]]]:
    if not path.exists():
        return []
    return list(_lines(path.read_bytes()))


def read_s3(
    client: Any, bucket: str, prefix: str, since_ms: int | None = None, until_ms: int | None = None
) -> list[tuple[bytes, dict[str, Any]]]:
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(item["Key"] for item in page.get("Contents", ()))
    found: list[tuple[bytes, dict[str, Any]]] = []
    for key in sorted(keys):  # zero-padded time parts: lexical order is time order
        minute = layout.s3_key_minute_ms(key)
        # A key carries its batch's first record time; skip objects far outside the window.
        if minute is not None and since_ms is not None and minute < since_ms - HOUR_MS:
            continue
        if minute is not None and until_ms is not None and minute > until_ms + 60_000:
            continue
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        found.extend(_lines(gzip.decompress(body)))
    return found


def merge(
    records: Iterable[tuple[bytes, dict[str, Any]]],
    since_ms: int | None = None,
    until_ms: int | None = None,
    unique: bool = False,
) -> list[bytes]:
    """Sorted by event_timestamp (stable), filtered to [since, until], optionally de-duplicated."""
    keyed = []
    for line, record in records:
        try:
            moment = parse_iso(record["event_timestamp"])
        except (TypeError, ValueError):
            continue
        if (since_ms is not None and moment < since_ms) or (until_ms is not None and moment > until_ms):
            continue
        keyed.append((moment, line, record))
    keyed.sort(key=lambda row: row[0])
    out: list[bytes] = []
    seen: set[tuple[str, str]] = set()
    for _, line, record in keyed:
        if unique:
            payload = record.get("payload")
            ident = (str(record.get("type")), str(payload.get("Id")) if isinstance(payload, dict) else "")
            if ident in seen:
                continue
            seen.add(ident)
        out.append(line)
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("room", help="room id or ARN")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--bucket", help="read the S3 destination (standard AWS_* configuration)")
    source.add_argument("--log-group", help="read the cloudWatchLogs destination under --log-dir")
    parser.add_argument("--log-dir", default=None, help="default: PARLEY_LOG_DIR")
    parser.add_argument("--since", default=None, help="ISO 8601, inclusive")
    parser.add_argument("--until", default=None, help="ISO 8601, inclusive")
    parser.add_argument("--unique", action="store_true", help="drop repeated records (at-least-once duplicates)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    room_id = room_id_of(args.room)
    since_ms = parse_iso(args.since) if args.since else None
    until_ms = parse_iso(args.until) if args.until else None
    if args.bucket:
        prefix = layout.s3_room_prefix(settings.account_id, settings.region, room_id)
        records = read_s3(s3.make_client(settings.region), args.bucket, prefix, since_ms, until_ms)
    else:
        records = read_file(layout.cloudwatch_path(args.log_dir or settings.log_dir, args.log_group, room_id))
    out = sys.stdout.buffer
    for line in merge(records, since_ms, until_ms, args.unique):
        out.write(line + b"\n")
    out.flush()
    return 0
