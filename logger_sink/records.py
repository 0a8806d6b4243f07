"""Log records (spec §7), pure: ``{"event_timestamp","type","version","payload"}`` per frame.

``payload`` is the frame clients received, byte for byte: the router encoded it once and the
record embeds those bytes instead of re-encoding (which could reorder keys or change escapes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from shared.protocol.envelope import DeliveryItem, RoomDelivery
from shared.protocol.timestamps import iso_ms, parse_iso

VERSION = "1.0"
LOGGED_TYPES = frozenset({"MESSAGE", "EVENT"})  # ERRORs only ever go to one connection


@dataclass(frozen=True, slots=True)
class LogRecord:
    event_ms: int
    line: bytes  # one JSON record, newline-terminated


def record_line(item: DeliveryItem) -> LogRecord | None:
    """The record for one delivered frame, or None when it must not be logged."""
    try:
        payload = json.loads(item.frame)
    except ValueError:
        return None
    if not isinstance(payload, dict) or payload.get("Type") not in LOGGED_TYPES:
        return None
    log_type = item.log_type if item.log_type in LOGGED_TYPES else payload["Type"]
    event_ms = item.received_ms or _send_time(payload)
    # Frames are compact single-line JSON; anything else is re-encoded so a record stays one line.
    frame = item.frame if b"\n" not in item.frame else json.dumps(payload, separators=(",", ":")).encode()
    head = f'{{"event_timestamp":"{iso_ms(event_ms)}","type":"{log_type}","version":"{VERSION}","payload":'
    return LogRecord(event_ms, head.encode() + frame + b"}\n")


def _send_time(payload: dict[str, Any]) -> int:
    try:
        return parse_iso(payload["SendTime"])
    except (KeyError, TypeError, ValueError):
        return 0


def records_from_delivery(data: bytes) -> tuple[str, list[LogRecord]]:
    """``(room_id, records)`` of a ``RoomDelivery``, in delivery order."""
    delivery = RoomDelivery.decode(data)
    records = [record for record in map(record_line, delivery.items) if record is not None]
    return delivery.room_id, records


def parse_record(line: bytes | str) -> dict[str, Any] | None:
    """A stored line back as a dict; None for a blank or torn line (a crash mid-append)."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict) or "event_timestamp" not in record or "payload" not in record:
        return None
    return record
