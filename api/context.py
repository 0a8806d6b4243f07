"""What every operation handler works with: settings, Store and Bus, plus resource lookups
and the opaque ``nextToken`` cursor shared by the List operations."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from api.errors import LOGGING_CONFIGURATION as LOGGING_CONFIGURATION_TYPE
from api.errors import ROOM as ROOM_TYPE
from api.errors import ResourceNotFoundException, ValidationException
from api.ports import ApiBus, ApiStore
from shared.config import Settings
from shared.engine.records import Record, RecordKind
from shared.protocol.ids import parse_arn
from shared.protocol.models import LoggingConfiguration, Room

DEFAULT_MAX_RESULTS = 50
_SCAN_BATCH = 200  # Store rows read per round trip while filtering a List


@dataclass(frozen=True, slots=True)
class ApiContext:
    settings: Settings
    store: ApiStore
    bus: ApiBus


def arn_id(arn: str) -> str:
    """The id part of an ARN (for error bodies), or the whole value if it is not one."""
    parsed = parse_arn(arn)
    return parsed[1] if parsed else arn


async def _load(ctx: ApiContext, kind: RecordKind, arn: str) -> Record | None:
    parsed = parse_arn(arn)
    if parsed is None or parsed[0] != kind:
        return None
    record = await ctx.store.records.get(kind, parsed[1])
    # Same id under another region or account is a different resource.
    if record is None or record.get("arn") != arn:
        return None
    return record


async def load_room(ctx: ApiContext, arn: str) -> Room:
    record = await _load(ctx, RecordKind.ROOM, arn)
    if record is None:
        raise ResourceNotFoundException(f"Room not found: {arn}", arn_id(arn), ROOM_TYPE)
    return Room.from_record(record)


async def load_logging_configuration(ctx: ApiContext, arn: str) -> LoggingConfiguration:
    record = await _load(ctx, RecordKind.LOGGING_CONFIGURATION, arn)
    if record is None:
        raise ResourceNotFoundException(
            f"Logging configuration not found: {arn}", arn_id(arn), LOGGING_CONFIGURATION_TYPE
        )
    return LoggingConfiguration.from_record(record)


# --- pagination -----------------------------------------------------------------------------


def encode_cursor(kind: str, cursor: tuple[int, str]) -> str:
    raw = json.dumps([kind, cursor[0], cursor[1]], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(kind: str, token: str) -> tuple[int, str]:
    """Inverse of :func:`encode_cursor`; a token from elsewhere is a ValidationException."""
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        token_kind, updated_ms, rid = decoded
        if token_kind != kind or not isinstance(updated_ms, int) or not isinstance(rid, str):
            raise ValueError(token)
    except (ValueError, TypeError, binascii.Error):
        raise ValidationException.field("nextToken", "The pagination token is invalid") from None
    return updated_ms, rid


async def list_page(
    ctx: ApiContext,
    kind: RecordKind,
    next_token: str | None,
    max_results: int | None,
    keep: Callable[[Record], bool] = lambda record: True,
) -> tuple[list[Record], str | None]:
    """One page of ``kind`` records, newest update first, that ``keep`` accepts.

    Filtering happens here, so the Store is scanned until the page is full (or the end):
    a filter never produces short pages with a token, nor drops matches.
    """
    limit = max_results or DEFAULT_MAX_RESULTS
    after = decode_cursor(kind, next_token) if next_token else None
    matches: list[tuple[int, str, Record]] = []
    # One match past the page tells us whether a nextToken is needed.
    while len(matches) <= limit:
        rows = await ctx.store.records.page(kind, after, _SCAN_BATCH)
        for row in rows:
            if keep(row[2]):
                matches.append(row)
                if len(matches) > limit:
                    break
        if len(rows) < _SCAN_BATCH:
            break
        after = (rows[-1][0], rows[-1][1])
    page = matches[:limit]
    token = encode_cursor(kind, (page[-1][0], page[-1][1])) if len(matches) > limit else None
    return [row[2] for row in page], token


def member(params: dict[str, Any], name: str, default: Any = None) -> Any:
    """A member's value, with JSON null treated as absent."""
    value = params.get(name)
    return default if value is None else value
