"""JSON values as the store keeps them: compact, UTF-8, non-ASCII kept as is."""

from __future__ import annotations

import json
from typing import Any

from shared.engine.records import Record


def encode(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def decode_record(raw: bytes) -> Record:
    result: Record = json.loads(raw)
    return result
