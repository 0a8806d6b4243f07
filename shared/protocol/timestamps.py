"""Time on the wire: ``YYYY-MM-DDTHH:MM:SS.sssZ`` strings, from and to epoch milliseconds.

Pure formatting; reading the clock is :mod:`shared.clock`'s job."""

from __future__ import annotations

import functools
import time
from datetime import UTC, datetime


def iso_ms(epoch_ms: int) -> str:
    """Format like JavaScript's ``toISOString()``, the form every IVS client SDK parses."""
    seconds, millis = divmod(epoch_ms, 1000)
    return f"{_iso_seconds(seconds)}.{millis:03d}Z"


@functools.lru_cache(maxsize=8)
def _iso_seconds(seconds: int) -> str:
    # Every message is stamped; most share their second with the one before.
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def parse_iso(text: str) -> int:
    """Epoch ms from an ISO 8601 string (the inverse of :func:`iso_ms`)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)
